"""The lab's WIP board: a column per stage, a card per job, today's throughput, all live.

A card's age counts up in the browser (one script per page, no server timer); the server
only pushes when a job changes.
"""

import asyncio
import bisect
from datetime import datetime

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from server.context import ServerContext
from server.domain import tickets, views
from server.domain.auth import LAB_ROLES, MANAGER_ROLES, PersonPrincipal
from server.domain.errors import Conflict
from server.domain.views import WipBoard, WipCard
from server.models import JobStatus, utcnow
from server.pages.access import STORE_PORTAL_ROLES, admit, page_header
from server.pages.aftersales import LAB_QUEUE_PAGE
from server.pages.audit import AUDIT_PAGE
from server.pages.kpis import LAB_PAGE as KPI_PAGE
from server.pages.live_view import PageFeed
from server.pages.orders import ORDER_PAGE
from server.pages.spc import SPC_PAGE, alert_banner
from server.tickets import render_tickets

CARD_TONES = {
    "late": "bg-red-100 border-red-600",
    "stalled": "bg-amber-100 border-amber-500",
    "old": "bg-yellow-50 border-yellow-400",
    "ok": "bg-white border-slate-300",
}
STATUS_ICONS = {JobStatus.queued: "schedule", JobStatus.in_progress: "build"}
CARDS_PER_COLUMN = 40

# Ages count up client-side from data-since (ms since the epoch), once a minute, written as
# lab_time.duration_text writes them.
AGE_SCRIPT = """<script>
setInterval(() => document.querySelectorAll('[data-since]').forEach(el => {
  const minutes = Math.max(0, Math.floor((Date.now() - Number(el.dataset.since)) / 60000));
  const hours = Math.floor(minutes / 60), days = Math.floor(hours / 24);
  el.textContent = days ? `${days} d ${hours % 24} h` :
    hours ? `${hours} h ${minutes % 60} min` : `${minutes} min`;
}), 60000);
</script>"""


def _card(card: WipCard) -> ui.element:
    tone = "late" if card.late or {"Breakage", "Rework"} & set(card.flags) else card.ageing
    with (
        ui.element("div")
        .classes(f"w-full rounded border-l-[6px] px-2 py-1 shadow-sm {CARD_TONES[tone]}")
        .props(f"data-job-id={card.job_id} data-tone={tone}") as element
    ):
        with ui.row().classes("items-center gap-1 no-wrap"):
            ui.icon(STATUS_ICONS.get(card.status, "pause_circle"), size="xs").classes(
                "text-slate-500"
            )
            ui.label(card.job_number).classes("font-bold text-base")
            if card.rush:
                ui.badge("RUSH", color="red-8")
        with ui.row().classes("items-center gap-2 text-xs text-slate-700 no-wrap"):
            ui.label(card.store_code)
            since = int(card.since.timestamp() * 1000)
            ui.label(card.age).props(f"data-since={since}")
        if card.flags:
            ui.label(" · ".join(card.flags)).classes("text-xs font-semibold text-red-800")
    return element


