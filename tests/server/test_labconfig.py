"""The lab configuration file: the example loads, bad references are named, re-applying is safe."""

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from server.db import Database
from server.domain.labsetup import apply_lab_config
from server.labconfig import LabConfig, load_lab_config
from server.models import ReasonCode, Route, Stage, Station, Store
from tests.server.conftest import EXAMPLE_CONFIG


def _example() -> dict[str, Any]:
    with EXAMPLE_CONFIG.open("rb") as file:
        return tomllib.load(file)


def test_the_example_config_has_the_routes_a_lab_needs(lab_config: LabConfig) -> None:
    routes = {route.code: [stage for stage, _ in route.steps] for route in lab_config.routes}
    assert routes["stock_sv"][0] == "edging"  # stock SV skips surfacing
    assert routes["surfaced_pal"][:2] == ["generating", "polishing"]
    assert all(stages[-1] == "shipping" for stages in routes.values())
    assert {r.kind for r in lab_config.reasons} == {"hold", "breakage", "defect"}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["routes"][0]["steps"].append(["lasering", 5]), "unknown stage 'lasering'"),
        (lambda c: c["stations"].append({"name": "X-1", "stage": "nope"}), "unknown stage 'nope'"),
        (lambda c: c["stages"].append(dict(c["stages"][0])), "duplicate stage codes: generating"),
        (lambda c: c["reasons"][3].update(return_stage="moon"), "unknown stage 'moon'"),
        (lambda c: c["routes"][0]["steps"][0].__setitem__(1, 0), "must be > 0"),
        (lambda c: c["routes"][0].update(designs=["XL"]), "designs"),
        (lambda c: c["lab"].update(colour="blue"), "colour"),
        (lambda c: c["stores"].append(dict(c["stores"][0])), "duplicate store codes: NORTH"),
        (lambda c: c["stores"][0].update(code="NORTH SIDE"), "stores.0.code"),
    ],
)
def test_broken_configs_are_refused_with_what_is_wrong(mutate: Any, expected: str) -> None:
    config = _example()
    mutate(config)
    with pytest.raises(ValidationError, match=expected):
        LabConfig.model_validate(config)


def test_applying_the_config_twice_changes_nothing(db: Database, lab_config: LabConfig) -> None:
    def counts() -> tuple[int | None, ...]:
        with db.session() as session:
            return tuple(
                session.scalar(select(func.count()).select_from(model))
                for model in (Stage, Route, ReasonCode, Station, Store)
            )

    with db.session() as session:
        apply_lab_config(session, lab_config)
    first = counts()
    with db.session() as session:
        apply_lab_config(session, lab_config)
    assert counts() == first == (8, 3, 14, 16, 2)


def test_edited_standard_minutes_are_applied(db: Database, tmp_path: Path) -> None:
    config = _example()
    with db.session() as session:
        apply_lab_config(session, LabConfig.model_validate(config))
    config["routes"][0]["steps"][0][1] = 99
    with db.session() as session:
        apply_lab_config(session, LabConfig.model_validate(config))
    with db.session() as session:
        route = session.scalar(select(Route).where(Route.code == "stock_sv"))
        assert route is not None
        assert route.steps[0].standard_minutes == 99


def test_stores_get_their_tolerance_profile_and_an_unknown_one_is_refused(
    db: Database, tmp_path: Path
) -> None:
    config = _example()
    config["stores"][0]["tolerance_profile"] = "store-strict"
    with db.session() as session:
        apply_lab_config(session, LabConfig.model_validate(config))
    with db.session() as session:
        profiles = {
            code: profile
            for code, profile in session.execute(select(Store.code, Store.tolerance_profile))
        }
    assert profiles == {"NORTH": "store-strict", "SOUTH": "store-strict"}
    with EXAMPLE_CONFIG.open() as example:
        text = example.read().replace('"store-strict"', '"iso-9999"')
    broken = tmp_path / "lab.toml"
    broken.write_text(text)
    with pytest.raises(ValueError, match=r"store SOUTH: unknown tolerance profile 'iso-9999'"):
        load_lab_config(broken, known_profiles={"z80.1-2015", "store-strict"})
