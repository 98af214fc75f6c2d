"""The store list read in pages (views.store_page, store_counts): ordered, filtered and cut in
the database, in the order the list had when it was sorted in Python over every open job."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from server.domain import flags, jobs, views
from server.domain.auth import PersonPrincipal
from server.domain.bulk_seed import bulk_seed
from server.domain.views import TONE_ORDER, StoreFilter, StoreRow, Tone
from server.models import EventAction, FlagKind, Job, JobFlag, utcnow
from tests.server.conftest import Floor, Lab, MigratedLab

# job number → (open flags, cleared flags, shipped, hours its promise is before the others')
MIXED: dict[str, tuple[set[FlagKind], set[FlagKind], bool, int]] = {
    "N-A": (set(), set(), False, 0),
    "N-B": ({FlagKind.late}, set(), False, 0),
    "N-C": ({FlagKind.at_risk}, set(), False, 0),
    "N-D": ({FlagKind.breakage, FlagKind.stalled}, set(), False, 0),
    "N-E": ({FlagKind.on_hold}, {FlagKind.late}, False, 0),
    "N-F": (set(), set(), True, 0),
    "N-G": ({FlagKind.late}, set(), True, 0),
    "N-H": (set(), {FlagKind.rework}, False, 0),
    "N-I": ({FlagKind.rework}, set(), False, 1),
    "N-K": (set(), set(), False, 1),
    "N-L": ({FlagKind.stalled}, set(), True, 0),
    "S-A": ({FlagKind.late}, set(), False, 0),
    "S-B": (set(), set(), True, 0),
    "S-C": ({FlagKind.rework}, set(), False, 2),
}


def _mixed_lab(lab: Lab, floor: Floor) -> datetime:
    """MIXED, most promised at one time (ties broken by id), one shipped job delivered (off
    the list); returns now."""
    for number, (_, _, shipped, _) in MIXED.items():
        lab.make_job(number, store="SOUTH" if number.startswith("S-") else "NORTH")
        if shipped:
            floor.ship(number)
    lab.make_job("N-Z")
    floor.ship("N-Z")
    north = lab.person("north")
    now = utcnow()
    promised = now + timedelta(days=1)
    with lab.context.db.session() as session:
        delivered = session.scalars(select(Job.id).where(Job.job_number == "N-Z")).one()
        jobs.mark_ready_for_pickup(session, north, delivered)
        jobs.mark_delivered(session, north, delivered)
        ids = {number: job_id for number, job_id in session.execute(select(Job.job_number, Job.id))}
        session.execute(update(JobFlag).values(cleared_at=now))  # the floor's own flags
        session.execute(update(Job).values(flag_rank=None))
        for number, (open_kinds, cleared, _, earlier) in MIXED.items():
            # Its flags written here, its worst open one kept with it as the flag code keeps it.
            session.execute(
                update(Job)
                .where(Job.id == ids[number])
                .values(
                    promised_at=promised - timedelta(hours=earlier),
                    flag_rank=flags.flag_rank(open_kinds),
                )
            )
            for kind in open_kinds | cleared:
                session.add(
                    JobFlag(
                        job_id=ids[number],
                        kind=kind,
                        reason=f"{kind} for the test",
                        raised_at=now,
                        cleared_at=now if kind in cleared else None,
                    )
                )
    return now


def _python_order(lab: Lab, principal: PersonPrincipal, now: datetime) -> list[StoreRow]:
    """The list as it was built before it was paged: every open job's row, by promise and
    id, then sorted (stably) by tone."""
    with lab.context.db.read_session() as session:
        ids = session.scalars(select(Job.id).order_by(Job.promised_at, Job.id)).all()
        rows = [views.store_row_by_id(session, principal, job_id, now) for job_id in ids]
    return sorted((row for row in rows if row), key=lambda row: TONE_ORDER.index(row.tone))


def _paged(
    lab: Lab, principal: PersonPrincipal, now: datetime, view: StoreFilter, limit: int
) -> list[StoreRow]:
    """Every page of `view`, each after the last one's key, checking the keys as it goes (a
    key the SQL order disagrees with would page on for ever)."""
    rows: list[StoreRow] = []
    after = None
    with lab.context.db.read_session() as session:
        for _ in range(len(MIXED) + 1):
            page = views.store_page(session, principal, now, view, after, limit)
            assert len(page.rows) <= limit
            rows.extend(page.rows)
            if page.more is None:
                return rows
            assert page.more == views.store_key(page.rows[-1])
            after = page.more
    raise AssertionError(f"more pages than open jobs: {[row.job_number for row in rows]}")


def test_the_sql_order_is_the_python_order_on_every_filter_and_page_size(
    lab: Lab, floor: Floor
) -> None:
    now = _mixed_lab(lab, floor)
    north = lab.person("north")
    expected = _python_order(lab, north, now)
    tones = [row.tone for row in expected]
    assert tones == sorted(tones, key=TONE_ORDER.index)
    assert {Tone.red, Tone.amber, Tone.ready, Tone.normal} == set(tones)  # done: delivered, off
    assert [row.job_number for row in expected][:2] == ["N-I", "N-B"]  # the earlier red first
    for view in StoreFilter:
        shown = [row.job_number for row in expected if views.matches(row, view)]
        for limit in (1, 2, 3, 100):
            paged = [row.job_number for row in _paged(lab, north, now, view, limit)]
            assert paged == shown, (view, limit)


@pytest.mark.parametrize("store", ["north", "south"])
def test_the_counts_are_the_rows_each_filter_shows_and_a_store_sees_its_own(
    lab: Lab, floor: Floor, store: str
) -> None:
    now = _mixed_lab(lab, floor)
    staff = lab.person(store)
    with lab.context.db.read_session() as session:
        counts = views.store_counts(session, staff)
    prefix = "N-" if store == "north" else "S-"
    expected = _python_order(lab, staff, now)
    for view in StoreFilter:
        paged = _paged(lab, staff, now, view, 2)
        assert {row.job_number[:2] for row in paged} <= {prefix}, view
        assert counts[view] == len(paged) == sum(views.matches(row, view) for row in expected)
    assert counts == (
        {StoreFilter.all: 11, StoreFilter.late: 2, StoreFilter.rework: 2, StoreFilter.ready: 3}
        if store == "north"
        else {StoreFilter.all: 3, StoreFilter.late: 1, StoreFilter.rework: 1, StoreFilter.ready: 1}
    )


def test_the_order_and_counts_follow_flags_as_the_flag_code_raises_and_clears_them(
    lab: Lab, floor: Floor
) -> None:
    """The list reads a job's tone from the worst open flag the flag code keeps on it: a flag
    raised moves the row up, one cleared moves it back, on every page size."""
    for number, days in (("N-1", 1), ("N-2", 2), ("N-3", 3), ("N-4", 4)):
        lab.make_job(number, promised_in=timedelta(days=days))
    floor.ship("N-4")
    north = lab.person("north")

    def listed() -> list[tuple[str, Tone]]:
        now = utcnow()
        expected = [(row.job_number, row.tone) for row in _python_order(lab, north, now)]
        for limit in (1, 2, 10):
            paged = _paged(lab, north, now, StoreFilter.all, limit)
            assert [(row.job_number, row.tone) for row in paged] == expected, limit
        with lab.context.db.read_session() as session:
            counts = views.store_counts(session, north)
        assert counts == {view: sum(views.matches(row, view) for row in paged) for view in counts}
        return expected

    ready, normal = Tone.ready, Tone.normal
    assert listed() == [("N-4", ready), ("N-1", normal), ("N-2", normal), ("N-3", normal)]
    floor.send("EDGE-1", "N-3", EventAction.hold, reason_code="H-FRAME")
    floor.send("EDGE-1", "N-2", EventAction.start)
    floor.send("EDGE-1", "N-2", EventAction.breakage, reason_code="B-CHIP")
    assert listed() == [
        ("N-2", Tone.red),
        ("N-3", Tone.amber),
        ("N-4", ready),
        ("N-1", normal),
    ]
    floor.send("EDGE-1", "N-3", EventAction.release)
    assert listed() == [("N-2", Tone.red), ("N-4", ready), ("N-1", normal), ("N-3", normal)]


def test_migration_0028_ranks_the_open_flags_the_flag_code_ranks(
    migrated_lab: MigratedLab,
) -> None:
    db = migrated_lab.context.db
    ranks = select(Job.id, Job.flag_rank).order_by(Job.id)
    with db.session() as session:
        bulk_seed(session, migrated_lab.lab_id, 40, as_of=utcnow(), history=timedelta(days=3))
    with db.read_session() as session:
        kept = session.execute(ranks).all()
        open_kinds: dict[int, set[FlagKind]] = {}
        for job_id, kind in session.execute(
            select(JobFlag.job_id, JobFlag.kind).where(JobFlag.cleared_at.is_(None))
        ):
            open_kinds.setdefault(job_id, set()).add(kind)
    assert kept == [(job_id, flags.flag_rank(open_kinds.get(job_id, ()))) for job_id, _ in kept]
    assert {rank for _, rank in kept} >= {flags.RED_RANK, None}
    migrated_lab.downgrade_and_upgrade("0027")
    with db.read_session() as session:
        assert session.execute(ranks).all() == kept
