"""What the lab promises after a sale, from its config (`[aftersales]`): the SLA clocks of a
store's ticket and the follow-ups a delivery schedules.

Kept apart from the ticket and follow-up work so `jobs.mark_delivered` can schedule
follow-ups without depending on the modules that read jobs through it.
"""

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from server.labconfig import AftersalesConfig
from server.models import FollowUp, Job, Lab, TicketClass


def aftersales_config(session: Session, lab_id: int) -> AftersalesConfig:
    """The lab's after-sales settings; before `config load` the defaults."""
    return AftersalesConfig.model_validate(session.get_one(Lab, lab_id).aftersales or {})


def ticket_due_times(
    config: AftersalesConfig, ticket_class: TicketClass, opened_at: datetime
) -> tuple[datetime, datetime]:
    """When a ticket opened now must have the lab's first answer, and its resolution."""
    return (
        opened_at + timedelta(hours=config.first_response_hours),
        opened_at + timedelta(hours=config.resolution_hours[ticket_class]),
    )


def schedule_follow_ups(session: Session, job: Job, delivered_at: datetime) -> list[FollowUp]:
    """The follow-up calls a delivery brings, on the lab's days after it; none for a patient
    who declined contact."""
    if job.contact_declined:
        return []
    days = aftersales_config(session, job.lab_id).follow_up_days
    follow_ups = [
        FollowUp(job_id=job.id, days_after=n, due_at=delivered_at + timedelta(days=n)) for n in days
    ]
    session.add_all(follow_ups)
    return follow_ups
