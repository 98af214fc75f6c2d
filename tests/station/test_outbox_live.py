"""Against the REAL server: exactly-once (stop it, scan 100 jobs, restart, compare UUID sets),
and the lab's labels cached for offline use."""

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from station.flow import StationFlow
from station.outbox import Outbox
from station.settings import StationSettings, UplinkSettings
from station.uplink import Uplink
from tests.liveserver import LiveServer
from tests.station.stations import station_settings

DRAIN_TIMEOUT = 60.0


def _edge_1(server: LiveServer, data_dir: Path, **more: Any) -> StationSettings:
    """The settings of the demo lab's station EDGE-1, talking to the live server."""
    token = server.token("EDGE-1")
    return station_settings(data_dir, server_url=server.url, token=token, **more)


async def _drained(outbox: Outbox) -> None:
    while outbox.counts()["queued"]:
        await asyncio.sleep(0.1)


async def test_a_server_outage_loses_and_duplicates_nothing(
    live_server: LiveServer, tmp_path: Path
) -> None:
    settings = _edge_1(
        live_server,
        tmp_path,
        uplink=UplinkSettings(backoff_base_seconds=0.1, backoff_cap_seconds=0.5, batch_size=25),
    )
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    uplink = Uplink(settings, outbox)
    flow = StationFlow(
        outbox, uplink, stage="edging", idle_sign_out_seconds=3600, repeat_scan_seconds=0
    )
    await uplink.refresh_reference()
    await uplink.prefetch()
    sender = asyncio.create_task(uplink.run())
    try:
        live_server.stop()
        # Signed in offline: the QC inspector, whom the demo never signed in at edging. The
        # sign-in reaches the server first, so the scans after it count.
        await flow.scan("B2001")
        for number in range(100):
            await flow.scan(f"J{100000 + number}")
        # A job on hold or closed is only shown with a warning; every other scan is an event.
        recorded = outbox.counts()["queued"]
        assert 91 <= recorded <= 101  # and the sign-in
        await asyncio.sleep(1)  # the sender keeps failing and backing off meanwhile
        assert uplink.status.connection == "offline"
        live_server.start()
        await asyncio.wait_for(_drained(outbox), DRAIN_TIMEOUT)

        # A reply lost on the way back: the station resends what the server already has.
        with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
            db.execute("UPDATE events SET state = 'queued' WHERE state = 'sent' AND seq <= 30")
        uplink.wake()
        await asyncio.wait_for(_drained(outbox), DRAIN_TIMEOUT)
    finally:
        sender.cancel()
        await uplink.close()

    local = set(outbox.all_uuids())
    ours_stored, ours_rejected = live_server.stored_and_rejected("EDGE-1", local)
    assert len(local) == recorded
    assert local - set(ours_stored) - set(ours_rejected) == set(), "missing on the server"
    assert [key for key, n in (ours_stored + ours_rejected).items() if n > 1] == [], "duplicated"
    assert [e.error for e in outbox.rejected(200) if "operator_badge" in (e.error or "")] == []
    assert outbox.counts() == {
        "queued": 0,
        "sent": len(ours_stored),
        "rejected": len(ours_rejected),
    }


async def test_the_lab_labels_are_cached_for_offline_use(
    live_server: LiveServer, tmp_path: Path
) -> None:
    settings = _edge_1(live_server, tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    uplink = Uplink(settings, outbox)
    try:
        await uplink.refresh_reference()
    finally:
        await uplink.close()
    cached = uplink.labels()  # read from the outbox, whether the server answers or not
    outbox.close()
    assert cached.stages["final_qc"] == "Final QC"  # every stage, as the lab config names it
    assert cached.treatments["blue_filter"] == "Blue-light filter"
    assert cached.frame_types["semi_rimless"] == "Semi-rimless"
    assert cached.frame["a_mm"] == "A"
