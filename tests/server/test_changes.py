"""Edits, cancels and change requests: applied before production starts, decided after."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from server.domain import changes
from server.domain.errors import Conflict, Forbidden, Invalid, NotFound
from server.domain.jobs import LAB_NUMBERS
from server.models import (
    ChangeRequest,
    ChangeState,
    EventAction,
    Job,
    JobChange,
    JobStatus,
    JobUpdate,
)
from server.schemas import JobCreate
from tests.server.conftest import Floor, Lab


def _order(lab: Lab, job_id: int, **update: Any) -> JobCreate:
    """The job's order with `update` applied at its paths ("right.sph", "priority", ...),
    without its numbers, as store staff send it (the lab's; the job keeps them)."""
    with lab.context.db.session() as session:
        job = session.get_one(Job, job_id)
        data = changes.order_of(job).model_dump(mode="json", exclude=set(LAB_NUMBERS))
    for path, value in update.items():
        head, _, name = path.partition(".")
        if name:
            data[head][name] = value
        else:
            data[head] = value
    return JobCreate.model_validate(data)


def _edit(lab: Lab, who: str, job_id: int, **update: Any) -> changes.EditResult:
    order = _order(lab, job_id, **update)
    with lab.context.db.session() as session:
        result = changes.edit_order(session, lab.person(who), job_id, order)
        session.expunge_all()
        return result


def _history(lab: Lab, job_id: int) -> list[tuple[str, object, object, int | None]]:
    with lab.context.db.session() as session:
        rows = session.scalars(
            select(JobChange).where(JobChange.job_id == job_id).order_by(JobChange.id)
        )
        return [(c.field, c.old_value, c.new_value, c.change_request_id) for c in rows]


def _request(lab: Lab, request_id: int) -> ChangeRequest:
    with lab.context.db.session() as session:
        request = session.get_one(ChangeRequest, request_id)
        session.expunge(request)
        return request


def _accept(lab: Lab, request_id: int, stage: str | None = None) -> None:
    with lab.context.db.session() as session:
        changes.accept_change(session, lab.manager(), request_id, stage)


def _surfaced_at(lab: Lab, floor: Floor, number: str, stations: list[str]) -> int:
    """A surfaced single-vision job started and completed at each station, then started at
    the last one given."""
    job_id = lab.make_job(number, surfaced=True)
    *done, here = stations
    for station in done:
        floor.send(station, number, EventAction.start)
        floor.complete(station, number)
    floor.send(here, number, EventAction.start)
    return job_id


def test_an_edit_before_production_is_applied_value_by_value(lab: Lab) -> None:
    job_id = lab.make_job("J1")
    result = _edit(
        lab,
        "north",
        job_id,
        **{"right.sph": -1.5, "priority": "rush", "frame.type": "rimless", "treatments": ["ar"]},
    )
    assert result.request is None
    north = lab.person("north").person_id
    assert _history(lab, job_id) == [
        ("priority", "regular", "rush", None),
        ("treatments", [], ["ar"], None),
        ("right.sph", -1.25, -1.5, None),
        ("frame.type", None, "rimless", None),
    ]
    job = lab.job(job_id)
    rx = {eye.eye: eye for eye in job.prescription}
    assert (rx["R"].sph, rx["L"].sph, job.frame, job.treatments) == (
        -1.5,
        -1.0,
        {"type": "rimless"},
        ["ar"],
    )
    with lab.context.db.session() as session:
        people = set(session.scalars(select(JobChange.person_id)))
        kinds = list(session.scalars(select(JobUpdate.kind).where(JobUpdate.job_id == job_id)))
    assert people == {north}
    assert kinds[-1] == "job_changed"  # open store pages follow it


def test_a_changed_design_or_surfacing_chooses_the_route_again(lab: Lab) -> None:
    job_id = lab.make_job("J1")
    assert lab.job(job_id).route_code == "stock_sv"
    _edit(lab, "manager", job_id, surfaced=True)
    job = lab.job(job_id)
    assert (job.route_code, job.current_stage and job.current_stage.code) == (
        "surfaced_sv",
        "generating",
    )
    with pytest.raises(Invalid) as refused:  # the lab has no stock progressive route
        _edit(
            lab,
            "manager",
            job_id,
            surfaced=False,
            lens_design="PAL",
            **{"right.add": 2.0, "left.add": 2.0},
        )
    assert [field for field, _ in refused.value.problems] == ["lens_design"]
    assert lab.job(job_id).lens_design == "SV"


def test_an_edit_that_changes_nothing_or_moves_the_order_is_refused(lab: Lab) -> None:
    job_id = lab.make_job("J1")
    lab.make_job("J2")
    with pytest.raises(Invalid, match="nothing to change"):
        _edit(lab, "north", job_id)
    with pytest.raises(Invalid) as moved:
        _edit(lab, "manager", job_id, store_code="SOUTH")
    assert moved.value.field == "store_code"
    with pytest.raises(Conflict) as taken:
        _edit(lab, "manager", job_id, job_number="J2")
    assert (taken.value.field, taken.value.message) == (
        "job_number",
        "J2 is in use by another active job",
    )
    _edit(lab, "manager", job_id, job_number="J3", tray_number="T3")
    assert (lab.job(job_id).job_number, lab.job(job_id).tray_number) == ("J3", "T3")


def test_a_stores_edit_gives_no_numbers_and_keeps_the_labs(lab: Lab) -> None:
    job_id = lab.make_job("J1", tray="T1")
    for field in LAB_NUMBERS:
        with pytest.raises(Invalid) as refused:
            _edit(lab, "north", job_id, priority="rush", **{field: "X9"})
        assert refused.value.problems == [(field, f"{LAB_NUMBERS[field]}; leave it out")]
    _edit(lab, "north", job_id, priority="rush")  # the numbers left out: kept, not cleared
    job = lab.job(job_id)
    assert (job.job_number, job.tray_number, job.priority) == ("J1", "T1", "rush")
    assert [field for field, *_ in _history(lab, job_id)] == ["priority"]


def test_only_the_jobs_store_and_lab_managers_edit(lab: Lab) -> None:
    job_id = lab.make_job("J1")
    with pytest.raises(NotFound):  # another store's job is not there for them
        _edit(lab, "south", job_id, priority="rush")
    with pytest.raises(Forbidden):
        _edit(lab, "tech1", job_id, priority="rush")
    assert _history(lab, job_id) == []


def test_after_a_station_event_an_edit_is_a_change_request(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.start)
    result = _edit(lab, "north", job_id, **{"right.sph": -2.0, "priority": "rush"})
    assert result.request is not None and result.changes == []
    request = _request(lab, result.request.id)
    assert (request.state, request.changes) == (
        ChangeState.pending,
        {"priority": "rush", "right.sph": -2.0},
    )
    assert lab.job(job_id).priority == "regular"  # nothing changes yet
    assert _history(lab, job_id) == []
    with pytest.raises(Conflict, match="waiting for the lab"):  # one pending request per job
        _edit(lab, "north", job_id, priority="rush")


def _requested(lab: Lab, job_id: int, **update: Any) -> int:
    request = _edit(lab, "north", job_id, **update).request
    assert request is not None
    return request.id


@pytest.mark.parametrize(
    ("update", "stage"),
    [
        ({"right.cyl": -0.75}, "generating"),  # Rx: the lenses are made again
        ({"lens_material": "Trivex", "lens_index": 1.53}, "generating"),
        ({"treatments": ["ar"]}, "hard_coat"),  # the first coating stage
        ({"frame.type": "rimless"}, "edging"),  # in progress at edging: queued there again
        ({"treatments": ["ar"], "frame.a_mm": 50.0}, "hard_coat"),  # the earlier of the two
    ],
)
def test_accepting_sends_the_job_back_to_the_stage_the_change_needs(
    lab: Lab, floor: Floor, update: dict[str, Any], stage: str
) -> None:
    job_id = _surfaced_at(lab, floor, "J1", ["GEN-1", "POL-1", "HC-1", "AR-1", "EDGE-1"])
    request_id = _requested(lab, job_id, **update)
    _accept(lab, request_id)
    job = lab.job(job_id)
    assert (job.current_stage and job.current_stage.code, job.status) == (stage, "queued")
    assert job.rework_count == 0  # the store changed the order; the lab redid nothing wrong
    assert {field for field, *_ in _history(lab, job_id)} == set(update)
    assert {request for *_, request in _history(lab, job_id)} == {request_id}
    request = _request(lab, request_id)
    assert request.state == ChangeState.accepted and request.decided_at is not None


def test_a_change_the_job_has_not_reached_yet_or_a_date_leaves_it_where_it_is(
    lab: Lab, floor: Floor
) -> None:
    job_id = _surfaced_at(lab, floor, "J1", ["GEN-1", "POL-1"])
    _accept(lab, _requested(lab, job_id, **{"frame.type": "rimless"}))
    assert floor.state(job_id) == ("polishing", JobStatus.in_progress)
    # Promises are kept to the minute.
    promised = (lab.job(job_id).promised_at + timedelta(days=1)).replace(second=0, microsecond=0)
    _accept(lab, _requested(lab, job_id, promised_at=promised.isoformat(), priority="rush"))
    job = lab.job(job_id)
    assert floor.state(job_id) == ("polishing", JobStatus.in_progress)
    assert (job.promised_at, job.priority) == (promised, "rush")


def test_the_manager_may_choose_the_return_stage(lab: Lab, floor: Floor) -> None:
    job_id = _surfaced_at(lab, floor, "J1", ["GEN-1", "POL-1", "HC-1", "AR-1", "EDGE-1"])
    request_id = _requested(lab, job_id, special_instructions="Thin edge please")
    _accept(lab, request_id, "polishing")
    assert floor.state(job_id) == ("polishing", JobStatus.queued)
    with lab.context.db.session() as session:
        assert session.get_one(ChangeRequest, request_id).return_stage.code == "polishing"


def test_a_stock_job_made_surfaced_takes_the_surfaced_route_from_its_start(
    lab: Lab, floor: Floor
) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.start)
    floor.complete("EDGE-1", "J1")
    floor.send("FIT-1", "J1", EventAction.start)
    _accept(lab, _requested(lab, job_id, surfaced=True))
    job = lab.job(job_id)
    assert (job.route_code, floor.state(job_id)) == (
        "surfaced_sv",
        ("generating", JobStatus.queued),
    )


