"""The demo lab: jobs in varied states reached through real events; seeding twice is a no-op."""

from collections import Counter

from sqlalchemy import func, select

from server.cli import DEMO_DCS
from server.db import Database
from server.domain.dcs_jobs import DcsFile
from server.domain.events import sequence_gaps
from server.domain.seed import seed_demo, seed_new_orders
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


def test_the_demos_new_work_is_imported_remade_and_waits_for_its_tickets(
    db: Database, lab_config: LabConfig
) -> None:
    with db.session() as session:
        seed_demo(session, lab_config, job_count=40)
        files = [DcsFile(path.name, path.read_bytes()) for path in sorted(DEMO_DCS.glob("*.dcs"))]
        new = seed_new_orders(session, files)
        new_ids = {job.id for job in new}
    with db.session() as session:
        unprinted = set(session.scalars(select(Job.id).where(Job.ticket_printed_at.is_(None))))
        assert unprinted == new_ids
        remake = session.scalars(select(Job).where(Job.remake_of_id.is_not(None))).one()
        assert remake.job_number == f"{remake.remake_of.job_number}-R1"
        assert remake.remake_of.remakes == [remake]
        traced = session.scalars(select(Job).where(Job.trace.is_not(None))).all()
        assert len(traced) >= len(files)
