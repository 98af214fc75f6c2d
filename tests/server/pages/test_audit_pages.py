"""The audit trail from the pages: a store's views of a prescription, and who acted on a page."""

from datetime import timedelta

import pytest
from nicegui import ui
from nicegui.testing.user import User
from sqlalchemy import update

from server.domain import audit, auth
from server.models import AuditEntry, EventAction, utcnow
from server.models import Lab as LabRow
from server.pages import audit as audit_page
from tests.server.conftest import Floor, Lab
from tests.server.pages.conftest import LogIn
from tests.server.test_audit import _entries, _last_id


def _by_whom(entries: list[AuditEntry]) -> list[tuple[str, str, int | None]]:
    return [(entry.action, entry.subject, entry.actor_id) for entry in entries]


async def test_a_store_persons_job_and_edit_pages_log_the_view_and_a_managers_do_not(
    lab: Lab, log_in: LogIn
) -> None:
    job_id = lab.make_job("N-1")
    before = _last_id(lab)
    user = await log_in("manager", "demo-manager-pass")
    await user.open(f"/store/jobs/{job_id}")
    await user.should_see("Route")
    assert _entries(lab, before) == []
    user = await log_in("north", "demo-store-pass")
    await user.open(f"/store/jobs/{job_id}")
    await user.should_see("Route")
    await user.open(f"/store/orders/{job_id}/edit")
    await user.should_see("Save changes")
    north = lab.person("north").person_id
    assert _by_whom(_entries(lab, before)) == [("prescription.view", f"job:{job_id}", north)] * 2


async def test_a_cancel_asked_on_the_page_is_the_store_persons(
    lab: Lab, floor: Floor, log_in: LogIn
) -> None:
    job_id = lab.make_job("N-2")
    floor.send("EDGE-1", "N-2", EventAction.start)
    user = await log_in("north", "demo-store-pass")
    await user.open(f"/store/jobs/{job_id}")
    await user.should_see("Ask the lab to cancel")
    before = _last_id(lab)
    user.find("Ask the lab to cancel").click()
    user.find(ui.input).type("the patient changed their mind")
    user.find("Send request").click()
    await user.should_see("Sent to the lab")
    [entry] = _entries(lab, before)
    assert (entry.action, entry.actor_kind, entry.actor_id) == (
        "change_request.create",
        "person",
        lab.person("north").person_id,
    )


def _shown(user: User) -> list[dict[str, object]]:
    [table] = user.find(ui.table).elements
    return list(table.rows)


def _make_tokens(lab: Lab, *names: str) -> None:
    for name in names:
        with lab.context.db.session() as session:
            auth.create_lab_token(session, name)


async def test_a_manager_lists_the_labs_entries_newest_first_and_filters_them(
    lab: Lab, log_in: LogIn
) -> None:
    before = _last_id(lab)
    _make_tokens(lab, "lms", "dcs")
    with lab.context.db.session() as session:  # another lab: its entries are not this one's
        session.add(LabRow(code="OTHER", name="Another lab"))
    user = await log_in("manager", "demo-manager-pass")

    await user.open("/lab/audit")

    rows = [row for row in _shown(user) if int(str(row["id"])) > before]
    assert [(row["action"], row["detail"]) for row in rows] == [
        ("lab_token.create", "name: dcs"),
        ("lab_token.create", "name: lms"),
    ]
    operator = audit.local_actor().name
    assert rows[0]["who"] == f"{operator} (system)" and rows[0]["source"] == "local"
    subject = str(rows[1]["subject"])
    await user.open(f"/lab/audit?subject={subject}")
    assert [row["subject"] for row in _shown(user)] == [subject]
    await user.open("/lab/audit?action=lab_token&who=" + operator.upper()[:3])
    assert {row["action"] for row in _shown(user)} == {"lab_token.create"}
    await user.open("/lab/audit?action=lab")  # lab.*, not lab_token.*
    assert {row["action"] for row in _shown(user)} <= {"lab.create", "lab.update"}
    today = utcnow().date()
    await user.open(f"/lab/audit?since={today}&until={today}&action=lab_token")
    assert len(_shown(user)) == 2
    await user.open(f"/lab/audit?until={today - timedelta(days=1)}")
    await user.should_see("No entries.")


async def test_the_audit_page_goes_back_a_bounded_page_at_a_time(
    lab: Lab, log_in: LogIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_page, "PAGE_SIZE", 2)
    _make_tokens(lab, "t1", "t2", "t3")
    user = await log_in("manager", "demo-manager-pass")

    await user.open("/lab/audit?action=lab_token")

    newest = _shown(user)
    assert [row["detail"] for row in newest] == ["name: t3", "name: t2"]
    await user.open(f"/lab/audit?action=lab_token&before={newest[-1]['id']}")
    assert [row["detail"] for row in _shown(user)] == ["name: t1"]
    await user.should_see("← Newest")
    await user.should_not_see("Older →")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("before=0", "before"),
        ("since=2026-12-02&until=2026-12-01", "until"),
        ("until=2100-01-01", "until"),
        ("action=drop%20table", "action"),
        ("who=" + "x" * 121, "who"),
    ],
)
async def test_a_bad_filter_is_a_422_naming_it(
    lab: Lab, log_in: LogIn, query: str, field: str
) -> None:
    user = await log_in("manager", "demo-manager-pass")
    response = await user.http_client.get(f"/lab/audit?{query}")
    assert response.status_code == 422, response.text
    assert [problem["field"] for problem in response.json()["detail"]] == [field]


async def test_verify_chain_shows_the_head_hash_or_the_first_bad_entry(
    lab: Lab, log_in: LogIn
) -> None:
    _make_tokens(lab, "lms")
    with lab.context.db.read_session() as session:
        head = audit.verify(session).head
    user = await log_in("manager", "demo-manager-pass")
    await user.open("/lab/audit")
    user.find("Verify chain").click()
    await user.should_see(f"Head hash {head}")

    edited = _last_id(lab)
    with lab.context.db.engine.begin() as connection:
        connection.execute(
            update(AuditEntry).where(AuditEntry.id == edited).values(actor_name="nobody")
        )
    user.find("Verify chain").click()
    await user.should_see(f"Chain broken at entry {edited}")


async def test_the_wip_board_links_the_audit_page_for_managers_only(
    lab: Lab, log_in: LogIn
) -> None:
    user = await log_in("manager", "demo-manager-pass")
    await user.open("/wip")
    await user.should_see("Audit trail →")
    user = await log_in("tech2", "demo-tech-pass")
    await user.open("/wip")
    await user.should_not_see("Audit trail →")