def test_the_manager_may_leave_the_job_where_it_is(lab: Lab, floor: Floor) -> None:
    job_id = _surfaced_at(lab, floor, "J1", ["GEN-1", "POL-1", "HC-1"])
    request_id = _requested(lab, job_id, treatments=["ar"])
    with lab.context.db.session() as session:
        changes.accept_change(session, lab.manager(), request_id, stay=True)
    assert floor.state(job_id) == ("hard_coat", JobStatus.in_progress)
    assert lab.job(job_id).treatments == ["ar"]
    assert _request(lab, request_id).return_stage_id is None


def test_a_failing_accept_changes_nothing(lab: Lab, floor: Floor) -> None:
    job_id = _surfaced_at(lab, floor, "J1", ["GEN-1", "POL-1"])
    request_id = _requested(lab, job_id, **{"right.sph": -3.0})
    with pytest.raises(Invalid) as refused:
        _accept(lab, request_id, "grinding")  # no such stage on the route
    assert refused.value.field == "return_stage"
    lab.make_job("J9")
    # Only the lab changes numbers: a manager's edit of a started job is a request too.
    renumbered = _edit(lab, "manager", _surfaced_at(lab, floor, "J2", ["GEN-2"]), job_number="J9")
    assert renumbered.request is not None
    job_number_request = renumbered.request.id
    with pytest.raises(Conflict):
        _accept(lab, job_number_request)
    for request in (request_id, job_number_request):
        assert _request(lab, request).state == ChangeState.pending
    assert {eye.eye: eye.sph for eye in lab.job(job_id).prescription}["R"] == -1.25
    assert _history(lab, job_id) == []
    assert floor.state(job_id) == ("polishing", JobStatus.in_progress)


