"""Read models of the pages (job list, store portal, WIP board), called directly."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from server.domain import jobs, lab_time, views
from server.domain.auth import PersonPrincipal
from server.domain.views import StoreFilter, Tone
from server.models import EventAction, JobStatus, Person, utcnow
from tests.server.conftest import Floor, Lab


def _person(lab: Lab, username: str) -> PersonPrincipal:
    with lab.context.db.session() as session:
        person = session.scalars(select(Person).where(Person.username == username)).one()
        return PersonPrincipal(person.id, person.lab_id, person.role, person.store_id, person.name)


def test_store_rows_are_the_stores_own_and_a_breakage_makes_one_red(lab: Lab, floor: Floor) -> None:
    north = lab.make_job("N-1")
    lab.make_job("S-1", store="SOUTH")
    floor.send("EDGE-1", "N-1", EventAction.start)
    floor.send("EDGE-1", "N-1", EventAction.breakage, reason_code="B-CHIP")
    north_staff, south_staff = _person(lab, "north"), _person(lab, "south")
    with lab.context.db.session() as session:
        rows = views.store_page(session, north_staff, utcnow(), StoreFilter.all, None, 10).rows
        hidden = views.job_detail(session, south_staff, north, utcnow())
        detail = views.job_detail(session, north_staff, north, utcnow())
        feeds = [views.flag_feed(session, staff, utcnow()) for staff in (north_staff, south_staff)]
    assert [[entry.job_number for entry in feed] for feed in feeds] == [["N-1"], []]
    assert [row.job_number for row in rows] == ["N-1"]
    (row,) = rows
    assert row.tone == Tone.red
    assert "Broke at Edging (chip or crack at edging)" in row.flags[0].reason
    assert views.matches(row, StoreFilter.rework) and not views.matches(row, StoreFilter.ready)
    assert hidden is None
    assert detail is not None
    assert [(p.action, p.reason) for p in detail.problems] == [
        ("breakage", "B-CHIP · Chip or crack at edging")
    ]


def test_done_today_counts_completions_since_the_labs_midnight(lab: Lab, floor: Floor) -> None:
    lab.make_job("N-2")
    lab.make_job("N-3")
    now = utcnow()
    zone = ZoneInfo("Europe/Berlin")  # the example lab's zone
    midnight = datetime.combine(now.astimezone(zone).date(), datetime.min.time(), zone)
    floor.send("EDGE-1", "N-2", EventAction.start, at=midnight - timedelta(minutes=20))
    floor.send("EDGE-1", "N-2", EventAction.complete, at=midnight - timedelta(minutes=10))
    floor.send("EDGE-1", "N-3", EventAction.start, at=now - timedelta(minutes=2))
    floor.send("EDGE-1", "N-3", EventAction.complete, at=now - timedelta(minutes=1))
    lab.make_job("S-3", store="SOUTH")
    floor.send("EDGE-1", "S-3", EventAction.start, at=now - timedelta(minutes=2))
    floor.send("EDGE-1", "S-3", EventAction.complete, at=now - timedelta(minutes=1))
    manager, north_staff = lab.manager(), _person(lab, "north")
    with lab.context.db.session() as session:
        done = views.done_today(session, manager, now)
        done_north = views.done_today(session, north_staff, now)
        board = views.wip_board(session, manager, now)
    (edging,) = [column for column in board.columns if column.code == "edging"]
    assert (done, done_north) == ({edging.stage_id: 2}, {edging.stage_id: 1})
    assert edging.done_today == 2
    assert {card.job_number for column in board.wip.values() for card in column.cards} == {
        "N-2",
        "N-3",
        "S-3",
    }


def test_times_read_in_the_labs_zone() -> None:
    zone = ZoneInfo("Europe/Berlin")
    now = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
    assert lab_time.local_text(datetime(2025, 3, 4, 13, 30, tzinfo=UTC), zone, now) == "today 14:30"
    assert lab_time.local_text(datetime(2025, 3, 4, 23, 30, tzinfo=UTC), zone, now) == (
        "tomorrow 00:30"
    )
    friday = datetime(2025, 3, 7, 8, 0, tzinfo=UTC)
    assert lab_time.local_text(friday, zone, now) == "Fri 07 Mar 09:00"


def test_a_time_without_now_is_a_date_and_durations_grow_into_days() -> None:
    zone = ZoneInfo("Europe/Berlin")
    assert lab_time.local_text(datetime(2025, 3, 4, 13, 30, tzinfo=UTC), zone) == "Tue 04 Mar 14:30"
    assert lab_time.duration_text(timedelta(minutes=45)) == "45 min"
    assert lab_time.duration_text(timedelta(hours=2, minutes=5)) == "2 h 5 min"
    assert lab_time.duration_text(timedelta(days=3, hours=4, minutes=5)) == "3 d 4 h"


def test_the_job_list_is_the_visible_active_jobs_promised_in_the_labs_zone(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = lab.make_job("N-7", promised_in=timedelta(days=1))
    lab.make_job("S-7", store="SOUTH", promised_in=timedelta(days=2))
    north_staff, manager = _person(lab, "north"), _person(lab, "manager")
    promised = lab.job(first).promised_at
    now = utcnow()
    with lab.context.db.session() as session:
        north = views.job_list(session, north_staff, now)
        everyone = views.job_list(session, manager, now)
        titles = (views.scope_name(session, north_staff), views.scope_name(session, manager))
    assert [row.job_number for row in north.rows] == ["N-7"]
    assert (everyone.total, [row.job_number for row in everyone.rows]) == (2, ["N-7", "S-7"])
    assert not everyone.total_capped
    monkeypatch.setattr(jobs, "COUNT_REACH", 1)  # more active jobs than a count reaches
    with lab.context.db.session() as session:
        capped = views.job_list(session, manager, now)
    assert (capped.total, capped.total_capped, len(capped.rows)) == (1, True, 2)
    assert titles == ("Northside Vision", "All stores")
    zone = ZoneInfo("Europe/Berlin")  # the example lab's zone
    assert everyone.rows[0].promised == lab_time.local_text(promised, zone, now)
    assert everyone.rows[0].promised.endswith(f"{promised.astimezone(zone):%H:%M}")


def test_a_wip_card_shows_its_open_flags_and_leaves_the_board_with_its_job(
    lab: Lab, floor: Floor
) -> None:
    job_id = lab.make_job("N-8")
    lab.make_job("S-8", store="SOUTH")
    manager, north_staff = lab.manager(), _person(lab, "north")

    def cards(principal: PersonPrincipal) -> tuple[dict[str, views.WipCard], views.WipCard | None]:
        now = utcnow()
        with lab.context.db.read_session() as session:
            board = views.wip_board(session, principal, now)
            card = views.wip_card_by_id(session, principal, job_id, now)
        return {card.job_number: card for c in board.wip.values() for card in c.cards}, card

    floor.send("EDGE-1", "N-8", EventAction.hold, reason_code="H-FRAME")
    board, card = cards(manager)
    assert {number: card.flags for number, card in board.items()} == {
        "N-8": ("On hold",),
        "S-8": (),
    }
    assert card == board["N-8"]
    assert card is not None
    assert (card.store_code, card.status, card.late) == ("NORTH", JobStatus.on_hold, False)
    floor.send("EDGE-1", "N-8", EventAction.release)
    board, card = cards(north_staff)
    assert list(board) == ["N-8"]
    assert card == board["N-8"]
    assert card.flags == ()
    floor.ship("N-8")
    board, card = cards(manager)
    assert (list(board), card) == (["S-8"], None)


def test_a_wip_column_is_its_oldest_cards_and_the_count_of_all(lab: Lab, floor: Floor) -> None:
    for number in ("W-1", "W-2", "W-3", "W-4"):  # oldest first, queued at edging
        lab.make_job(number)
    lab.make_job("S-1", store="SOUTH")
    floor.send("EDGE-1", "W-1", EventAction.hold, reason_code="H-FRAME")  # now the newest
    manager, north_staff = lab.manager(), _person(lab, "north")
    now = utcnow()

    def numbers(column: views.WipColumn) -> tuple[int, list[str]]:
        return column.count, [card.job_number for card in column.cards]

    with lab.context.db.read_session() as session:
        board = views.wip_board(session, manager, now, per_column=2)
        stages = {column.code: column.stage_id for column in board.columns}
        edging, fitting = stages["edging"], stages["fitting"]
        whole = views.wip_column(session, manager, edging, 9, now)
        north = views.wip_column(session, north_staff, edging, 9, now)
    assert numbers(board.wip[edging]) == (5, ["W-2", "W-3"])
    others = {
        (column.count, column.cards) for stage, column in board.wip.items() if stage != edging
    }
    assert others == {(0, ())}
    assert numbers(whole) == (5, ["W-2", "W-3", "W-4", "S-1", "W-1"])
    assert [card.flags for card in whole.cards[3:]] == [(), ("On hold",)]
    assert numbers(north) == (4, ["W-2", "W-3", "W-4", "W-1"])
    floor.send("EDGE-1", "W-2", EventAction.start)
    floor.send("EDGE-1", "W-2", EventAction.complete)  # on to fitting
    with lab.context.db.read_session() as session:
        board = views.wip_board(session, manager, now, per_column=2)
        counts = views.wip_counts(session, manager), views.wip_counts(session, north_staff)
        oldest = views.wip_column(session, manager, edging, 1, now)
    assert (numbers(board.wip[edging]), numbers(board.wip[fitting])) == (
        (4, ["W-3", "W-4"]),
        (1, ["W-2"]),
    )
    assert counts == ({edging: 4, fitting: 1}, {edging: 3, fitting: 1})
    assert numbers(oldest) == (4, ["W-3"])
