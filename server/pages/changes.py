"""Edits, cancels, change requests and remakes on the pages.

The store's job page gets the order's actions (edit or request a change, cancel, open a
remake) and its history; the lab manager decides change requests at `/lab/changes`, one
card per pending request with old → new per value, updated live.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from sqlalchemy.orm import Session

from server.api.deps import RowId
from server.context import ServerContext
from server.domain import audit, changes, remakes, views
from server.domain.auth import LAB_ROLES, MANAGER_ROLES, PersonPrincipal
from server.domain.errors import DomainError
from server.domain.orders import OrderChoices
from server.domain.views import JobDetail, QueueItem, RequestView, ValueChange
from server.models import ChangeState, RemakeClass, utcnow
from server.pages.access import (
    STORE_PORTAL_ROLES,
    admit,
    log_prescription_view,
    page_header,
)
from server.pages.live_view import PageFeed
from server.pages.orders import OrderForm
from server.schemas import JobCreate

REMAKE_CLASSES = {value: name.capitalize() for value, name in views.REMAKE_CLASS_NAMES.items()}
STATE_CHIPS = {
    ChangeState.pending: ("Waiting for the lab", "amber-9"),
    ChangeState.accepted: ("Accepted", "green-9"),
    ChangeState.declined: ("Declined", "red-9"),
}
STAYS = "_stays"  # the return stage select's "stays where it is"


def edit_path(job_id: int) -> str:
    return f"/store/orders/{job_id}/edit"


class OrderActions:
    """What a person does to one order from a page; the change comes back through the bus."""

    def __init__(self, context: ServerContext, principal: PersonPrincipal) -> None:
        self.context = context
        self.principal = principal
        # Made when the page opens: its buttons run outside that request.
        self.opener = audit.actor_for(principal)

    @property
    def decides(self) -> bool:
        return self.principal.role in MANAGER_ROLES

    async def run(self, work: Callable[[Session], Any], done: str | None = None) -> Any:
        """`work` in a transaction of its own; a refusal is shown, not raised (None)."""

        def transaction() -> Any:
            with self.context.session() as session:
                return work(session)

        try:
            with audit.acting_as(self.opener):
                result = await asyncio.to_thread(transaction)
        except DomainError as error:
            ui.notify(error.message, type="negative", multi_line=True)
            return None
        if done:
            ui.notify(done, type="positive")
        return result

    async def cancel(self, job_id: int, reason: str) -> bool:
        def work(session: Session) -> str:
            result = changes.cancel_job(session, self.principal, job_id, reason)
            if result.request is not None:
                return f"Sent to the lab: change request {result.request.id}"
            return "Order cancelled"

        said = await self.run(work)
        if said:
            ui.notify(said, type="positive")
        return said is not None

    async def remake(self, job_id: int, remake_class: RemakeClass, reason: str) -> None:
        def work(session: Session) -> int:
            return remakes.open_remake(session, self.principal, job_id, remake_class, reason).id

        remake_id = await self.run(work, "Remake opened: check its order, then save")
        if remake_id is not None:
            ui.navigate.to(edit_path(remake_id))

    async def accept(self, request_id: int, stage: str | None, stay: bool) -> None:
        await self.run(
            lambda session: changes.accept_change(session, self.principal, request_id, stage, stay),
            f"Change request {request_id} accepted",
        )

    async def decline(self, request_id: int, reason: str) -> None:
        await self.run(
            lambda session: changes.decline_change(session, self.principal, request_id, reason),
            f"Change request {request_id} declined",
        )


def _reason_ok(value: str) -> bool:
    return 3 <= len(value.strip()) <= 200  # as changes.checked_reason


REASON_RULE = {"3 to 200 characters": _reason_ok}


def _reason_input(label: str) -> ui.input:
    return (
        ui.input(label, validation=REASON_RULE)
        .props("autofocus outlined maxlength=200")
        .classes("w-full")
    )


def _cancel_dialog(detail: JobDetail, actions: OrderActions) -> ui.dialog:
    asks = detail.started and not actions.decides
    with ui.dialog() as dialog, ui.card().classes("w-[28rem] gap-3"):
        ui.label("Ask the lab to cancel" if asks else "Cancel this order").classes("text-xl")
        if asks:
            ui.label("Production has started: a lab manager decides.").classes("text-slate-600")
        reason = _reason_input("Why is it cancelled?").props("data-part=cancel-reason")

        async def confirm() -> None:
            if reason.validate() and await actions.cancel(detail.row.job_id, reason.value):
                dialog.close()

        reason.on("keydown.enter", confirm)
        with ui.row().classes("w-full justify-end"):
            ui.button("Keep the order", on_click=dialog.close).props("flat")
            ui.button("Send request" if asks else "Cancel order", on_click=confirm).props(
                "color=red-9 unelevated"
            ).props("data-part=confirm-cancel")
    return dialog


def _remake_dialog(detail: JobDetail, actions: OrderActions) -> ui.dialog:
    with ui.dialog() as dialog, ui.card().classes("w-[28rem] gap-3"):
        ui.label(f"Open a remake of {detail.row.job_number}").classes("text-xl")
        ui.label("A new job with this order's values; check them before you save.").classes(
            "text-slate-600"
        )
        remake_class = (
            ui.select(REMAKE_CLASSES, label="Class", value=RemakeClass.lab_redo)
            .props("outlined")
            .classes("w-full")
            .props("data-part=remake-class")
        )
        reason = _reason_input("Reason").props("data-part=remake-reason")

        async def confirm() -> None:
            if reason.validate():
                await actions.remake(
                    detail.row.job_id, RemakeClass(remake_class.value), reason.value
                )

        reason.on("keydown.enter", confirm)
        with ui.row().classes("w-full justify-end"):
            ui.button("Close", on_click=dialog.close).props("flat")
            ui.button("Open remake", on_click=confirm).props("unelevated data-part=confirm-remake")
    return dialog


def order_panel(detail: JobDetail, actions: OrderActions) -> None:
    """The order's actions, what became of it, and the jobs it is linked to."""
    with ui.row().classes("w-full items-center gap-3").props("data-section=order-actions"):
        if detail.in_lab:
            blocked = detail.started and detail.pending_request
            edit = ui.button(
                "Request a change" if detail.started else "Edit order",
                icon="edit",
                on_click=lambda: ui.navigate.to(edit_path(detail.row.job_id)),
            ).props("unelevated")
            cancel = ui.button(
                "Ask the lab to cancel"
                if detail.started and not actions.decides
                else "Cancel order",
                icon="block",
                on_click=lambda: _cancel_dialog(detail, actions).open(),
            ).props("outline color=red-9")
            if blocked:
                edit.disable()
                if not actions.decides:
                    cancel.disable()
                ui.label("A change request is waiting for the lab.").classes("text-amber-900")
        if detail.can_remake:
            ui.button(
                "Open a remake",
                icon="replay",
                on_click=lambda: _remake_dialog(detail, actions).open(),
            ).props("unelevated color=deep-purple-8")
        if detail.cancel_reason:
            ui.label(f"Cancelled: {detail.cancel_reason}").classes("text-lg text-red-900")
        if link := detail.remake_of:
            with ui.row().classes("items-center gap-1").props("data-link=remake-of"):
                ui.label("Remake of")
                ui.link(link.job_number, f"/store/jobs/{link.job_id}").classes("font-semibold")
                ui.label(f"({link.remake_class}: {link.reason})")
        if detail.remakes:
            with ui.row().classes("items-center gap-2").props("data-link=remakes"):
                ui.label("Remakes:")
                for remake in detail.remakes:
                    ui.link(remake.job_number, f"/store/jobs/{remake.job_id}").classes(
                        "font-semibold"
                    ).tooltip(f"{remake.remake_class}: {remake.reason}")


