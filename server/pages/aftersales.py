"""After-sales tickets on the pages: the store's list (and opening a ticket), the lab's
queue, and one ticket's page with its SLA clocks, conversation and actions.

Both lists put overdue tickets first and mark them red; the ticket page shows each clock's
due time and state. The store and the lab see the same page, each with their own actions.
"""

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from sqlalchemy.orm import Session

from server.api.aftersales import ClockOut, TicketOut, TicketSummaryOut, ticket_out, ticket_summary
from server.api.deps import RowId
from server.context import ServerContext
from server.domain import aftersales, jobs
from server.domain.auth import LAB_ROLES, PersonPrincipal
from server.domain.errors import DomainError
from server.domain.lab_time import lab_zone, local_text
from server.models import RemakeClass, TicketClass, TicketResolution, utcnow
from server.pages.access import STORE_PORTAL_ROLES, admit, page_header
from server.pages.changes import REASON_RULE, REMAKE_CLASSES, OrderActions

LAB_QUEUE_PAGE = "/lab/tickets"

TICKET_CLASSES = {
    TicketClass.lens_defect: "Lens defect",
    TicketClass.frame_fit: "Frame or fit",
    TicketClass.non_adapt: "Adaptation / non-adapt",
    TicketClass.breakage: "Breakage after delivery",
    TicketClass.wrong_rx: "Wrong prescription",
    TicketClass.delay: "Delay complaint",
    TicketClass.other: "Other",
}
RESOLUTIONS = {
    TicketResolution.remade: "Remade",
    TicketResolution.adjusted: "Adjusted",
    TicketResolution.advice: "Advice given",
    TicketResolution.refunded: "Refunded",
    TicketResolution.no_fault: "No fault found",
    TicketResolution.other: "Other",
}
CLOCK_CHIPS = {
    "running": ("running", "blue-8"),
    "overdue": ("OVERDUE", "red-8"),
    "met": ("met", "green-8"),
    "missed": ("missed", "orange-9"),
}
TICKET_ROLES = STORE_PORTAL_ROLES | LAB_ROLES


def ticket_path(ticket_id: int) -> str:
    return f"/tickets/{ticket_id}"


def _clock_text(clock: ClockOut, zone: ZoneInfo, now: datetime) -> str:
    if clock.done_at is not None:
        return f"{local_text(clock.done_at, zone, now)} (due {local_text(clock.due_at, zone, now)})"
    return f"due {local_text(clock.due_at, zone, now)}"


def _list_text(clock: ClockOut, zone: ZoneInfo, now: datetime) -> str:
    """A list's cell: when a running clock is due, else whether it was met."""
    if clock.done_at is None:
        return local_text(clock.due_at, zone, now)
    return clock.state


def _chip(state: str) -> None:
    text, colour = CLOCK_CHIPS[state]
    ui.badge(text, color=colour).classes("text-sm px-2")


def _read_list(
    context: ServerContext, principal: PersonPrincipal, resolved: bool
) -> tuple[list[TicketSummaryOut], ZoneInfo]:
    now = utcnow()
    with context.db.read_session() as session:
        tickets = aftersales.list_tickets(session, principal, now, resolved=resolved)
        rows = [ticket_summary(ticket, now) for ticket in tickets]
        return rows, lab_zone(session, principal.lab_id)


