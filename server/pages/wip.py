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
from sqlalchemy.orm import Session

from server.context import ServerContext
from server.domain import tickets, views
from server.domain.auth import LAB_ROLES, MANAGER_ROLES, PersonPrincipal
from server.domain.errors import Conflict
from server.domain.views import WipBoard, WipCard, WipColumn
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
    """Stage columns of each stage's oldest cards, counting the rest; a changed job's card alone
    is rebuilt or moved.

    A column shows its `per_column` oldest jobs (views.CARDS_PER_COLUMN) and counts the rest:
    on a 2,000-job floor every card made the board take 7 s to appear. The page holds only the
    cards it shows and each column's count of hidden ones, so a change it cannot place (a job
    it does not hold may have been hidden in any column) marks the counts `unsure` and the
    page reads them after the batch; a column left with fewer cards than it should show is
    read again (`short_columns`, `fill`).
    """

    def __init__(self, board: WipBoard, per_column: int) -> None:
        self.per_column = per_column
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
        self.shown: dict[int, tuple[int, datetime, ui.element]] = {}  # job -> stage, since, card
        self.queues: dict[int, list[tuple[datetime, int]]] = {s: [] for s in self.columns}
        self.hidden = dict.fromkeys(self.columns, 0)  # per column: its jobs behind the shown
        self.unsure = False  # the counts may be off until `count` brings them
        self.done_total = 0
        for column in board.wip.values():
            self.fill(column)
        self.show_done({column.stage_id: column.done_today for column in board.columns})

    def show(self, job_id: int, card: WipCard | None) -> None:
        held = self._forget(job_id)
        in_place = card is not None and held == (card.stage_id, card.since)
        if card is not None and card.stage_id in self.columns:
            self._place(card, known=held is not None, in_place=in_place)
        # A job the page did not hold may have been hidden anywhere; one that moved changed
        # two counts, which a read may already have seen: only a card rebuilt in place is sure.
        self.unsure |= not in_place
        for stage_id in {held[0] if held else None, card.stage_id if card else None}:
            if stage_id in self.columns:
                self._count_label(stage_id)
        self._total_label()

    def count(self, counts: dict[int, int]) -> None:
        """Every column's active jobs, as read after a batch."""
        for stage_id in self.columns:
            self.hidden[stage_id] = max(0, counts.get(stage_id, 0) - len(self.queues[stage_id]))
            self._count_label(stage_id)
        self.unsure = False
        self._total_label()

    def short_columns(self) -> list[int]:
        """Columns showing fewer cards than they should: a shown card left, one hidden comes."""
        return [
            stage_id
            for stage_id, queue in self.queues.items()
            if self.hidden[stage_id] and len(queue) < self.per_column
        ]

    def fill(self, column: WipColumn) -> None:
        """Show exactly `column`'s cards in its order: cards already shown are kept or moved."""
        stage_id, box = column.stage_id, self.columns[column.stage_id]
        keys = [(card.since, card.job_id) for card in column.cards]
        for _, job_id in set(self.queues[stage_id]) - set(keys):
            self._forget(job_id)
        for index, card in enumerate(column.cards):
            held = self.shown.get(card.job_id)
            if held is None or held[:2] != (stage_id, card.since):
                self._forget(card.job_id)  # new here, moved within it, or shown elsewhere
                with box:
                    self.shown[card.job_id] = (stage_id, card.since, _card(card))
            element = self.shown[card.job_id][2]
            if box.default_slot.children.index(element) != index:
                element.move(box, target_index=index)
        self.queues[stage_id] = keys
        self.hidden[stage_id] = column.count - len(keys)
        self._count_label(stage_id)
        self._total_label()

    def show_done(self, done: dict[int, int]) -> None:
        for stage_id, label in self.done.items():
            label.set_text(f"{done.get(stage_id, 0)} done today")
        self.done_total = sum(done.values())
        self._total_label()

    def _forget(self, job_id: int) -> tuple[int, datetime] | None:
        """Takes the job's card off the board; where it was, if shown."""
        held = self.shown.pop(job_id, None)
        if held is None:
            return None
        stage_id, since, element = held
        self.queues[stage_id].remove((since, job_id))
        self.columns[stage_id].remove(element)
        return stage_id, since

    def _place(self, card: WipCard, *, known: bool, in_place: bool) -> None:
        """Shows the card where it belongs among its column's oldest, or counts it hidden;
        `known`: the page held it, `in_place`: where it was."""
        stage_id, queue = card.stage_id, self.queues[card.stage_id]
        key = (card.since, card.job_id)
        index = bisect.bisect(queue, key)
        behind = index == len(queue) and (self.hidden[stage_id] or index >= self.per_column)
        if behind and not in_place:
            # Behind the shown ones: a job the page held joins the hidden; another may have
            # been hidden here already, which the counts read after the batch tells.
            self.hidden[stage_id] += known
            return
        queue.insert(index, key)
        with self.columns[stage_id]:
            element = _card(card)
        element.move(self.columns[stage_id], target_index=index)
        self.shown[card.job_id] = (stage_id, card.since, element)
        if len(queue) > self.per_column:  # the newest shown one is hidden now
            self._forget(queue[-1][1])
            self.hidden[stage_id] += 1

    def _count_label(self, stage_id: int) -> None:
        hidden = self.hidden[stage_id]
        self.more[stage_id].set_text(f"+ {hidden} newer" if hidden else "")
        self.heads[stage_id].set_text(f"{len(self.queues[stage_id]) + hidden} in WIP")

    def _total_label(self) -> None:
        wip = len(self.shown) + sum(self.hidden.values())
        self.total.set_text(
            f"Today's throughput: {self.done_total} stage completions · {wip} jobs in WIP"
        )


def register_wip_pages(context: ServerContext) -> None:
    @ui.page("/wip", title="LensTrack · WIP board")
    async def wip_page(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, LAB_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        per_column = views.CARDS_PER_COLUMN
        board = await asyncio.to_thread(_read_board, context, principal, per_column)
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
        view = Board(board, per_column)

        def totals(session: Session) -> tuple[dict[int, int], dict[int, int]]:
            """Per stage: today's completions and the active jobs."""
            done = views.done_today(session, principal, utcnow())
            return done, views.wip_counts(session, principal)

        async def settle(kinds: set[str]) -> None:
            """After a batch of changes, each read off the event loop: today's completions
            (only an event completes a stage) and the counts, if either may have changed, in
            one read; then the columns that lost a shown card, refilled."""
            if "job_changed" in kinds or view.unsure:
                done, counts = await live.read("wip_totals", totals)
                view.show_done(done)
                view.count(counts)
            for stage_id in view.short_columns():
                view.fill(
                    await live.read(
                        f"wip_column:{stage_id}:{per_column}",
                        lambda s, stage_id=stage_id: views.wip_column(
                            s, principal, stage_id, per_column, utcnow()
                        ),
                    )
                )

        live = PageFeed(context, principal, views.wip_card_by_id, view.show, after_batch=settle)
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


def _read_board(context: ServerContext, principal: PersonPrincipal, per_column: int) -> WipBoard:
    with context.db.read_session() as session:
        return views.wip_board(session, principal, utcnow(), per_column)
