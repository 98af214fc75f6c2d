"""The demo lab: jobs in varied states reached through real events; seeding twice is a no-op."""

from collections import Counter

from sqlalchemy import func, select

from server.db import Database
from server.domain.events import sequence_gaps
from server.domain.seed import seed_demo
from server.labconfig import LabConfig
from server.models import Job, JobStatus, StageEvent, Station


def test_demo_jobs_are_spread_over_states_and_have_timelines(
    db: Database, lab_config: LabConfig
) -> None:
    with db.session() as session:
        assert seed_demo(session, lab_config, job_count=60) is True
    with db.session() as session:
        statuses = Counter(session.scalars(select(Job.status)))
        assert sum(statuses.values()) == 60
        assert {JobStatus.queued, JobStatus.in_progress, JobStatus.completed} <= set(statuses)
        started = session.scalar(
            select(func.count(func.distinct(StageEvent.job_id))).where(StageEvent.action == "start")
        )
        assert started and started > 30
        for station in session.scalars(select(Station)):
            assert sequence_gaps(session, station.id) == []
        stores = set(session.scalars(select(Job.store_id)))
        assert len(stores) == 2


def test_seeding_again_leaves_the_lab_as_it_is(db: Database, lab_config: LabConfig) -> None:
    with db.session() as session:
        seed_demo(session, lab_config, job_count=5)
    with db.session() as session:
        assert seed_demo(session, lab_config, job_count=5) is False
        assert session.scalar(select(func.count(Job.id))) == 5
