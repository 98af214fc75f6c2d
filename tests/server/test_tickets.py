"""Job tickets: the PDF of a real job read back by the project's own decoder (both codes, the
DataMatrix at any angle), what it prints, and the ticket endpoints' rules on both databases."""

import math

import cv2
import httpx
import numpy as np
import pytest

from core.trace import EyeTrace, Trace
from drivers.camera import BarcodeDecoder, Symbology
from server.domain.lab_time import lab_zone, local_text
from server.models import Job, LensDesign, Priority, RemakeClass
from server.schemas import PrescriptionEyeIn
from tests.chromium import SCREENSHOTS
from tests.server.conftest import Lab
from tests.server.payloads import field_errors
from tests.tickets import job_number, page_count, page_text, rotated, text_box, ticket_image

MANAGER = ("manager", "demo-manager-pass")
NORTH = ("north", "demo-store-pass")
SOUTH = ("south", "demo-store-pass")


def _radii(a_mm: float, b_mm: float, points: int = 120) -> tuple[int, ...]:
    """A rounded rectangle A × B mm (a superellipse), in the trace's 0.01 mm."""
    radii = []
    for index in range(points):
        theta = 2 * math.pi * index / points
        x, y = abs(math.cos(theta)) / (a_mm / 2), abs(math.sin(theta)) / (b_mm / 2)
        radii.append(round(100 * (x**4 + y**4) ** -0.25))
    return tuple(radii)


@pytest.fixture
def rush_remake(lab: Lab) -> int:
    """A rush progressive remake with prism, a traced frame and special instructions."""
    original = lab.make_job("J100011", tray="T001")
    job_id = lab.make_job(
        "J100123",
        tray="T042",
        design=LensDesign.PAL,
        surfaced=True,
        priority=Priority.rush,
        right=PrescriptionEyeIn(
            sph=-2.25, cyl=-0.75, axis=180, add=2.0, prism=1.5, prism_base="up", mono_pd=31.5
        ),
    )
    with lab.context.db.session() as session:
        job = session.get_one(Job, job_id)
        job.remake_of_id, job.remake_class = original, RemakeClass.lab_redo
        job.treatments = ["hard_coat", "ar", "blue_filter"]
        job.frame = {"type": "semi_rimless", "a_mm": 52.0, "b_mm": 38.0, "dbl_mm": 18.0}
        job.trace = Trace(right=EyeTrace(radii=_radii(52, 38))).model_dump(mode="json")
        job.special_instructions = "Frame is the patient's own: scratches on the left temple."
    return job_id


@pytest.fixture
async def manager(client: httpx.AsyncClient, lab: Lab) -> httpx.AsyncClient:
    await lab.log_in(client, *MANAGER)
    return client


async def _ticket(client: httpx.AsyncClient, job_id: int) -> bytes:
    response = await client.get(f"/api/jobs/{job_id}/ticket.pdf")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    return response.content


def _read(image: np.ndarray, symbology: Symbology) -> list[tuple[str, Symbology]]:
    """What the project's decoder, looking for `symbology` only, reads in the image."""
    found = BarcodeDecoder([symbology]).decode(image).codes
    return [(code.text, code.symbology) for code in found]


async def test_both_codes_read_back_as_the_job_number(
    manager: httpx.AsyncClient, rush_remake: int
) -> None:
    response = await manager.get(f"/api/jobs/{rush_remake}/ticket.pdf")
    assert response.headers["content-disposition"] == 'inline; filename="ticket-J100123.pdf"'
    image = ticket_image(response.content, dpi=200)
    SCREENSHOTS.mkdir(exist_ok=True)
    cv2.imwrite(str(SCREENSHOTS / "ticket.png"), image)  # for a person to look at
    assert _read(image, Symbology.CODE128) == [("J100123", Symbology.CODE128)]
    assert _read(image, Symbology.DATAMATRIX) == [("J100123", Symbology.DATAMATRIX)]
    for degrees in (30, 90, 200):  # a camera sees a ticket lying at any angle
        turned = rotated(image, degrees)
        assert _read(turned, Symbology.DATAMATRIX) == [("J100123", Symbology.DATAMATRIX)], degrees


async def test_a_ticket_prints_rush_remake_and_the_right_eye_above_the_left(
    manager: httpx.AsyncClient, lab: Lab, rush_remake: int
) -> None:
    pdf = await _ticket(manager, rush_remake)
    text = page_text(pdf)
    for printed in (
        "RUSH",
        "REMAKE of J100011 · Lab redo",
        "Tray T042",
        "NORTH · Northside Vision",
        "Patient P-1",
        "1.5 BU",
        "Progressive · CR-39 1.50 · surfaced",
        "Hard coat, Anti-reflective, Blue-light filter",  # the lab's names, not identifiers
        "Semi-rimless · A 52 · B 38 · DBL 18",
        "1 Cutting / surface",  # the route's stages by name, numbered
        "8 Shipping",
        "scratches on the left temple",
    ):
        assert printed in text, printed
    assert "_" not in text, text
    # R's sphere (-2.25) sits above L's (-1.00): PDF y grows upwards.
    assert text_box(pdf, "-2.25")[1] > text_box(pdf, "-1.00")[1]
    job = lab.job(rush_remake)
    with lab.context.db.session() as session:
        due = local_text(job.promised_at, lab_zone(session, job.lab_id))
    assert f"Due {due}" in text  # in the lab's time zone