CELLS = (
    "pr-3 font-medium whitespace-nowrap",  # what
    "pr-2 text-slate-500 line-through",  # old
    "pr-2",  # →
    "font-semibold",  # new
)


def _changes_table(rows: tuple[ValueChange, ...]) -> None:
    """What → old → new, a row per value (labels: the store's text is shown, never run)."""
    with ui.element("table").classes("text-sm"):
        for change in rows:
            with ui.element("tr"):
                for text, classes in zip(
                    (change.field, change.old, "→", change.new), CELLS, strict=True
                ):
                    with ui.element("td").classes(classes):
                        ui.label(text)


def _request_entry(request: RequestView) -> None:
    text, colour = STATE_CHIPS[request.state]
    with (
        ui.column()
        .classes("w-full gap-1 border-l-4 pl-3")
        .props(f"data-request={request.id} data-state={request.state.value}")
    ):
        with ui.row().classes("items-center gap-2"):
            ui.badge(text, color=colour)
            ui.label(f"Change request {request.id} · {request.requested}").classes("font-semibold")
        _changes_table(request.changes)
        if request.decided:
            back = f" · back to {request.return_stage}" if request.return_stage else ""
            ui.label(f"{text} {request.decided}{back}").classes("text-sm text-slate-600")
        if request.decline_reason:
            ui.label(f"Reason: {request.decline_reason}").classes("text-sm text-red-900")


