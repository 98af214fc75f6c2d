"""`lenstrack check-lens` and loading tolerance files."""

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.optics import DEFAULT_PROFILES_PATH, ProfileError, load_profiles
from lenstrack.cli import main

REPO = Path(__file__).resolve().parents[2]

GOOD = {
    "profile": "z80.1-2015",
    "design": "SV",
    "ordered": {"R": {"sph": -2.00, "cyl": -1.00, "axis": 180}, "L": {"sph": -1.50}, "pd": 64.0},
    "measured": {"R": {"sph": -3.00, "cyl": 1.00, "axis": 90}, "L": {"sph": -1.62}, "pd": 64.0},
}
OUT_OF_TOLERANCE = {**GOOD, "measured": {**GOOD["measured"], "L": {"sph": -1.75}}}


def line(request: dict[str, Any]) -> str:
    return json.dumps(request) + "\n"


Run = Callable[..., tuple[int, list[dict[str, Any]]]]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """`lenstrack check-lens [options]` in-process: its status and parsed output lines."""

    def run(stdin: str, *options: str) -> tuple[int, list[dict[str, Any]]]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        status = main(["check-lens", *options])
        return status, [json.loads(output) for output in capsys.readouterr().out.splitlines()]

    return run


def test_one_verdict_per_line(run: Run) -> None:
    status, outputs = run(line(GOOD) + "\n   \n" + line(OUT_OF_TOLERANCE))
    assert status == 0
    assert [output["pass"] for output in outputs] == [True, False]
    left_sphere = outputs[1]["checks"][-1]
    assert left_sphere == {
        "eye": "L",
        "field": "sph",
        "ordered": -1.5,
        "measured": -1.75,
        "deviation": 0.25,
        "tolerance": 0.13,
        "pass": False,
    }


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("not json\n", "Invalid JSON"),
        ("[1, 2]\n", "input: Input should be an object"),
        (line({**GOOD, "profile": "nope"}), "unknown profile 'nope'"),
        (line({**GOOD, "design": "bifocal"}), "design"),
        (line({**GOOD, "ordered": {"R": {"sph": "-2.00"}}}), "ordered.R.sph"),
        (line({**GOOD, "ordered": {"R": {"sph": -2.0, "cyl": -1.0, "axis": 181}}}), "axis"),
        (line({**GOOD, "measured": {"R": {"sph": -2.0, "cyl": -1.0}}}), "needs an axis"),
        (line({**GOOD, "measured": {"R": {"sphere": -2.0}}}), "measured.R.sphere"),
        (line({**GOOD, "measured": {"R": {"prism": 1.0, "base": "sideways"}}}), "base must"),
    ],
)
def test_bad_line_gets_an_error_and_the_rest_continue(
    run: Run, bad_line: str, message: str
) -> None:
    status, outputs = run(line(GOOD) + bad_line + line(OUT_OF_TOLERANCE))
    assert status == 1
    assert len(outputs) == 3
    assert set(outputs[1]) == {"error"} and message in outputs[1]["error"]
    assert [outputs[0]["pass"], outputs[2]["pass"]] == [True, False]


STORE_FILE = """
default = "house"
[profiles.house]
prism = 0.5
prp_location_mm = 1.0
prism_rule = "or"
fitting_height_mm = 1.0
fitting_height_pair_mm = 1.0
ct_mm = 0.3
use_verification_power = false
vertical_imbalance = { prism = 0.33, max_power = 3.375, otherwise_mm = 1.0 }
horizontal_imbalance = { prism = 0.67, max_power = 2.75, otherwise_mm = 2.5 }
[profiles.house.bands]
axis = [{ upto = 0.12, inclusive = false, skip = true }, { tol = 5 }]
add = [{ tol = 0.25 }]
sph = { sv_mf = [{ tol = 0.25 }], pal = [{ tol = 0.25 }] }
cyl = { sv_mf = [{ tol = 0.25 }], pal = [{ tol = 0.25 }] }
[profiles.loose]
extends = "house"
bands.sph.sv_mf = [{ tol = 0.5 }]
"""


def test_profiles_option_and_file_default(run: Run, tmp_path: Path) -> None:
    profiles = tmp_path / "tolerances.toml"
    profiles.write_text(STORE_FILE)
    request = {key: value for key, value in OUT_OF_TOLERANCE.items() if key != "profile"}
    status, outputs = run(line(request), "--profiles", str(profiles))
    assert status == 0
    assert outputs[0]["pass"] is True  # 0.25 off passes the house ±0.25
    status, outputs = run(line(request), "--profiles", str(DEFAULT_PROFILES_PATH))
    assert outputs[-1]["pass"] is False


def test_unusable_profiles_file_stops_with_status_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(line(GOOD)))
    assert main(["check-lens", "--profiles", str(tmp_path / "missing.toml")]) == 2
    output = capsys.readouterr()
    assert "missing.toml" in output.err
    assert output.out == ""


def test_extends_merges_tables(tmp_path: Path) -> None:
    profiles = tmp_path / "tolerances.toml"
    profiles.write_text(STORE_FILE)
    loose = load_profiles(profiles).profile("loose")
    assert loose.bands.sph.sv_mf[0].tol == 0.5
    assert loose.bands.sph.pal[0].tol == 0.25  # the sibling table is inherited
    assert loose.prism == 0.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('[profiles.loose]\nextends = "house"', '[profiles.loose]\nextends = "loop"'), "unknown"),
        (('default = "house"', 'default = "other"'), "unknown profile 'other'"),
        (("add = [{ tol = 0.25 }]", "add = [{ upto = 4.0, tol = 0.12 }]"), "last band"),
        (("add = [{ tol = 0.25 }]", "add = [{ tol = 0.25, percent = 2 }]"), "exactly one"),
        (
            ("{ tol = 5 }", "{ upto = 0.10, tol = 7 }, { tol = 5 }"),
            "must rise",
        ),
    ],
)
def test_bad_profile_files_are_rejected(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    profiles = tmp_path / "tolerances.toml"
    profiles.write_text(STORE_FILE.replace(*change))
    with pytest.raises(ValueError, match=message):
        load_profiles(profiles)


def test_profiles_extending_each_other_in_a_loop(tmp_path: Path) -> None:
    profiles = tmp_path / "tolerances.toml"
    profiles.write_text(
        STORE_FILE + '[profiles.house2]\nextends = "house3"\n'
        '[profiles.house3]\nextends = "house2"\n'
    )
    with pytest.raises(ProfileError, match="loop"):
        load_profiles(profiles)


def test_check_lens_as_a_process() -> None:
    stdin = line(GOOD) + "{oops\n" + line(OUT_OF_TOLERANCE)
    completed = subprocess.run(
        [sys.executable, "-m", "lenstrack.cli", "check-lens"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    outputs = [json.loads(output) for output in completed.stdout.splitlines()]
    assert completed.returncode == 1, completed.stderr
    assert [sorted(output) for output in outputs] == [
        ["checks", "pass"],
        ["error"],
        ["checks", "pass"],
    ]
    assert [outputs[0]["pass"], outputs[2]["pass"]] == [True, False]
