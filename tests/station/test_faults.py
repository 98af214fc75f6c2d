"""The station's promise under local faults: a scan its disk cannot save is refused on
screen, never confirmed; the sender survives every error, is restarted if it ever ends, and
drains as soon as the server is back; a partly answered batch loses nothing."""

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest

from station.core import StationCore
from station.flow import StationFlow
from station.outbox import Outbox, OutboxWriteFailed
from station.settings import StationSettings, UplinkSettings
from station.uplink import Uplink
from station.wire import Action
from tests.station.conftest import until
from tests.station.fakes import FakeApi, FakeSource, card
from tests.station.stations import FAST_RETRIES, station_settings

DRAIN_TIMEOUT = 10.0


def _settings(tmp_path: Path, **uplink: float) -> StationSettings:
    retries = UplinkSettings.model_validate({**FAST_RETRIES.model_dump(), **uplink})
    return station_settings(tmp_path, uplink=retries)


def _fill(outbox: Outbox) -> int:
    """The station's disk is full: SQLite may not grow the outbox by a single page, and the
    pages it has are filled with notes. Returns how many events are queued then."""
    connection: sqlite3.Connection = outbox._db
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")
    for _ in range(1000):
        try:
            outbox.record("J0", Action.note, operator_badge="B1001", note="before the disk filled")
        except OutboxWriteFailed:
            break
    return outbox.counts()["queued"]


def _free(outbox: Outbox) -> None:
    outbox._db.execute("PRAGMA max_page_count = 1073741823")


async def test_a_scan_the_disk_cannot_save_is_refused_until_a_save_succeeds(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    source = FakeSource(outbox)
    source.cards["J1"] = card()
    flow = StationFlow(
        outbox, source, stage="edging", idle_sign_out_seconds=600, repeat_scan_seconds=0
    )
    await flow.scan("B1001")
    queued = _fill(outbox)
    for _ in range(2):  # refused, and refused again: nothing is ever confirmed unsaved
        screen = await flow.scan("J1")
        assert screen.tone == "error"
        assert screen.message.startswith("NOT RECORDED: start of J1")
        assert screen.storage_fault == "database or disk is full"
        assert outbox.counts()["queued"] == queued
    source.online = False  # offline and uncached: the same refusal
    assert (await flow.scan("J9")).message.startswith("NOT RECORDED: start of J9")
    source.online = True
    _free(outbox)
    screen = await flow.scan("J1")
    assert (screen.tone, screen.message, screen.storage_fault) == ("ok", "Started", None)
    assert [event.action for event in outbox.queued(1000)][queued:] == [Action.start]


async def test_the_sender_survives_local_database_errors_and_drains_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A "disk full" in the sender's periodic refresh used to end its task for good."""
    api = FakeApi()
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    uplink = Uplink(_settings(tmp_path), outbox, transport=httpx.MockTransport(api))
    for _ in range(5):
        outbox.record("J1", Action.note, operator_badge="B1001", note="n")
    failures = iter(range(3))
    real_set_meta = outbox.set_meta

    def set_meta(key: str, value: str) -> None:
        if next(failures, None) is not None:
            raise sqlite3.OperationalError("database or disk is full")
        real_set_meta(key, value)

    monkeypatch.setattr(outbox, "set_meta", set_meta)
    sender = asyncio.create_task(uplink.run())
    try:
        await until(lambda: outbox.counts()["queued"] == 0, DRAIN_TIMEOUT)
        assert not sender.done()
        assert len(api.events) == 5
    finally:
        sender.cancel()
        await uplink.close()


async def test_a_sender_that_crashes_is_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeApi()
    core = StationCore(_settings(tmp_path), transport=httpx.MockTransport(api))
    real_run = core.uplink.run
    crashes = iter(["a bug in one batch"])

    async def run() -> None:
        if (bug := next(crashes, None)) is not None:
            raise RuntimeError(bug)
        await real_run()

    monkeypatch.setattr(core.uplink, "run", run)
    core.outbox.record("J1", Action.note, operator_badge="B1001", note="n")
    await core.start()
    try:
        await until(lambda: core.outbox.counts()["queued"] == 0, DRAIN_TIMEOUT)
    finally:
        await core.stop()
    assert len(api.events) == 1


async def test_a_returning_server_is_found_by_probing_not_after_the_backoff(
    tmp_path: Path,
) -> None:
    """With a minute of backoff, the events still leave within seconds of the server's
    return: the station probes the health endpoint while it waits."""
    api = FakeApi()
    api.online = False
    settings = _settings(
        tmp_path, backoff_base_seconds=60, backoff_cap_seconds=60, probe_seconds=0.1
    )
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    uplink = Uplink(settings, outbox, transport=httpx.MockTransport(api))
    outbox.record("J1", Action.note, operator_badge="B1001", note="n")
    sender = asyncio.create_task(uplink.run())
    try:
        await until(lambda: uplink.status.connection == "offline", DRAIN_TIMEOUT)
        api.online = True
        await until(lambda: outbox.counts()["queued"] == 0, DRAIN_TIMEOUT)
    finally:
        sender.cancel()
        await uplink.close()


async def test_a_batch_answered_in_part_is_sent_on_until_all_are_answered(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    api.answer_at_most = 2  # the server's work budget ran out after two events
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    uplink = Uplink(_settings(tmp_path), outbox, transport=httpx.MockTransport(api))
    recorded = [
        outbox.record("J1", Action.note, operator_badge="B1001", note=str(n)).event_uuid
        for n in range(7)
    ]
    await uplink.refresh_reference()
    assert await uplink.send_queued() == 7
    assert [event["event_uuid"] for event in api.events] == [str(u) for u in recorded]
    assert outbox.counts() == {"queued": 0, "sent": 7, "rejected": 0}


async def test_an_event_the_contract_refuses_is_kept_as_refused_and_the_rest_is_sent(
    tmp_path: Path,
) -> None:
    """The station checks what it sends with the shared contract: an event queued before a
    stricter rule (here a note over 2,000 characters) is refused once, not retried forever."""
    api = FakeApi()
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    uplink = Uplink(_settings(tmp_path), outbox, transport=httpx.MockTransport(api))
    first = outbox.record("J1", Action.note, operator_badge="B1001", note="fine")
    too_long = outbox.record("J1", Action.note, operator_badge="B1001", note="x" * 2001)
    last = outbox.record("J1", Action.note, operator_badge="B1001", note="fine too")
    await uplink.refresh_reference()
    assert await uplink.send_queued() == 3
    assert [event["event_uuid"] for event in api.events] == [
        str(first.event_uuid),
        str(last.event_uuid),
    ]
    assert outbox.counts() == {"queued": 0, "sent": 2, "rejected": 1}
    [refused] = outbox.rejected()
    assert refused.event_uuid == too_long.event_uuid
    assert refused.error is not None and refused.error.startswith("note:")
