"""QC inspections: judged by the shared Z80.1 engine on receipt, stored per job and attempt."""

import httpx
import pytest
from sqlalchemy import select

from server.domain.errors import Conflict, Forbidden, Invalid
from server.domain.events import ingest_batch
from server.models import (
    EventAction,
    FlagKind,
    Inspection,
    JobFlag,
    JobStatus,
    RejectedEvent,
    Store,
)
from server.schemas import PrescriptionEyeIn
from tests.server.conftest import Floor, Lab

# make_job orders R -1.25 -0.50 x 90 and L -1.00 sph (single vision).
ON_SPEC = {"R": {"sph": -1.25, "cyl": -0.5, "axis": 90}, "L": {"sph": -1.0}}
# R sphere meridian off by 0.25 D: outside ±0.13 D.
OFF_SPEC = {"R": {"sph": -1.5, "cyl": -0.5, "axis": 90}, "L": {"sph": -1.0}}
FAILED = {"measured": OFF_SPEC, "defects": [{"eye": "R", "code": "D-POWER"}]}


def _to_qc(lab: Lab, floor: Floor, job: str = "J1", right: PrescriptionEyeIn | None = None) -> int:
    job_id = lab.make_job(job, right=right)
    for station in ("EDGE-1", "FIT-1"):
        floor.send(station, job, EventAction.start)
        floor.send(station, job, EventAction.complete)
    floor.send("QC-1", job, EventAction.start)
    return job_id


def test_a_pass_stores_every_check_and_releases_to_shipping(lab: Lab, floor: Floor) -> None:
    job_id = _to_qc(lab, floor)
    floor.send(
        "QC-1",
        "J1",
        EventAction.complete,
        inspection={"measured": ON_SPEC, "cosmetic": {"scratches": True, "coating": True}},
    )
    job = lab.job(job_id)
    assert job.current_stage is not None and job.current_stage.code == "shipping"
    with lab.context.db.session() as session:
        inspection = session.scalar(select(Inspection))
        assert inspection is not None
        assert (inspection.attempt, inspection.passed, inspection.profile) == (
            1,
            True,
            "z80.1-2015",
        )
        fields = {(check.eye, check.field) for check in inspection.checks}
        assert {("R", "sph"), ("R", "cyl"), ("R", "axis"), ("L", "sph")} <= fields
        assert all(check.passed for check in inspection.checks)


def test_passing_an_out_of_tolerance_lens_is_refused_with_the_deviation(
    lab: Lab, floor: Floor
) -> None:
    _to_qc(lab, floor)
    with pytest.raises(Conflict, match=r"R sph is off by 0.25 \(tolerance 0.13\)"):
        floor.send("QC-1", "J1", EventAction.complete, inspection={"measured": OFF_SPEC})
    with lab.context.db.session() as session:
        assert session.scalar(select(Inspection)) is None


def test_a_fail_goes_back_to_the_defects_stage_and_flags_the_store(lab: Lab, floor: Floor) -> None:
    job_id = _to_qc(lab, floor)
    eta_at_qc = lab.job(job_id).eta
    floor.send(
        "QC-1",
        "J1",
        EventAction.rework,
        inspection={"measured": OFF_SPEC, "defects": [{"eye": "R", "code": "D-POWER"}]},
    )
    job = lab.job(job_id)
    # D-POWER returns to generating; a stock route has none, so the route's first stage.
    assert job.current_stage is not None and job.current_stage.code == "edging"
    # Edging, fitting and QC again lie ahead now: the ETA moves out.
    assert eta_at_qc is not None and job.eta is not None and job.eta > eta_at_qc
    with lab.context.db.session() as session:
        inspection = session.scalar(select(Inspection))
        assert inspection is not None and inspection.passed is False
        failed = [c.field for c in inspection.checks if not c.passed]
        assert failed == ["sph"]
        assert [(d.eye, d.code) for d in inspection.defects] == [("R", "D-POWER")]
        flag = session.scalar(select(JobFlag).where(JobFlag.kind == FlagKind.rework))
        assert flag is not None and "power out of tolerance" in flag.reason