def history_card(detail: JobDetail) -> None:
    """Every change request and every changed value, newest first."""
    with ui.card().classes("w-full").props("data-section=history"):
        ui.label("History").classes("text-xl font-semibold")
        if not detail.history and not detail.requests:
            ui.label("No changes to the order.").classes("text-slate-500")
        for request in detail.requests:
            _request_entry(request)
        if detail.history:
            ui.table(
                columns=[
                    {"name": key, "label": label, "field": key, "align": "left"}
                    for key, label in (
                        ("at", "When"),
                        ("who", "Who"),
                        ("field", "What"),
                        ("old", "Old"),
                        ("new", "New"),
                        ("via", "By request"),
                    )
                ],
                rows=[
                    {
                        "id": index,
                        "at": entry.at,
                        "who": entry.who,
                        "field": entry.change.field,
                        "old": entry.change.old,
                        "new": entry.change.new,
                        "via": entry.request_id or "",
                    }
                    for index, entry in enumerate(detail.history)
                ],
                row_key="id",
            ).props("flat dense data-table=changes").classes("w-full")


def _queue_card(item: QueueItem, actions: OrderActions) -> ui.element:
    with ui.card().classes("w-full gap-2").props(f"data-job-id={item.job_id}") as card:
        with ui.row().classes("items-center gap-3"):
            ui.link(item.job_number, f"/store/jobs/{item.job_id}").classes("text-xl font-bold")
            ui.label(f"{item.store_code} · {item.state}").classes("text-slate-700")
        ui.label(f"Change request {item.request.id} · {item.request.requested}").classes(
            "text-sm text-slate-600"
        )
        if item.cancel:
            ui.label("The store asks to cancel the order").classes("font-semibold text-red-900")
        _changes_table(item.request.changes)
        if item.problem:
            ui.label(f"Cannot be accepted as it stands: {item.problem}").classes("text-red-900")
        with ui.row().classes("w-full items-end gap-3"):
            stage = None
            if item.stages:
                options = {STAYS: "Stays where it is"} | dict(item.stages)
                stage = (
                    ui.select(options, label="Back to", value=item.suggested or STAYS)
                    .props("outlined dense")
                    .classes("w-72")
                    .props("data-part=return-stage")
                )

            async def accept() -> None:
                chosen = stage.value if stage is not None else None
                stay = chosen == STAYS
                await actions.accept(item.request.id, None if stay else chosen, stay)

            ui.button("Accept", icon="check", on_click=accept).props(
                "unelevated color=green-9 data-part=accept"
            )
            reason = (
                ui.input("Decline reason", validation=REASON_RULE)
                .props("outlined dense maxlength=200")
                .classes("grow")
                .props("data-part=decline-reason")
            )

            async def decline() -> None:
                if reason.validate():
                    await actions.decline(item.request.id, reason.value)

            ui.button("Decline", icon="close", on_click=decline).props(
                "outline color=red-9 data-part=decline"
            )
    return card


