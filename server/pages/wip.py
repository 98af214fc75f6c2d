"""The lab's WIP board: a column per stage, a card per job, today's throughput, all live.

A card's age counts up in the browser (one script per page, no server timer); the server
only pushes when a job changes.
"""

import asyncio

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from server.context import ServerContext
from server.domain import views
from server.domain.auth import LAB_ROLES, PersonPrincipal
from server.domain.views import WipBoard, WipCard
from server.models import JobStatus, utcnow
from server.pages.access import admit, page_header
from server.pages.live_view import PageFeed

CARD_TONES = {
    "late": "bg-red-100 border-red-600",
    "stalled": "bg-amber-100 border-amber-500",
    "old": "bg-yellow-50 border-yellow-400",
    "ok": "bg-white border-slate-300",
}
STATUS_ICONS = {JobStatus.queued: "schedule", JobStatus.in_progress: "build"}

# Ages count up client-side from data-since (ms since the epoch), once a minute.
AGE_SCRIPT = """<script>
setInterval(() => document.querySelectorAll('[data-since]').forEach(el => {
  const minutes = Math.max(0, Math.floor((Date.now() - Number(el.dataset.since)) / 60000));
  const hours = Math.floor(minutes / 60), days = Math.floor(hours / 24);
  el.textContent = days ? `${days} d ${hours % 24} h` :
    hours ? `${hours} h ${String(minutes % 60).padStart(2, '0')} min` : `${minutes} min`;
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
    """Stage columns of cards; a changed job's card alone is rebuilt (or moved, or dropped)."""

    def __init__(self, board: WipBoard) -> None:
        self.total = ui.label().classes("text-lg font-semibold px-4 pt-3")
        with (
            ui.element("div")
            .classes("w-full grid gap-2 p-4 overflow-x-auto")
            .style(f"grid-template-columns: repeat({len(board.columns)}, minmax(140px, 1fr))")
        ):
            self.heads: dict[int, ui.label] = {}
            self.done: dict[int, ui.label] = {}
            self.columns: dict[int, ui.column] = {}
            for column in board.columns:
                with ui.column().classes("gap-2 bg-slate-100 rounded p-2 min-w-0"):
                    ui.label(column.name).classes("font-semibold leading-tight")
                    self.heads[column.stage_id] = ui.label().classes("text-xs text-slate-600")
                    self.done[column.stage_id] = ui.label().classes("text-xs text-green-800")
                    self.columns[column.stage_id] = ui.column().classes("w-full gap-2")
        self.cards: dict[int, tuple[int, ui.element]] = {}
        for card in board.cards:
            self.show(card.job_id, card)
        self.show_done({column.stage_id: column.done_today for column in board.columns})

    def show(self, job_id: int, card: WipCard | None) -> None:
        old = self.cards.pop(job_id, None)
        if old is not None:
            self.columns[old[0]].remove(old[1])
        if card is not None and card.stage_id in self.columns:
            with self.columns[card.stage_id]:
                self.cards[job_id] = (card.stage_id, _card(card))
        for stage_id, head in self.heads.items():
            head.set_text(f"{len(self.columns[stage_id].default_slot.children)} in WIP")

    def show_done(self, done: dict[int, int]) -> None:
        for stage_id, label in self.done.items():
            label.set_text(f"{done.get(stage_id, 0)} done today")
        self.total.set_text(
            f"Today's throughput: {sum(done.values())} stage completions · "
            f"{len(self.cards)} jobs in WIP"
        )


def register_wip_pages(context: ServerContext) -> None:
    @ui.page("/wip", title="LensTrack · WIP board")
    async def wip_page(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, LAB_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        board = await asyncio.to_thread(_read_board, context, principal)
        page_header(principal, "WIP board")
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


def _read_board(context: ServerContext, principal: PersonPrincipal) -> WipBoard:
    with context.db.read_session() as session:
        return views.wip_board(session, principal, utcnow())