def test_the_defect_that_sends_the_job_furthest_back_decides(lab: Lab, floor: Floor) -> None:
    job_id = _to_qc(lab, floor)
    # Listed first, D-FIT returns to fitting; D-CHIP (a chipped edge) to edging, earlier on
    # the route: re-edging leads through fitting again anyway.
    defects = [{"code": "D-FIT"}, {"eye": "L", "code": "D-CHIP"}]
    floor.send(
        "QC-1",
        "J1",
        EventAction.rework,
        inspection={"measured": ON_SPEC, "defects": defects, "cosmetic": {}},
    )
    job = lab.job(job_id)
    assert job.current_stage is not None and job.current_stage.code == "edging"


def test_attempts_are_counted_per_job(lab: Lab, floor: Floor) -> None:
    _to_qc(lab, floor)
    floor.send(
        "QC-1",
        "J1",
        EventAction.rework,
        inspection={"measured": ON_SPEC, "defects": [{"code": "D-FIT"}], "cosmetic": {}},
    )
    floor.send("FIT-1", "J1", EventAction.start)
    floor.send("FIT-1", "J1", EventAction.complete)
    floor.send("QC-1", "J1", EventAction.start)
    floor.send("QC-1", "J1", EventAction.complete, inspection={"measured": ON_SPEC})
    with lab.context.db.session() as session:
        attempts = [(i.attempt, i.passed) for i in session.scalars(select(Inspection))]
    assert attempts == [(1, False), (2, True)]


def test_only_a_station_at_an_inspection_stage_sends_qc_results(lab: Lab, floor: Floor) -> None:
    """A generating station failing a job at final QC is refused: nothing judged or stored,
    and in a batch the rejection is kept for that event alone."""
    job_id = _to_qc(lab, floor)
    with pytest.raises(Forbidden) as refused:
        floor.send("GEN-1", "J1", EventAction.rework, inspection=FAILED)
    assert refused.value.field == "inspection"
    assert refused.value.message.startswith("station GEN-1 works at")
    assert "not an inspection stage" in refused.value.message
    with pytest.raises(Forbidden):
        floor.send("EDGE-1", "J1", EventAction.complete, inspection={"measured": ON_SPEC})
    events = [
        floor.event("GEN-1", "J1", EventAction.rework, inspection=FAILED),
        floor.event("GEN-1", "J1", EventAction.note, note="seen at generating"),
    ]
    with lab.context.db.session() as session:
        results = ingest_batch(session, floor.station("GEN-1"), events)
    assert [result.status for result in results] == ["rejected", "stored"]
    assert floor.state(job_id) == ("final_qc", JobStatus.in_progress)
    with lab.context.db.session() as session:
        assert session.scalar(select(Inspection)) is None
        kept = session.scalars(select(RejectedEvent)).all()
        assert [(r.event_uuid, r.field, r.status_code) for r in kept] == [
            (events[0].event_uuid, "inspection", 403)
        ]


def test_a_qc_station_fails_only_the_job_in_progress_there(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.start)
    with pytest.raises(Conflict, match="job J1 is not in progress at Final QC"):
        floor.send("QC-1", "J1", EventAction.rework, inspection=FAILED)
    assert floor.state(job_id) == ("edging", JobStatus.in_progress)
    with lab.context.db.session() as session:
        assert session.scalar(select(Inspection)) is None


