"""Remakes: a shipped job made again as a new job, linked both ways, editable before it starts."""

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from core.trace import Trace
from server.domain import changes, orders, remakes
from server.domain.errors import Conflict, Forbidden, Invalid, NotFound
from server.models import EventAction, Job, JobChange, JobType, RemakeClass, utcnow
from tests.server.conftest import Floor, Lab
from tests.server.test_changes import _order

TRACE = {
    "right": {"radii": [2400, 2300, 2000, 2300, 2400, 2300, 2000, 2300], "angles": None},
    "left": None,
}


def _shape(stored: object) -> Trace:
    return Trace.model_validate(stored)


def _remake(
    lab: Lab, who: str, job_id: int, remake_class: RemakeClass = RemakeClass.lab_redo
) -> int:
    with lab.context.db.session() as session:
        remake = remakes.open_remake(session, lab.person(who), job_id, remake_class, "Axis off")
        return remake.id


def _shipped(lab: Lab, floor: Floor, number: str) -> int:
    job_id = lab.make_job(number, tray="T7")
    with lab.context.db.session() as session:
        job = session.get_one(Job, job_id)
        job.trace, job.frame = TRACE, {"type": "full_rim", "a_mm": 50.0}
    floor.ship(number)
    return job_id


def test_a_remake_copies_the_order_and_links_both_ways(lab: Lab, floor: Floor) -> None:
    original_id = _shipped(lab, floor, "J1")
    before = utcnow()
    remake_id = _remake(lab, "north", original_id)
    remake, original = lab.job(remake_id), lab.job(original_id)
    assert (remake.job_number, remake.tray_number, remake.job_type) == ("J1-R1", None, "redo")
    assert (remake.remake_of_id, remake.remake_class, remake.remake_reason) == (
        original_id,
        RemakeClass.lab_redo,
        "Axis off",
    )
    assert remake.ordered_at >= before and remake.is_active
    assert (remake.patient_ref, remake.store_id, remake.frame) == (
        original.patient_ref,
        original.store_id,
        original.frame,
    )
    assert _shape(remake.trace) == _shape(TRACE)
    rx = [(e.eye, e.sph, e.cyl, e.axis) for e in remake.prescription]
    assert rx == [(e.eye, e.sph, e.cyl, e.axis) for e in original.prescription]
    assert remake.entered_by_id == lab.person("north").person_id
    with lab.context.db.session() as session:
        expected = orders.propose_promise(
            session,
            remake.lab_id,
            JobType.redo,
            remake.lens_design,
            remake.surfaced,
            remake.priority,
            remake.ordered_at,
        )
        history = {
            (c.job_id, c.field, str(c.old_value), str(c.new_value))
            for c in session.scalars(select(JobChange))
        }
        assert [r.job_number for r in session.get_one(Job, original_id).remakes] == ["J1-R1"]
    assert abs(remake.promised_at - expected) < timedelta(minutes=1)
    assert history == {
        (remake_id, "remake_of", "None", "J1"),
        (original_id, "remakes", "[]", "['J1-R1']"),
    }


def test_remake_numbers_count_on_from_the_first_job(lab: Lab, floor: Floor) -> None:
    original_id = _shipped(lab, floor, "J1")
    first = _remake(lab, "manager", original_id)
    assert lab.job(_remake(lab, "manager", original_id, RemakeClass.warranty)).job_type == (
        JobType.warranty
    )
    floor.ship("J1-R1")
    assert lab.job(_remake(lab, "north", first)).job_number == "J1-R3"
    with lab.context.db.session() as session:
        assert remakes.remake_number(session, session.get_one(Job, first)) == "J1-R4"


def test_a_remake_is_edited_like_a_new_order_until_it_starts(lab: Lab, floor: Floor) -> None:
    remake_id = _remake(lab, "north", _shipped(lab, floor, "J1"))
    with lab.context.db.session() as session:
        order = _order(lab, remake_id, **{"right.axis": 95})
        changes.edit_order(session, lab.person("north"), remake_id, order)
    assert {e.eye: e.axis for e in lab.job(remake_id).prescription}["R"] == 95
    floor.send("EDGE-1", "J1-R1", EventAction.start)
    with lab.context.db.session() as session:
        order = _order(lab, remake_id, **{"right.axis": 100})
        assert changes.edit_order(session, lab.person("north"), remake_id, order).request


def test_only_a_shipped_job_of_ones_own_store_is_remade(lab: Lab, floor: Floor) -> None:
    in_lab = lab.make_job("J1")
    shipped = _shipped(lab, floor, "J2")
    with pytest.raises(Conflict, match="has not been shipped"):
        _remake(lab, "manager", in_lab)
    with pytest.raises(NotFound):
        _remake(lab, "south", shipped)
    with pytest.raises(Forbidden):
        _remake(lab, "tech1", shipped)
    with lab.context.db.session() as session, pytest.raises(Invalid) as short:
        remakes.open_remake(session, lab.manager(), shipped, RemakeClass.other, "")
    assert short.value.field == "reason"


async def test_the_api_opens_a_remake_and_both_jobs_show_the_link(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    original_id = _shipped(lab, floor, "J1")
    await lab.log_in(client, "north", "demo-store-pass")
    bad = await client.post(
        f"/api/jobs/{original_id}/remakes", json={"remake_class": "oops", "reason": "Axis off"}
    )
    assert (bad.status_code, bad.json()["detail"][0]["field"]) == (422, "remake_class")
    response = await client.post(
        f"/api/jobs/{original_id}/remakes",
        json={"remake_class": "doctor_redo", "reason": "New Rx from the doctor"},
    )
    assert response.status_code == 201, response.text
    remake = response.json()
    assert (remake["job_number"], remake["remake_of"], remake["remake_class"]) == (
        "J1-R1",
        {"id": original_id, "job_number": "J1"},
        "doctor_redo",
    )
    assert remake["trace"] == TRACE
    original = (await client.get(f"/api/jobs/{original_id}")).json()
    assert original["remakes"] == [
        {"id": remake["id"], "job_number": "J1-R1", "remake_class": "doctor_redo"}
    ]
    await lab.log_in(client, "south", "demo-store-pass")
    hidden = await client.post(
        f"/api/jobs/{original_id}/remakes", json={"remake_class": "other", "reason": "Not ours"}
    )
    assert hidden.status_code == 404