class Board:
    """Stage columns of cards, oldest first; a changed job's card alone is rebuilt or moved.

    A column shows its `CARDS_PER_COLUMN` oldest jobs and counts the rest: on a 2,000-job
    floor every card made the board take 7 s to appear, and nobody reads the 300th card of
    a column. The board keeps every job's card data, so a hidden one shows when one above
    it leaves.
    """

    def __init__(self, board: WipBoard) -> None:
        self.per_column = CARDS_PER_COLUMN
        self.total = ui.label().classes("text-lg font-semibold px-4 pt-3")
        with (
            ui.element("div")
            .classes("w-full grid gap-2 p-4 overflow-x-auto")
            .style(f"grid-template-columns: repeat({len(board.columns)}, minmax(140px, 1fr))")
        ):
            self.heads: dict[int, ui.label] = {}
            self.done: dict[int, ui.label] = {}
            self.columns: dict[int, ui.column] = {}
            self.more: dict[int, ui.label] = {}
            for column in board.columns:
                with ui.column().classes("gap-2 bg-slate-100 rounded p-2 min-w-0"):
                    ui.label(column.name).classes("font-semibold leading-tight")
                    self.heads[column.stage_id] = ui.label().classes("text-xs text-slate-600")
                    self.done[column.stage_id] = ui.label().classes("text-xs text-green-800")
                    self.columns[column.stage_id] = ui.column().classes("w-full gap-2")
                    self.more[column.stage_id] = ui.label().classes("text-xs text-slate-600")
        self.cards: dict[int, WipCard] = {}  # every job in WIP, shown or not
        self.queues: dict[int, list[tuple[datetime, int]]] = {s: [] for s in self.columns}
        self.shown: dict[int, tuple[int, ui.element]] = {}  # job -> (stage, its card)
        for card in board.cards:
            self._add(card)
        for stage_id in self.columns:
            self._layout(stage_id)
        self.show_done({column.stage_id: column.done_today for column in board.columns})

    def show(self, job_id: int, card: WipCard | None) -> None:
        old = self.cards.pop(job_id, None)
        if old is not None:
            self.queues[old.stage_id].remove((old.since, job_id))
            if job_id in self.shown:  # its contents changed: rebuilt where it belongs
                self.columns[old.stage_id].remove(self.shown.pop(job_id)[1])
        if card is not None and card.stage_id in self.columns:
            self._add(card)
        for stage_id in {old.stage_id if old else None, card.stage_id if card else None}:
            if stage_id in self.columns:
                self._layout(stage_id)

    def show_done(self, done: dict[int, int]) -> None:
        for stage_id, label in self.done.items():
            label.set_text(f"{done.get(stage_id, 0)} done today")
        self.total.set_text(
            f"Today's throughput: {sum(done.values())} stage completions · "
            f"{len(self.cards)} jobs in WIP"
        )

    def _add(self, card: WipCard) -> None:
        self.cards[card.job_id] = card
        bisect.insort(self.queues[card.stage_id], (card.since, card.job_id))

    def _layout(self, stage_id: int) -> None:
        """Make the column show its oldest cards, in order, and count the others."""
        column, queue = self.columns[stage_id], self.queues[stage_id]
        wanted = [job_id for _, job_id in queue[: self.per_column]]
        keep = set(wanted)
        for job_id in [j for j, (s, _) in self.shown.items() if s == stage_id and j not in keep]:
            column.remove(self.shown.pop(job_id)[1])
        for index, job_id in enumerate(wanted):
            if job_id not in self.shown:
                with column:
                    self.shown[job_id] = (stage_id, _card(self.cards[job_id]))
            element = self.shown[job_id][1]
            if column.default_slot.children.index(element) != index:
                element.move(column, target_index=index)
        hidden = len(queue) - len(wanted)
        self.more[stage_id].set_text(f"+ {hidden} newer" if hidden else "")
        self.heads[stage_id].set_text(f"{len(queue)} in WIP")


def register_wip_pages(context: ServerContext) -> None:
    @ui.page("/wip", title="LensTrack · WIP board")
    async def wip_page(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, LAB_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        board = await asyncio.to_thread(_read_board, context, principal)
        page_header(principal, "WIP board")
        # One row of the lab's other pages, so the board itself starts near the top.
        with ui.row().classes("items-center px-4 pt-3 gap-6"):
            ui.button("Print new tickets", on_click=lambda: _print_new(context, principal)).props(
                "unelevated icon=print"
            ).mark("print-new")
            if principal.role in STORE_PORTAL_ROLES:  # lab managers and admins enter orders too
                ui.link("+ New order", ORDER_PAGE).classes("text-lg font-semibold")
            ui.link("Change requests →", "/lab/changes").classes("text-lg")
            ui.link("KPIs →", KPI_PAGE).classes("text-lg")
            ui.link("Control charts (SPC) →", SPC_PAGE).classes("text-lg")
            ui.link("After-sales tickets →", LAB_QUEUE_PAGE).classes("text-lg")
            if principal.role in MANAGER_ROLES:
                ui.link("Audit trail →", AUDIT_PAGE).classes("text-lg")
        await alert_banner(context, principal)
        ui.add_body_html(AGE_SCRIPT)
        view = Board(board)

        async def refresh_done(kinds: set[str]) -> None:
            if "job_changed" not in kinds:  # only an event can complete a stage
                return
            view.show_done(
                await live.read("done_today", lambda s: views.done_today(s, principal, utcnow()))
            )

        live = PageFeed(
            context, principal, views.wip_card_by_id, view.show, after_batch=refresh_done
        )
        return None


async def _print_new(context: ServerContext, principal: PersonPrincipal) -> None:
    """Tickets of every job entered since the last print, as one PDF for the browser to print
    (`POST /api/tickets/print-new` for scripts); none new says so instead of a blank page."""
    try:
        pdf = await asyncio.to_thread(_new_tickets_pdf, context, principal)
    except Conflict as error:
        ui.notify(error.message, type="info", position="top")
        return
    ui.download.content(pdf, "tickets-new.pdf", "application/pdf")


def _new_tickets_pdf(context: ServerContext, principal: PersonPrincipal) -> bytes:
    new = context.run_in_transaction(lambda s: tickets.new_tickets(s, principal, utcnow()))
    return render_tickets(new)  # after the commit: drawing holds no lock


def _read_board(context: ServerContext, principal: PersonPrincipal) -> WipBoard:
    with context.db.read_session() as session:
        return views.wip_board(session, principal, utcnow())