@pytest.mark.parametrize("station_profile", [None, "z80.1-2015"])
def test_a_strict_store_profile_fails_what_z80_passes(
    lab: Lab, floor: Floor, station_profile: str | None
) -> None:
    """Even when the station judged with plain Z80.1: the store's profile is the promise."""
    _to_qc(lab, floor)
    with lab.context.db.session() as session:
        store = session.scalar(select(Store).where(Store.code == "NORTH"))
        assert store is not None
        store.tolerance_profile = "store-strict"
    slightly_off = {"R": {"sph": -1.35, "cyl": -0.5, "axis": 90}, "L": {"sph": -1.0}}
    inspection = {"measured": slightly_off, "profile": station_profile}
    with pytest.raises(Conflict, match="R sph"):
        floor.send("QC-1", "J1", EventAction.complete, inspection=inspection)
    floor.send(
        "QC-1",
        "J1",
        EventAction.rework,
        inspection={**inspection, "defects": [{"code": "D-POWER", "eye": "R"}]},
    )
    with lab.context.db.session() as session:
        stored = session.scalar(select(Inspection))
        assert stored is not None and (stored.profile, stored.passed) == ("store-strict", False)


@pytest.mark.parametrize(
    ("inspection", "field"),
    [
        ({"measured": {"R": {"sph": "-1.25"}}}, "inspection.measured.R.sph"),
        ({"measured": {"R": {"sph": -1.25, "axiz": 90}}}, "inspection.measured.R.axiz"),
        ({"measured": ON_SPEC, "profile": "iso-9999"}, "inspection.profile"),
        ({"measured": ON_SPEC, "defects": [{"code": "B-CHIP"}]}, "inspection.defects.0.code"),
    ],
)
def test_bad_inspections_are_refused_naming_the_field(
    lab: Lab, floor: Floor, inspection: dict[str, object], field: str
) -> None:
    _to_qc(lab, floor)
    action = EventAction.rework if "defects" in inspection else EventAction.complete
    with pytest.raises(Invalid) as refused:
        floor.send("QC-1", "J1", action, inspection=inspection)
    assert refused.value.field == field


async def test_the_inspections_endpoint_is_scoped_like_the_job(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    job_id = _to_qc(lab, floor)
    floor.send(
        "QC-1",
        "J1",
        EventAction.rework,
        inspection={"measured": OFF_SPEC, "defects": [{"eye": "R", "code": "D-POWER"}]},
    )
    await lab.log_in(client, "north", "demo-store-pass")
    attempts = (await client.get(f"/api/jobs/{job_id}/inspections")).json()
    assert [a["passed"] for a in attempts] == [False]
    assert attempts[0]["defects"] == [
        {"eye": "R", "code": "D-POWER", "description": "Power out of tolerance"}
    ]
    await lab.log_in(client, "south", "demo-store-pass")
    assert (await client.get(f"/api/jobs/{job_id}/inspections")).status_code == 404


def test_a_freeform_lens_is_judged_by_its_verification_power_and_its_thickness(
    lab: Lab, floor: Floor
) -> None:
    """Written R -1.25 -0.50 x 90; the design software's compensated powers differ by 0.25 D."""
    freeform = PrescriptionEyeIn(
        sph=-1.25,
        cyl=-0.5,
        axis=90,
        verify_sph=-1.5,
        verify_cyl=-0.62,
        verify_axis=92,
        center_thickness=1.8,
    )
    _to_qc(lab, floor, right=freeform)
    as_compensated = {"R": {"sph": -1.5, "cyl": -0.62, "axis": 92, "ct": 1.8}, "L": {"sph": -1.0}}
    too_thick = {**as_compensated, "R": {**as_compensated["R"], "ct": 2.2}}
    with pytest.raises(Conflict, match=r"R ct is off by 0.4 \(tolerance 0.3\)"):
        floor.send("QC-1", "J1", EventAction.complete, inspection={"measured": too_thick})
    with pytest.raises(Conflict, match="R sph"):  # the written Rx is not what this lens is
        floor.send("QC-1", "J1", EventAction.complete, inspection={"measured": ON_SPEC})
    floor.send("QC-1", "J1", EventAction.complete, inspection={"measured": as_compensated})
    with lab.context.db.session() as session:
        inspection = session.scalar(select(Inspection))
        assert inspection is not None and inspection.passed
        checked = {(check.field, check.ordered) for check in inspection.checks if check.eye == "R"}
    assert {("cyl", -0.62), ("ct", 1.8)} <= checked
