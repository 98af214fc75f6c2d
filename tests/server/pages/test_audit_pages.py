"""The audit trail from the pages: a store's views of a prescription, and who acted on a page."""

from nicegui import ui

from server.models import AuditEntry, EventAction
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