async def test_a_regular_job_has_no_rush_or_remake_mark(
    manager: httpx.AsyncClient, lab: Lab
) -> None:
    text = page_text(await _ticket(manager, lab.make_job("J200")))
    assert "RUSH" not in text and "REMAKE" not in text
    assert "New job" in text


async def test_a_selection_prints_one_page_per_job_in_the_order_asked(
    manager: httpx.AsyncClient, lab: Lab
) -> None:
    ids = [lab.make_job(number) for number in ("J301", "J302", "J303")]
    response = await manager.get("/api/tickets.pdf", params={"jobs": f"{ids[2]},{ids[0]},{ids[1]}"})
    assert response.status_code == 200, response.text
    assert page_count(response.content) == 3
    numbers = [job_number(response.content, page) for page in range(3)]
    assert numbers == ["J303", "J301", "J302"]
    missing = await manager.get("/api/tickets.pdf", params={"jobs": f"{ids[0]},999999"})
    assert missing.status_code == 404
    assert field_errors(missing) == {"jobs": "no job 999999"}
    beyond_any_row = await manager.get("/api/tickets.pdf", params={"jobs": "1,9999999999"})
    assert beyond_any_row.status_code == 422
    assert "jobs" in field_errors(beyond_any_row)
    too_many = ",".join(str(n) for n in range(1, 202))
    assert (await manager.get("/api/tickets.pdf", params={"jobs": too_many})).status_code == 422
    assert (await manager.get("/api/tickets.pdf", params={"jobs": "1;2"})).status_code == 422


async def test_print_new_prints_each_job_once_oldest_first(
    manager: httpx.AsyncClient, lab: Lab
) -> None:
    first, second = lab.make_job("J401"), lab.make_job("J402")
    printed = await manager.post("/api/tickets/print-new")
    assert printed.status_code == 200, printed.text
    assert [job_number(printed.content, page) for page in range(2)] == ["J401", "J402"]
    assert lab.job(first).ticket_printed_at is not None
    assert lab.job(second).ticket_printed_at is not None
    again = await manager.post("/api/tickets/print-new")
    assert again.status_code == 409
    assert "printed already" in field_errors(again)["jobs"]
    third = lab.make_job("J403")
    newer = await manager.post("/api/tickets/print-new")
    assert page_count(newer.content) == 1 and "J403" in page_text(newer.content)
    assert lab.job(third).ticket_printed_at is not None


async def test_printing_one_ticket_in_the_lab_takes_it_out_of_the_next_batch(
    manager: httpx.AsyncClient, lab: Lab
) -> None:
    job_id = lab.make_job("J501")
    await _ticket(manager, job_id)
    assert lab.job(job_id).ticket_printed_at is not None
    assert (await manager.post("/api/tickets/print-new")).status_code == 409


async def test_a_station_prints_any_job_of_the_lab(client: httpx.AsyncClient, lab: Lab) -> None:
    job_id = lab.make_job("J601", store="SOUTH")
    response = await client.get(
        f"/api/jobs/{job_id}/ticket.pdf", headers=lab.station_headers("EDGE-1")
    )
    assert response.status_code == 200, response.text
    assert lab.job(job_id).ticket_printed_at is not None
    station_batch = await client.post(
        "/api/tickets/print-new", headers=lab.station_headers("EDGE-1")
    )
    assert station_batch.status_code == 403
    # Nor a chosen batch: a bulk read of prescriptions, where a station scans one job.
    chosen = await client.get(
        "/api/tickets.pdf", params={"jobs": str(job_id)}, headers=lab.station_headers("EDGE-1")
    )
    assert chosen.status_code == 403


async def test_store_staff_see_only_their_own_stores_tickets(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    north, south = lab.make_job("J701", store="NORTH"), lab.make_job("J702", store="SOUTH")
    await lab.log_in(client, *NORTH)
    own = await _ticket(client, north)
    assert "J701" in page_text(own)
    # Looking at it in the store does not keep it out of the lab's next batch.
    assert lab.job(north).ticket_printed_at is None
    other = await client.get(f"/api/jobs/{south}/ticket.pdf")
    missing = await client.get("/api/jobs/999999/ticket.pdf")
    assert (other.status_code, other.json()) == (
        404,
        {"detail": [{"field": "job_id", "message": f"no job {south}"}]},
    )
    assert missing.status_code == 404
    batch = await client.get("/api/tickets.pdf", params={"jobs": f"{north},{south}"})
    assert (batch.status_code, field_errors(batch)) == (404, {"jobs": f"no job {south}"})
    assert (await client.post("/api/tickets/print-new")).status_code == 403
    assert lab.job(south).ticket_printed_at is None


async def test_a_ticket_needs_a_log_in(client: httpx.AsyncClient, lab: Lab) -> None:
    job_id = lab.make_job("J801")
    assert (await client.get(f"/api/jobs/{job_id}/ticket.pdf")).status_code == 401