def _ticket_table(rows: list[TicketSummaryOut], zone: ZoneInfo, lab_side: bool) -> None:
    now = utcnow()
    columns = [
        ("id", "#"),
        ("job", "Job"),
        ("class", "Class"),
        ("subject", "Subject"),
        ("status", "Status"),
        ("owner", "Owner"),
        ("first", "First response due"),
        ("resolution", "Resolution due"),
    ]
    table = (
        ui.table(
            columns=[
                {"name": k, "label": label, "field": k, "align": "left"} for k, label in columns
            ],
            rows=[
                {
                    "id": row.id,
                    "job": row.job.job_number,
                    "class": TICKET_CLASSES[row.ticket_class],
                    "subject": row.subject,
                    "status": row.status.value,
                    "owner": row.owner or ("unassigned" if lab_side else "—"),
                    "first": _list_text(row.first_response, zone, now),
                    "first_state": row.first_response.state,
                    "resolution": _list_text(row.resolution_clock, zone, now),
                    "resolution_state": row.resolution_clock.state,
                    "overdue": row.overdue,
                }
                for row in rows
            ],
            row_key="id",
        )
        .props("flat bordered data-section=tickets")
        .classes("w-full")
    )
    table.add_slot(
        "body",
        """<q-tr :props="props" :class="props.row.overdue ? 'bg-red-1' : ''"
             class="cursor-pointer" @click="() => $parent.$emit('open', props.row.id)">
          <q-td v-for="col in props.cols" :key="col.name" :props="props"
            style="white-space: normal">
            <template v-if="col.name === 'first' || col.name === 'resolution'">
              <q-badge v-if="props.row[col.name + '_state'] === 'overdue'" color="red-8"
                label="OVERDUE" class="q-mr-sm" />{{ col.value }}
            </template>
            <template v-else>{{ col.value }}</template>
          </q-td></q-tr>""",
    )
    table.on("open", lambda event: ui.navigate.to(ticket_path(event.args)))
    if not rows:
        ui.label("No tickets.").classes("text-slate-500")


def _open_ticket_form(context: ServerContext, principal: PersonPrincipal) -> None:
    actions = OrderActions(context, principal)
    with ui.card().classes("w-full max-w-3xl gap-2").props("data-section=open-ticket"):
        ui.label("Open a ticket").classes("text-xl font-semibold")
        ui.label("For a job that has left the lab. Write no patient name or prescription.")
        with ui.row().classes("w-full gap-3"):
            number = ui.input("Job number").props("outlined maxlength=32").classes("w-40")
            ticket_class = (
                ui.select(TICKET_CLASSES, label="Class", value=TicketClass.lens_defect)
                .props("outlined")
                .classes("w-64")
            )
            subject = ui.input("Subject").props("outlined maxlength=120").classes("grow")
        message = ui.textarea("What is wrong?").props("outlined maxlength=2000").classes("w-full")

        def work(session: Session) -> int:
            job = jobs.lookup_job(session, principal, number.value.strip())
            return aftersales.open_ticket(
                session,
                principal,
                job.id,
                TicketClass(ticket_class.value),
                subject.value,
                message.value,
            ).id

        async def submit() -> None:
            ticket_id = await actions.run(work, "Ticket opened")
            if ticket_id is not None:
                ui.navigate.to(ticket_path(ticket_id))

        ui.button("Open ticket", on_click=submit).props("unelevated data-part=open-ticket")