def test_only_a_lab_manager_decides_and_a_decline_needs_its_reason(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.start)
    request_id = _requested(lab, job_id, priority="rush")
    with lab.context.db.session() as session, pytest.raises(Forbidden):
        changes.accept_change(session, lab.person("north"), request_id)
    with lab.context.db.session() as session, pytest.raises(Invalid):
        changes.decline_change(session, lab.manager(), request_id, "no")
    with lab.context.db.session() as session:
        changes.decline_change(session, lab.manager(), request_id, "Frame already cut")
    request = _request(lab, request_id)
    assert (request.state, request.decline_reason) == (ChangeState.declined, "Frame already cut")
    with pytest.raises(Conflict, match="declined already"):
        _accept(lab, request_id)
    assert lab.job(job_id).priority == "regular"
    _requested(lab, job_id, priority="rush")  # a declined request no longer blocks a new one


def _cancel(lab: Lab, who: str, job_id: int, reason: str = "Patient changed their mind") -> Any:
    with lab.context.db.session() as session:
        result = changes.cancel_job(session, lab.person(who), job_id, reason)
        return result.request.id if result.request else None


def test_a_store_cancels_before_production_and_the_numbers_are_free_again(
    lab: Lab, floor: Floor
) -> None:
    job_id = lab.make_job("J1", tray="T1", promised_in=timedelta(hours=-1))
    assert lab.job(job_id).open_flags  # late
    assert _cancel(lab, "north", job_id) is None
    job = lab.job(job_id)
    assert (job.status, job.is_active, job.cancel_reason, job.eta, job.open_flags) == (
        JobStatus.cancelled,
        False,
        "Patient changed their mind",
        None,
        [],
    )
    assert job.cancelled_at is not None
    assert _history(lab, job_id) == [("status", "queued", "cancelled", None)]
    lab.make_job("J1", tray="T1")  # job and tray numbers are free for a new order
    with pytest.raises(Conflict, match="is cancelled"):
        _cancel(lab, "manager", job_id)
    with pytest.raises(Invalid) as short:
        _cancel(lab, "manager", lab.make_job("J2"), " x ")
    assert short.value.field == "reason"