class ChangeQueue:
    """The pending requests, oldest first; a job's card is rebuilt or dropped as it changes."""

    def __init__(self, items: list[QueueItem], actions: OrderActions) -> None:
        self.actions = actions
        self.empty = ui.label("No change requests are waiting.").classes("text-slate-500")
        self.list = ui.column().classes("w-full gap-3")
        self.cards: dict[int, ui.element] = {}
        for item in items:
            self.show(item.job_id, item)

    def show(self, job_id: int, item: QueueItem | None) -> None:
        old = self.cards.pop(job_id, None)
        if item is not None:
            with self.list:
                self.cards[job_id] = _queue_card(item, self.actions)
            if old is not None:  # in its place
                self.cards[job_id].move(self.list, self.list.default_slot.children.index(old))
        if old is not None:
            self.list.remove(old)
        self.empty.set_visibility(not self.cards)


async def _edit_form(
    context: ServerContext,
    principal: PersonPrincipal,
    job_id: int,
    current: JobCreate,
    choices: OrderChoices,
    started: bool,
) -> None:
    """The order form filled with the job's order; saving edits it or asks the lab."""

    def kept(order: JobCreate) -> JobCreate:
        # The form has no trace field: the job's shape stays unless an order brings another.
        return order if order.trace else order.model_copy(update={"trace": current.trace})

    def check(session: Session, order: JobCreate) -> None:
        changes.check_edit(session, principal, job_id, kept(order), utcnow())

    def save_in_transaction(order: JobCreate) -> changes.EditResult:
        with context.session() as session:
            return changes.edit_order(session, principal, job_id, kept(order))

    opener = audit.actor_for(principal)  # the form's buttons run outside this request

    async def save(order: JobCreate) -> None:
        with audit.acting_as(opener):
            result = await asyncio.to_thread(save_in_transaction, order)
        if result.request is not None:
            ui.notify(f"Sent to the lab: change request {result.request.id}", type="positive")
        else:
            ui.notify("Order changed", type="positive")
        ui.navigate.to(f"/store/jobs/{job_id}")

    await OrderForm.built_when_connected(
        context,
        principal,
        choices,
        submit_label="Send change request" if started else "Save changes",
        on_submit=save,
        initial=current.model_dump(mode="json"),
        check=check,
    )


def register_change_pages(context: ServerContext) -> None:
    @ui.page("/store/orders/{job_id}/edit", title="LensTrack · Edit order")
    async def edit_order_page(request: Request, job_id: RowId) -> RedirectResponse | None:
        principal = admit(context, request, STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        edit = await asyncio.to_thread(_read, context, views.order_edit, principal, job_id)
        if edit is not None and edit.order is not None:  # the form shows the Rx
            await log_prescription_view(context, principal, job_id)
        page_header(principal, "Edit order")
        with ui.column().classes("w-full px-4 py-2 gap-2"):
            ui.link("← The job", f"/store/jobs/{job_id}").classes("text-lg")
            if edit is None:
                ui.label("Job not found.").classes("text-2xl font-bold")
                return None
            ui.label(edit.title).classes("text-2xl font-bold")
            if edit.note:
                ui.label(edit.note).classes("text-lg text-amber-900").props("data-part=edit-note")
            if edit.editable and edit.order and edit.choices:
                await _edit_form(context, principal, job_id, edit.order, edit.choices, edit.started)
        return None

    @ui.page("/lab/changes", title="LensTrack · Change requests")
    async def change_queue_page(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, LAB_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        items = await asyncio.to_thread(_read, context, views.change_queue, principal)
        page_header(principal, "Change requests")
        with ui.column().classes("w-full p-4 gap-3 max-w-5xl"):
            ui.link("← WIP board", "/wip")
            ui.label("Orders changed after production started").classes("text-xl font-semibold")
            if principal.role not in MANAGER_ROLES:
                ui.label("A lab manager or admin decides these.").classes("text-slate-600")
            queue = ChangeQueue(items, OrderActions(context, principal))
        PageFeed(context, principal, views.change_queue_item, queue.show)
        return None


def _read(context: ServerContext, read: Callable[..., Any], *args: Any) -> Any:
    with context.db.read_session() as session:
        return read(session, *args, utcnow())