def register_aftersales_pages(context: ServerContext) -> None:
    @ui.page("/store/tickets", title="LensTrack · Tickets")
    def store_tickets(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        page_header(principal, "After-sales tickets")
        with ui.column().classes("w-full p-4 gap-4"):
            _nav()
            rows, zone = _read_list(context, principal, resolved=False)
            ui.label(f"Open tickets ({len(rows)})").classes("text-xl font-semibold")
            _ticket_table(rows, zone, lab_side=False)
            _open_ticket_form(context, principal)
            resolved, _ = _read_list(context, principal, resolved=True)
            ui.label("Resolved").classes("text-xl font-semibold")
            _ticket_table(resolved[:20], zone, lab_side=False)
        return None

    @ui.page(LAB_QUEUE_PAGE, title="LensTrack · After-sales queue")
    def lab_queue(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, LAB_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        page_header(principal, "After-sales queue")
        with ui.column().classes("w-full p-4 gap-4"):
            rows, zone = _read_list(context, principal, resolved=False)
            overdue = sum(row.overdue for row in rows)
            ui.label(f"Open tickets ({len(rows)}, {overdue} overdue)").classes(
                "text-xl font-semibold"
            )
            _ticket_table(rows, zone, lab_side=True)
            _fix_rates(context, principal)
        return None

    @ui.page("/tickets/{ticket_id}", title="LensTrack · Ticket")
    def ticket_page(request: Request, ticket_id: RowId) -> RedirectResponse | None:
        principal = admit(context, request, TICKET_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        page_header(principal, "After-sales ticket")
        TicketPage(context, principal, ticket_id)
        return None


def _nav() -> None:
    with ui.row().classes("gap-6 text-lg"):
        ui.link("← Store portal", "/store")
        ui.link("Follow-ups", "/store/follow-ups")


def _fix_rates(context: ServerContext, principal: PersonPrincipal) -> None:
    with context.db.read_session() as session:
        rates = aftersales.first_time_fix(session, principal)
    with ui.card().classes("w-full max-w-3xl").props("data-section=first-time-fix"):
        ui.label("First-time fix by class").classes("text-xl font-semibold")
        ui.table(
            columns=[
                {"name": "class", "label": "Class", "field": "class", "align": "left"},
                {"name": "resolved", "label": "Resolved", "field": "resolved"},
                {"name": "fixed", "label": "Fixed first time", "field": "fixed"},
                {"name": "rate", "label": "Rate", "field": "rate"},
            ],
            rows=[
                {
                    "class": TICKET_CLASSES[rate.ticket_class],
                    "resolved": rate.resolved,
                    "fixed": rate.fixed_first_time,
                    "rate": "—" if rate.rate is None else f"{rate.rate:.0%}",
                }
                for rate in rates
            ],
            row_key="class",
        ).props("flat dense").classes("w-full")


class TicketPage:
    """One ticket, redrawn after each action taken on it here."""

    def __init__(self, context: ServerContext, principal: PersonPrincipal, ticket_id: int):
        self.context = context
        self.principal = principal
        self.ticket_id = ticket_id
        self.actions = OrderActions(context, principal)
        self.lab_side = principal.role in LAB_ROLES
        self.body = ui.column().classes("w-full p-4 gap-4 max-w-5xl")
        self.draw()

    def _read(self) -> tuple[TicketOut | None, ZoneInfo]:
        now = utcnow()
        with self.context.db.read_session() as session:
            zone = lab_zone(session, self.principal.lab_id)
            try:
                ticket = aftersales.get_ticket(session, self.principal, self.ticket_id)
            except DomainError:
                return None, zone
            return ticket_out(ticket, now), zone

    def draw(self) -> None:
        ticket, zone = self._read()
        self.body.clear()
        with self.body:
            back = "/lab/tickets" if self.lab_side else "/store/tickets"
            ui.link("← All tickets", back).classes("text-lg")
            if ticket is None:
                ui.label("Ticket not found.").classes("text-2xl font-bold")
                return
            self._header(ticket)
            with ui.grid().classes("w-full gap-4 grid-cols-1 md:grid-cols-2"):
                self._clocks(ticket, zone)
                self._details(ticket)
            self._messages(ticket, zone)
            self._actions(ticket)

    async def _do(self, work: Callable[[Session], object], done: str) -> None:
        if await self.actions.run(work, done) is not None:
            self.draw()

    def _header(self, ticket: TicketOut) -> None:
        with ui.row().classes("items-center gap-3"):
            ui.label(f"Ticket {ticket.id} · {ticket.subject}").classes("text-2xl font-bold")
            ui.badge(ticket.status.value, color="grey-8").classes("text-sm px-2")
            if ticket.overdue:
                ui.badge("OVERDUE", color="red-8").classes("text-sm px-2")
        ui.label(f"Job {ticket.job.job_number} · {TICKET_CLASSES[ticket.ticket_class]}").classes(
            "text-slate-600 text-lg"
        )

    def _clocks(self, ticket: TicketOut, zone: ZoneInfo) -> None:
        now = utcnow()
        with ui.card().classes("w-full").props("data-section=sla"):
            ui.label("SLA").classes("text-xl font-semibold")
            for label, clock in (
                ("First response", ticket.first_response),
                ("Resolution", ticket.resolution_clock),
            ):
                with ui.row().classes("items-center gap-3"):
                    ui.label(label).classes("w-36 font-semibold")
                    _chip(clock.state)
                    ui.label(_clock_text(clock, zone, now))

    def _details(self, ticket: TicketOut) -> None:
        with ui.card().classes("w-full").props("data-section=details"):
            ui.label("Details").classes("text-xl font-semibold")
            ui.label(f"Opened by {ticket.opened_by}")
            ui.label(f"Owner: {ticket.owner or 'unassigned'}")
            if ticket.remake is not None:
                ui.label(f"Remake: {ticket.remake.job_number}").classes("font-semibold")
            if ticket.resolution is not None:
                note = f" · {ticket.resolution_note}" if ticket.resolution_note else ""
                ui.label(f"Resolved: {RESOLUTIONS[ticket.resolution]}{note}")
            if ticket.reopened_count:
                ui.label(f"Reopened {ticket.reopened_count}×").classes("text-orange-9")

    def _messages(self, ticket: TicketOut, zone: ZoneInfo) -> None:
        now = utcnow()
        with ui.card().classes("w-full gap-2").props("data-section=messages"):
            ui.label("Messages").classes("text-xl font-semibold")
            for message in ticket.messages:
                if message.author is None:
                    ui.label(
                        f"{local_text(message.written_at, zone, now)} · {message.body}"
                    ).classes("text-slate-500 italic text-sm")
                    continue
                side = "Lab" if message.from_lab else "Store"
                tone = "bg-blue-50" if message.from_lab else "bg-slate-100"
                with ui.column().classes(f"w-full gap-0 rounded p-2 {tone}"):
                    ui.label(
                        f"{message.author} · {side} · {local_text(message.written_at, zone, now)}"
                    ).classes("text-sm text-slate-600")
                    ui.label(message.body).classes("whitespace-pre-wrap")
            if ticket.resolution is None:
                body = ui.textarea("Write a message").props("outlined maxlength=2000")
                body.classes("w-full").props("data-part=message")

                async def send() -> None:
                    text = body.value
                    await self._do(
                        lambda s: aftersales.post_message(s, self.principal, ticket.id, text),
                        "Sent",
                    )

                ui.button("Send", on_click=send).props("unelevated data-part=send")

    def _actions(self, ticket: TicketOut) -> None:
        with ui.row().classes("w-full gap-3 items-end").props("data-section=ticket-actions"):
            if ticket.resolution is not None:
                if self.principal.role in STORE_PORTAL_ROLES:
                    self._reopen(ticket)
                return
            if self.lab_side and ticket.owner_id != self.principal.person_id:
                ui.button(
                    "Take this ticket",
                    on_click=lambda: self._do(
                        lambda s: aftersales.assign_owner(
                            s, self.principal, ticket.id, self.principal.person_id
                        ),
                        "You own this ticket",
                    ),
                ).props("outline")
            if ticket.remake is None and self.principal.role in STORE_PORTAL_ROLES:
                self._remake(ticket)
            if self.lab_side:
                self._resolve(ticket)

    def _remake(self, ticket: TicketOut) -> None:
        remake_class = ui.select(REMAKE_CLASSES, label="Remake class", value=RemakeClass.warranty)
        remake_class.props("outlined").classes("w-44")
        reason = ui.input("Remake reason", validation=REASON_RULE).props("outlined maxlength=200")
        reason.classes("w-72")

        async def remake() -> None:
            if reason.validate():
                chosen, why = RemakeClass(remake_class.value), reason.value
                await self._do(
                    lambda s: aftersales.open_ticket_remake(
                        s, self.principal, ticket.id, chosen, why
                    ),
                    "Remake opened",
                )

        ui.button("Open remake", on_click=remake).props("outline data-part=remake")

    def _resolve(self, ticket: TicketOut) -> None:
        resolution = ui.select(RESOLUTIONS, label="Resolution", value=TicketResolution.adjusted)
        resolution.props("outlined data-part=resolution").classes("w-48")
        note = ui.input("Note").props("outlined maxlength=500").classes("w-72")

        async def resolve() -> None:
            chosen, text = TicketResolution(resolution.value), note.value
            await self._do(
                lambda s: aftersales.resolve_ticket(s, self.principal, ticket.id, chosen, text),
                "Ticket resolved",
            )

        ui.button("Resolve", on_click=resolve).props("unelevated color=positive data-part=resolve")

    def _reopen(self, ticket: TicketOut) -> None:
        reason = ui.input("Why reopen?", validation=REASON_RULE).props("outlined maxlength=200")
        reason.classes("w-72")

        async def reopen() -> None:
            if reason.validate():
                why = reason.value
                await self._do(
                    lambda s: aftersales.reopen_ticket(s, self.principal, ticket.id, why),
                    "Ticket reopened",
                )

        ui.button("Reopen", on_click=reopen).props("outline color=warning data-part=reopen")
