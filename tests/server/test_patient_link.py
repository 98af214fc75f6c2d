"""The patient's status link: an unguessable token showing stage, expected date and pickup
state only; replaced by a new link, expired at delivery, one 404 for every bad token."""

import httpx
import pytest

from server.domain import jobs, patient_link
from server.domain.errors import Conflict, NotFound
from server.models import EventAction, PatientLink
from server.pages.patient import NOT_VALID
from tests.server.conftest import Floor, Lab


async def test_the_link_shows_progress_and_nothing_private_until_delivery(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    north, south = lab.person("north"), lab.person("south")
    job_id = lab.make_job("J1")
    with lab.context.db.session() as session:
        with pytest.raises(NotFound):
            patient_link.create_patient_link(session, south, job_id)
        replaced = patient_link.create_patient_link(session, north, job_id)
        token = patient_link.create_patient_link(session, north, job_id)
        stored = session.query(PatientLink.token_hash).all()
        assert token not in {row.token_hash for row in stored}  # only digests are kept
    floor.send("EDGE-1", "J1", EventAction.start)
    page = await client.get(f"/p/{token}")
    assert page.status_code == 200
    assert "Being made" in page.text and "Edging" in page.text and "step 1 of 4" in page.text
    shown = page.text.split("</style>")[1]  # what the page says, past its style sheet
    for private in ("P-1", "J1", "-1.25", lab.job(job_id).store.name, "EDGE-1"):
        assert private not in shown
    assert page.headers["cache-control"] == "no-store"
    floor.complete("EDGE-1", "J1")
    for station in ("FIT-1", "QC-1", "SHIP-1"):
        floor.send(station, "J1", EventAction.start)
        floor.complete(station, "J1")
    assert "On the way to your store" in (await client.get(f"/p/{token}")).text
    with lab.context.db.session() as session:
        jobs.mark_ready_for_pickup(session, north, job_id)
    assert "Ready at your store since" in (await client.get(f"/p/{token}")).text
    with lab.context.db.session() as session:
        jobs.mark_delivered(session, north, job_id)
        with pytest.raises(Conflict):
            patient_link.create_patient_link(session, north, job_id)
    expired = await client.get(f"/p/{token}")
    answers = [
        expired,
        await client.get(f"/p/{replaced}"),
        await client.get(f"/p/{token[:-1]}A" if token[-1] != "A" else f"/p/{token[:-1]}B"),
        await client.get("/p/not-a-token"),
    ]
    assert {(a.status_code, a.text) for a in answers} == {(404, NOT_VALID)}
