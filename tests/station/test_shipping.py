"""The shipping station: a job in hand is completed by SHIP with its carrier, tracking number
(scanned or typed) and box, and the shipment travels with the complete event."""

from pathlib import Path

import pytest

from station.flow import SHIPPING, StationFlow
from station.outbox import Outbox
from station.wire import Action, JobCard
from tests.station.fakes import FakeSource, card

CARRIERS = ["DHL", "Lab courier"]
TRACKING = "JD014600001234"


def _shipping_card(status: str) -> JobCard:
    job = card(stage="shipping", status=status)
    stages = [
        stage.model_copy(update={"carriers": CARRIERS if stage.code == "shipping" else None})
        for stage in job.route_stages
    ]
    return job.model_copy(update={"route_stages": stages})


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite3")


@pytest.fixture
def flow(outbox: Outbox) -> StationFlow:
    source = FakeSource(outbox)
    source.cards["J1"] = _shipping_card("queued")
    return StationFlow(
        outbox, source, stage="shipping", idle_sign_out_seconds=600, repeat_scan_seconds=0
    )


async def test_a_scanned_tracking_number_and_ship_complete_the_job_with_its_shipment(
    flow: StationFlow, outbox: Outbox
) -> None:
    await flow.scan("B1001")
    started = await flow.scan("J1")
    assert (started.message, started.carriers, started.tracking) == (
        "Started",
        ("DHL", "Lab courier"),
        "",
    )
    again = await flow.scan("J1")  # the job scanned again waits for its shipment
    assert again.message == SHIPPING
    assert [event.action for event in outbox.events_for_job({"J1"})] == [Action.start]

    read = await flow.scan(TRACKING)  # no job here: the carrier's label
    assert (read.tone, read.tracking) == ("ok", TRACKING)
    assert flow.ship("UPS", TRACKING, "").message == "Choose the carrier"
    refused = flow.ship("DHL", "no!", "")
    assert refused.tone == "error" and "tracking number" in refused.message
    assert [event.action for event in outbox.events_for_job({"J1"})] == [Action.start]

    shipped = flow.ship("DHL", TRACKING, " B-12 ")
    assert (shipped.tone, shipped.message, shipped.carriers, shipped.box) == (
        "ok",
        "Completed",
        (),
        "B-12",
    )
    complete = outbox.events_for_job({"J1"})[-1]
    wire = complete.wire(0, complete.created_at)
    assert wire.action == Action.complete and wire.shipment is not None
    assert wire.shipment.model_dump() == {
        "carrier": "DHL",
        "tracking_number": TRACKING,
        "box": "B-12",
    }


async def test_elsewhere_a_scan_completes_as_before(outbox: Outbox) -> None:
    source = FakeSource(outbox)
    source.cards["J1"] = _shipping_card("queued").model_copy(
        update={"current_stage": card().current_stage}
    )
    flow = StationFlow(
        outbox, source, stage="edging", idle_sign_out_seconds=600, repeat_scan_seconds=0
    )
    await flow.scan("B1001")
    await flow.scan("J1")
    done = await flow.scan("J1")
    assert (done.message, done.carriers) == ("Completed, next: Fitting", ())
