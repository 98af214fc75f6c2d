"""A store's message settings: the API, who may change them, store scoping, `config load`,
and the settings page with a shipped job's tracking in a real browser (screenshots)."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, expect

from lenstrack.mail_sink import MailSink, ReceivedMail
from server.domain.labsetup import apply_lab_config
from server.labconfig import LabConfig
from server.models import Store
from server.notify.preferences import next_digest_at
from tests.chromium import chromium, logged_in_page, screenshot
from tests.liveserver import LiveServer
from tests.server.conftest import Lab
from tests.server.payloads import job_body
from tests.station.test_browser import open_station, running_station, shot, sign_in, wedge

SETTINGS = "/api/stores/me/notifications"
TRACKING = "JD014600001234"
CHOICE = {
    "notify_email": "orders@north.test",
    "milestones": ["shipped", "order_received", "shipped"],
    "email_mode": "digest",
    "digest_hour": 6,
}


async def test_the_store_manager_sets_what_the_store_hears_and_staff_only_read_it(
    lab: Lab, client: httpx.AsyncClient
) -> None:
    await lab.log_in(client, "north", "demo-store-pass")
    defaults = (await client.get(SETTINGS)).json()
    assert defaults == {
        "store_code": "NORTH",
        "notify_email": "orders@northside.example",  # from config/lab.example.toml
        "milestones": ["shipped", "ready_for_pickup", "late_or_at_risk", "rework_or_breakage"],
        "email_mode": "immediate",
        "digest_hour": 7,
        "can_edit": True,
    }
    saved = await client.put(SETTINGS, json=CHOICE)
    assert saved.status_code == 200, saved.text
    assert saved.json()["milestones"] == ["order_received", "shipped"]  # once, in job order
    assert (await client.get("/api/stores/NORTH/notifications")).json() == saved.json()

    await lab.log_in(client, "south", "demo-store-pass")  # staff, not their store's manager
    own = (await client.get(SETTINGS)).json()
    assert (own["store_code"], own["can_edit"], own["notify_email"]) == ("SOUTH", False, None)
    refused = await client.put(SETTINGS, json=CHOICE)
    assert (refused.status_code, refused.json()["detail"][0]["field"]) == (403, "role")
    for method in ("GET", "PUT"):  # another store's answers as a missing one's
        answer = await client.request(method, "/api/stores/NORTH/notifications", json=CHOICE)
        assert answer.status_code == 404
        missing = await client.request(method, "/api/stores/NOWHERE/notifications", json=CHOICE)
        assert missing.json() == {"detail": [{"field": "code", "message": "no store 'NOWHERE'"}]}
        assert answer.json() == {"detail": [{"field": "code", "message": "no store 'NORTH'"}]}

    await lab.log_in(client, "manager", "demo-manager-pass")  # the lab: any store
    south = await client.put("/api/stores/SOUTH/notifications", json=CHOICE)
    assert (south.status_code, south.json()["store_code"]) == (200, "SOUTH")


async def test_bad_settings_are_a_422_naming_the_field(lab: Lab, client: httpx.AsyncClient) -> None:
    await lab.log_in(client, "north", "demo-store-pass")
    cases = [
        ({"notify_email": "not an address"}, "notify_email"),
        ({"notify_email": "a@b.c, evil@x.y"}, "notify_email"),
        ({"milestones": ["prescription"]}, "milestones.0"),
        ({"email_mode": "hourly"}, "email_mode"),
        ({"digest_hour": 24}, "digest_hour"),
        ({"digest_hour": "7"}, "digest_hour"),  # no silent coercion
        ({"patient_ref": "x"}, "patient_ref"),
    ]
    for change, field in cases:
        response = await client.put(SETTINGS, json=CHOICE | change)
        assert response.status_code == 422, change
        assert response.json()["detail"][0]["field"] == field, change
    assert (await client.get(SETTINGS)).json()["email_mode"] == "immediate"  # nothing saved


def test_config_load_sets_a_stores_address_and_leaves_it_when_not_given(
    lab: Lab, lab_config: LabConfig
) -> None:
    stores = [store.model_copy(update={"notify_email": None}) for store in lab_config.stores]
    with lab.context.db.session() as session:
        session.get_one(Store, 2).notify_email = "set@south.test"  # by its manager
        apply_lab_config(session, lab_config.model_copy(update={"stores": stores}))
        assert [store.notify_email for store in session.query(Store).order_by(Store.id)] == [
            "orders@northside.example",  # kept too: the config left it out
            "set@south.test",
        ]
    with pytest.raises(ValueError, match="notify_email"):
        LabConfig.model_validate(
            lab_config.model_dump() | {"stores": [{"code": "X", "name": "X", "notify_email": "x"}]}
        )


def test_the_digest_hour_is_the_labs_local_hour_across_a_clock_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # The night summer time ends (03:00 CEST -> 02:00 CET): 07:00 local is 06:00 UTC.
    assert next_digest_at(datetime(2026, 10, 24, 6, 0, tzinfo=UTC), berlin, 7) == datetime(
        2026, 10, 25, 6, 0, tzinfo=UTC
    )
    assert next_digest_at(datetime(2026, 10, 25, 5, 59, tzinfo=UTC), berlin, 7) == datetime(
        2026, 10, 25, 6, 0, tzinfo=UTC
    )


@pytest.fixture(scope="module")
def mail_sink() -> Iterator[MailSink]:
    with MailSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mail_sink: MailSink) -> Iterator[LiveServer]:
    """The demo lab served with its e-mail going to the sink (no log-in, plain SMTP)."""
    server = LiveServer(tmp_path_factory.mktemp("store-settings"))
    server.env |= {
        f"LENSTRACK_{key.upper()}": str(value) for key, value in mail_sink.settings().items()
    }
    server.cli("seed-demo", "--jobs", "4")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


def _north_job_at_shipping(http: httpx.Client, server: LiveServer) -> tuple[int, str]:
    """A new NORTH order worked through QC by the lab's stations, queued at shipping."""
    http.post(
        f"{server.url}/api/auth/login",
        json={"username": "north", "password": "demo-store-pass"},
    ).raise_for_status()
    created = http.post(f"{server.url}/api/jobs", json=job_body(None))
    assert created.status_code == 201, created.text
    job = created.json()
    measured = {"R": {"sph": -1.25, "cyl": -0.5, "axis": 90}, "L": {"sph": -1.0, "cyl": 0.0}}
    for station in ("EDGE-1", "FIT-1", "QC-1"):
        fields = {"inspection": {"measured": measured}} if station == "QC-1" else {}
        for action, extra in (("start", {}), ("complete", fields)):
            sent = server.send(http, station, job["job_number"], action, **extra)
            assert sent.status_code == 201 and sent.json()["status"] == "stored", sent.text
    return int(job["id"]), job["job_number"]


