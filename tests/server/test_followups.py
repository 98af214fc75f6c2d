"""Follow-ups: scheduled by a delivery on the lab's days, worked from the due list, a
problem opening a ticket; none for a patient who declined contact; store scoping."""

from datetime import timedelta

import httpx
import pytest

from server.domain import followups, jobs
from server.domain.errors import Conflict, Invalid, NotFound
from server.models import FollowUp, FollowUpOutcome, Job, TicketClass
from tests.server.conftest import Floor, Lab
from tests.server.payloads import job_body
from tests.server.test_aftersales import shipped


def delivered(lab: Lab, floor: Floor, number: str) -> Job:
    job_id = shipped(lab, floor, number)
    north = lab.person("north")
    with lab.context.db.session() as session:
        jobs.mark_ready_for_pickup(session, north, job_id)
        jobs.mark_delivered(session, north, job_id)
    return lab.job(job_id)


def test_a_delivery_schedules_follow_ups_the_store_works_as_they_fall_due(
    lab: Lab, floor: Floor
) -> None:
    north, south = lab.person("north"), lab.person("south")
    job = delivered(lab, floor, "J1")
    assert job.delivered_at is not None
    day = timedelta(days=1)
    with lab.context.db.session() as session:
        assert followups.due_follow_ups(session, north, job.delivered_at + 2 * day) == []
        due = followups.due_follow_ups(session, north, job.delivered_at + 3 * day)
        assert [(f.job_id, f.days_after) for f in due] == [(job.id, 3)]
        assert due[0].due_at == job.delivered_at + 3 * day
        # Day 3 still open two weeks on: overdue, listed before day 14 which is due today.
        late = job.delivered_at + 14 * day
        due = followups.due_follow_ups(session, north, late)
        today = followups.start_of_day(session, job.lab_id, late)
        assert [(f.days_after, followups.is_overdue(f, today)) for f in due] == [
            (3, True),
            (14, False),
        ]
        assert followups.due_follow_ups(session, south, late) == []
        with pytest.raises(NotFound):
            followups.record_outcome(session, south, due[0].id, FollowUpOutcome.satisfied)
        with pytest.raises(Invalid, match="ticket's class"):
            followups.record_outcome(session, north, due[0].id, FollowUpOutcome.problem)
        followups.record_outcome(session, north, due[0].id, FollowUpOutcome.adapting, 7)
        problem = followups.record_outcome(
            session,
            north,
            due[1].id,
            FollowUpOutcome.problem,
            3,
            "Headaches when reading",
            TicketClass.non_adapt,
            late,
        )
        assert problem.ticket_id is not None
        with pytest.raises(Conflict, match="recorded already"):
            followups.record_outcome(session, north, due[0].id, FollowUpOutcome.satisfied)
        assert followups.due_follow_ups(session, north, late) == []
        recorded = session.get_one(FollowUp, problem.id)
        assert (recorded.outcome, recorded.score) == (FollowUpOutcome.problem, 3)


async def test_a_patient_who_declined_contact_gets_no_follow_ups(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    await lab.log_in(client, "north", "demo-store-pass")
    bad = await client.post("/api/jobs", json=job_body(None, contact_declined="yes"))
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "contact_declined"
    created = await client.post("/api/jobs", json=job_body(None, contact_declined=True))
    assert created.status_code == 201, created.text
    number = created.json()["job_number"]
    assert lab.job(created.json()["id"]).contact_declined
    floor.ship(number)
    north = lab.person("north")
    with lab.context.db.session() as session:
        jobs.mark_ready_for_pickup(session, north, created.json()["id"])
        jobs.mark_delivered(session, north, created.json()["id"])
    other = delivered(lab, floor, "J2")  # contact not declined: its follow-ups only
    response = await client.get("/api/follow-ups")
    assert response.status_code == 200
    assert response.json() == []  # nothing due on delivery day
    with lab.context.db.session() as session:
        month = (other.delivered_at or other.ordered_at) + timedelta(days=31)
        due = followups.due_follow_ups(session, north, month)
        assert {f.job_id for f in due} == {other.id}