def test_after_production_a_store_asks_to_cancel_and_the_lab_cancels_at_once(
    lab: Lab, floor: Floor
) -> None:
    first, second = lab.make_job("J1"), lab.make_job("J2")
    for number in ("J1", "J2"):
        floor.send("EDGE-1", number, EventAction.start)
    request_id = _cancel(lab, "north", first)
    assert request_id is not None and lab.job(first).status == JobStatus.in_progress
    _accept(lab, request_id)
    assert lab.job(first).status == JobStatus.cancelled
    assert _history(lab, first) == [("status", "in_progress", "cancelled", request_id)]
    edit = _requested(lab, second, priority="rush")
    assert _cancel(lab, "manager", second) is None
    assert lab.job(second).status == JobStatus.cancelled
    assert _request(lab, edit).state == ChangeState.declined  # nothing left to change


def test_a_station_cannot_act_on_a_cancelled_job(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    _cancel(lab, "north", job_id)
    with pytest.raises(Conflict, match="J1 is cancelled; nothing more can happen") as refused:
        floor.send("EDGE-1", "J1", EventAction.start)
    assert refused.value.field == "job"
    assert floor.state(job_id) == ("edging", JobStatus.cancelled)


def test_a_shipped_job_is_not_edited_or_cancelled(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    floor.ship("J1")
    with pytest.raises(Conflict, match="open a remake"):
        _edit(lab, "north", job_id, priority="rush")
    with pytest.raises(Conflict, match="open a remake"):
        _cancel(lab, "manager", job_id)


# -- the API --


async def test_patch_applies_before_production_and_requests_after(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    job_id = lab.make_job("J1")
    await lab.log_in(client, "north", "demo-store-pass")
    order = _order(lab, job_id, priority="rush").model_dump(mode="json")
    applied = await client.patch(f"/api/jobs/{job_id}", json=order)
    assert applied.status_code == 200, applied.text
    assert applied.json()["priority"] == "rush"
    again = await client.patch(f"/api/jobs/{job_id}", json=order)
    assert again.status_code == 422
    assert again.json()["detail"] == [{"field": "order", "message": "nothing to change"}]
    floor.send("EDGE-1", "J1", EventAction.start)
    order["right"]["sph"] = -2.0
    requested = await client.patch(f"/api/jobs/{job_id}", json=order)
    assert requested.status_code == 202, requested.text
    body = requested.json()
    assert (body["state"], body["changes"], body["job"]) == (
        "pending",
        {"right.sph": -2.0},
        {"id": job_id, "job_number": "J1"},
    )
    assert (await client.patch(f"/api/jobs/{job_id}", json=order)).status_code == 409
    history = (await client.get(f"/api/jobs/{job_id}/changes")).json()
    assert [(c["field"], c["old_value"], c["new_value"]) for c in history] == [
        ("priority", "regular", "rush")
    ]
    assert history[0]["person"] == lab.person("north").name
    listed = (await client.get(f"/api/jobs/{job_id}/change-requests")).json()
    assert [r["id"] for r in listed] == [body["id"]]
    assert (await client.get("/api/change-requests")).status_code == 403  # the lab's queue

    await lab.log_in(client, "manager", "demo-manager-pass")
    queue = (await client.get("/api/change-requests", params={"state": "pending"})).json()
    assert [r["id"] for r in queue] == [body["id"]]
    accepted = await client.post(f"/api/change-requests/{body['id']}/accept", json={})
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["state"], accepted.json()["return_stage"]) == ("accepted", "edging")
    job = (await client.get(f"/api/jobs/{job_id}")).json()
    assert [(c["field"], c["new_value"]) for c in job["accepted_changes"]] == [("right.sph", -2.0)]


async def test_the_api_hides_other_stores_and_refuses_bad_decisions(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.start)
    request_id = _requested(lab, job_id, priority="rush")
    order = _order(lab, job_id, priority="rush").model_dump(mode="json")
    await lab.log_in(client, "south", "demo-store-pass")
    for response in (
        await client.patch(f"/api/jobs/{job_id}", json=order),
        await client.post(f"/api/jobs/{job_id}/cancel", json={"reason": "Not ours"}),
        await client.get(f"/api/jobs/{job_id}/changes"),
        await client.get(f"/api/change-requests/{request_id}"),
    ):
        assert response.status_code == 404, response.text
    await lab.log_in(client, "north", "demo-store-pass")
    decided = await client.post(f"/api/change-requests/{request_id}/accept", json={})
    assert decided.status_code == 403
    await lab.log_in(client, "manager", "demo-manager-pass")
    for body in ({"reason": "no"}, {}, {"reason": "Fine reason", "extra": 1}):
        declined = await client.post(f"/api/change-requests/{request_id}/decline", json=body)
        assert declined.status_code == 422
    bad_stage = await client.post(
        f"/api/change-requests/{request_id}/accept", json={"return_stage": "nowhere"}
    )
    assert bad_stage.status_code == 422
    assert bad_stage.json()["detail"][0]["field"] == "return_stage"
    assert (await client.get(f"/api/change-requests/{request_id}")).json()["state"] == "pending"
    assert (await client.get(f"/api/jobs/{job_id}")).json()["priority"] == "regular"
    cancel = await client.post(f"/api/jobs/{job_id}/cancel", json={"reason": "Lab error"})
    assert cancel.status_code == 200
    assert (cancel.json()["status"], cancel.json()["cancel_reason"]) == ("cancelled", "Lab error")


async def test_a_store_cancel_after_production_is_answered_202(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.start)
    await lab.log_in(client, "north", "demo-store-pass")
    response = await client.post(f"/api/jobs/{job_id}/cancel", json={"reason": "Wrong frame"})
    assert response.status_code == 202, response.text
    assert response.json()["changes"] == {"status": "cancelled", "cancel_reason": "Wrong frame"}