def _ship_at_the_station(browser: Browser, server: LiveServer, root: Path, number: str) -> None:
    """SHIP-1's operator scans the job and the carrier's label, picks DHL, types the box."""
    with running_station(server, root, "SHIP-1", "shipping") as url:
        page = browser.new_page(viewport={"width": 1024, "height": 768})
        open_station(page, url)
        sign_in(page)
        wedge(page, number)
        expect(page.get_by_text("Started", exact=True)).to_be_visible(timeout=5_000)
        wedge(page, TRACKING)
        expect(page.get_by_text(f"Tracking number {TRACKING}: press SHIP")).to_be_visible()
        page.get_by_role("button", name="DHL").click()
        page.get_by_label("Box or batch").fill("B-12")
        shot(page, "shipping")
        page.get_by_role("button", name="SHIP").click()
        expect(page.get_by_text("Completed", exact=True)).to_be_visible(timeout=5_000)
        page.close()


def _mail_about(sink: MailSink, subject: str) -> ReceivedMail:
    """The message once the server's worker sent it (it sends as the feed is read)."""
    for _ in range(300):
        found = [mail for mail in sink.mails if mail.subject == subject]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no mail {subject!r}; got {[mail.subject for mail in sink.mails]}")


@pytest.mark.browser
def test_a_job_shipped_at_the_station_reaches_the_store_page_and_its_mail(
    server: LiveServer, browser: Browser, mail_sink: MailSink, tmp_path: Path
) -> None:
    page = logged_in_page(browser, server.url, "north", "demo-store-pass")
    page.goto(f"{server.url}/store/settings")
    expect(page.locator("[data-section=settings-form]")).to_be_visible()
    page.get_by_role("checkbox", name="order received").click()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved")).to_be_visible()
    with httpx.Client(timeout=10) as http:
        job_id, number = _north_job_at_shipping(http, server)
        _ship_at_the_station(browser, server, tmp_path, number)
        shipment = http.get(f"{server.url}/api/jobs/{job_id}/shipment").json()
    assert (shipment["carrier"], shipment["tracking_number"], shipment["box"]) == (
        "DHL",
        TRACKING,
        "B-12",
    )
    page.goto(f"{server.url}/store/jobs/{job_id}")
    expect(page.locator("[data-section=shipment]")).to_contain_text(
        f"with DHL · tracking {TRACKING} · box B-12"
    )
    screenshot(page, "store-job-shipped", full_page=True)

    shipped = _mail_about(mail_sink, f"[LensTrack NORTH] Job {number}: shipped")
    assert shipped.recipients == ["orders@northside.example"]
    assert f"Carrier: DHL\nTracking number: {TRACKING}\nBox: B-12\n" in shipped.text
    received = _mail_about(mail_sink, f"[LensTrack NORTH] Job {number}: order received")
    for mail in (shipped, received):
        assert "P-100" not in mail.message.as_string()  # the order's patient reference
    page.goto(f"{server.url}/store/settings")
    log = page.locator("[data-section=sent-log]")
    expect(log).to_contain_text("shipped")
    expect(log).to_contain_text("delivered")
    screenshot(page, "store-settings", full_page=True)

    staff = logged_in_page(browser, server.url, "south", "demo-store-pass")
    staff.goto(f"{server.url}/store/settings")
    expect(staff.get_by_text("Only your store's manager changes these.")).to_be_visible()
    expect(staff.get_by_role("button", name="Save")).to_be_disabled()
    screenshot(staff, "store-settings-staff", full_page=True)
    staff.goto(f"{server.url}/store/settings?store=NORTH")
    expect(staff.get_by_text("no store 'NORTH'")).to_be_visible()  # as for a missing one
    staff.goto(f"{server.url}/store/jobs/{job_id}")
    expect(staff.get_by_text("Job not found.")).to_be_visible()
