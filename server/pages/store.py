"""The store portal: the store's jobs live, a job page with its whole history, the flags feed.

Made for a counter screen: one coloured row per job (red: late, breakage or rework, with the
reason), the ETA beside the promised time in the lab's time zone, pickup actions in reach.
The list opens on its first page, the jobs needing attention first; a row changes where it is
unless its tone or promise moves it in that order.
"""

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from sqlalchemy.orm import Session

from server.api.deps import RowId
from server.context import ServerContext
from server.domain import jobs, views
from server.domain.auth import PersonPrincipal
from server.domain.errors import DomainError
from server.domain.views import JobDetail, StoreFilter, StoreKey, StorePage
from server.models import utcnow
from server.pages.access import (
    STORE_PORTAL_ROLES,
    admit,
    log_prescription_view,
    page_header,
)
from server.pages.changes import OrderActions, history_card, order_panel
from server.pages.job_rows import JobRows, MarkRequest, Milestone, StoreList
from server.pages.live_view import PageFeed
from server.pages.orders import ORDER_PAGE
from server.pages.store_settings import SETTINGS_PAGE

# A route step's state as an icon and colour: done, current (the job is there), to come.
STEP_ICONS = {
    "done": ("check_circle", "positive"),
    "current": ("play_circle", "primary"),
    "todo": ("radio_button_unchecked", "grey"),
}
STEP_CELL = """<q-td :props="props"><q-icon class="q-mr-sm" size="sm" :name="props.row.icon"
 :color="props.row.colour" />{{ props.value }}</q-td>"""

MARKS: dict[Milestone, Callable[[Session, PersonPrincipal, int], Any]] = {
    "ready_for_pickup": jobs.mark_ready_for_pickup,
    "delivered": jobs.mark_delivered,
}


def _store_name(context: ServerContext, principal: PersonPrincipal) -> str:
    with context.db.read_session() as session:
        return views.scope_name(session, principal)


class Milestones:
    """The store's two actions; the change comes back to every open page through the bus."""

    def __init__(self, context: ServerContext, principal: PersonPrincipal) -> None:
        self.context = context
        self.principal = principal

    def _run(self, request: MarkRequest) -> None:
        with self.context.session() as session:
            MARKS[request.action](session, self.principal, request.job_id)

    async def mark(self, request: MarkRequest) -> None:
        try:
            await asyncio.to_thread(self._run, request)
        except DomainError as error:
            ui.notify(error.message, type="negative")


class FlagFeed(ui.element, component="flag_feed.js"):
    """The latest flags; sent whole when they change (a few short entries)."""

    def __init__(self, entries: list[views.FlagEntry]) -> None:
        super().__init__()
        self._props["entries"] = [asdict(entry) for entry in entries]

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self._props["entries"]

    def show(self, entries: list[views.FlagEntry]) -> None:
        fresh = [asdict(entry) for entry in entries]
        if fresh != self.entries:
            self._props["entries"] = fresh
            self.update()


def _job_page(detail: JobDetail, milestones: Milestones, actions: OrderActions) -> None:
    JobRows([detail.row], on_mark=milestones.mark, link=False)
    ui.label(f"Store {detail.store_code} · {detail.lens}").classes("text-slate-600")
    ui.link("Patient status link", f"/store/jobs/{detail.row.job_id}/patient-link")
    if detail.shipment is not None:
        shipped = ui.label(detail.shipment.text).classes("text-lg font-semibold")
        shipped.props("data-section=shipment")
    order_panel(detail, actions)
    with ui.grid().classes("w-full gap-4 grid-cols-1 lg:grid-cols-2"):
        with ui.card().classes("w-full"):
            ui.label("Route").classes("text-xl font-semibold")
            ui.table(
                columns=[
                    {"name": "stage", "label": "Stage", "field": "stage", "align": "left"},
                    {"name": "started", "label": "Started", "field": "started", "align": "left"},
                    {"name": "done", "label": "Done", "field": "completed", "align": "left"},
                    {"name": "by", "label": "By", "field": "operators", "align": "left"},
                ],
                rows=[
                    {
                        **step.__dict__,
                        "icon": STEP_ICONS[step.state][0],
                        "colour": STEP_ICONS[step.state][1],
                    }
                    for step in detail.steps
                ],
                row_key="stage",
            ).props("flat dense").classes("w-full").add_slot("body-cell-stage", STEP_CELL)
        with ui.column().classes("w-full gap-4"):
            with ui.card().classes("w-full"):
                ui.label("Rework and breakage").classes("text-xl font-semibold")
                if not detail.problems:
                    ui.label("None so far.").classes("text-slate-500")
                for problem in detail.problems:
                    ui.label(
                        f"{problem.at} · {problem.action} at {problem.stage}"
                        f" ({problem.station}{', ' + problem.operator if problem.operator else ''})"
                    ).classes("font-semibold text-red-800")
                    ui.label(problem.reason or "no reason recorded").classes("text-sm")
            with ui.card().classes("w-full").props("data-section=qc-summary"):
                ui.label("QC results").classes("text-xl font-semibold")
                if not detail.qc:
                    ui.label("Not inspected yet.").classes("text-slate-500")
                for attempt in detail.qc:
                    failed = [check for check in attempt.checks if not check.passed]
                    verdict = "passed" if attempt.passed else "failed"
                    ui.label(f"Attempt {attempt.attempt}: {verdict} at {attempt.station}").classes(
                        "font-semibold " + ("text-green-800" if attempt.passed else "text-red-800")
                    )
                    for check in failed:
                        ui.label(
                            f"{check.eye or 'pair'} {check.field}: off by {check.deviation:+.2f}"
                            f" (tolerance ±{check.tolerance:g})"
                        ).classes("text-sm")
                    for defect in attempt.defects:
                        ui.label(f"{defect.code} · {defect.description}").classes("text-sm")
    with ui.card().classes("w-full"):
        ui.label("Events").classes("text-xl font-semibold")
        ui.table(
            columns=[
                {"name": key, "label": label, "field": key, "align": "left"}
                for key, label in (
                    ("at", "When"),
                    ("action", "What"),
                    ("stage", "Stage"),
                    ("station", "Station"),
                    ("operator", "By"),
                    ("reason", "Reason"),
                    ("note", "Note"),
                )
            ],
            rows=[{"id": index, **event.__dict__} for index, event in enumerate(detail.events)],
            row_key="id",
        ).props("flat dense").classes("w-full")
    history_card(detail)


def register_store_pages(context: ServerContext) -> None:
    @ui.page("/store", title="LensTrack · Store")
    async def store_page(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        page, counts, feed = await asyncio.to_thread(_read_store, context, principal)
        page_header(principal, f"{_store_name(context, principal)} · Store portal")
        with ui.row().classes("items-baseline gap-6 px-4 pt-3"):
            ui.link("+ New order", ORDER_PAGE).classes("text-lg font-semibold")
            ui.link("Messages and sent log", SETTINGS_PAGE).classes("text-lg")
            ui.link("After-sales tickets", "/store/tickets").classes("text-lg")
            ui.link("Follow-ups", "/store/follow-ups").classes("text-lg")
        milestones = Milestones(context, principal)
        with ui.element("div").classes(
            "w-full p-4 grid gap-4 grid-cols-1 xl:grid-cols-[1fr_24rem]"
        ):

            async def read_page(view: StoreFilter, after: StoreKey | None) -> StorePage:
                return await asyncio.to_thread(_read_page, context, principal, view, after)

            store_list = StoreList(page, counts, read_page=read_page, on_mark=milestones.mark)
            store_list.classes("min-w-0")
            with ui.card().classes("w-full"):
                ui.label("Flags").classes("text-xl font-semibold")
                flags = FlagFeed(feed)

        async def after_batch(kinds: set[str]) -> None:
            # Any change may move a job into or out of a filter, or onto or off the list.
            store_list.show_counts(
                await live.read("store_counts", lambda s: views.store_counts(s, principal))
            )
            if kinds & {"flag_raised", "flag_cleared"}:  # the feed lists flags only
                flags.show(
                    await live.read("flag_feed", lambda s: views.flag_feed(s, principal, utcnow()))
                )

        live = PageFeed(
            context, principal, views.store_row_by_id, store_list.show, after_batch=after_batch
        )
        return None

    @ui.page("/store/jobs/{job_id}", title="LensTrack · Job")
    async def store_job_page(request: Request, job_id: RowId) -> RedirectResponse | None:
        principal = admit(context, request, STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        detail = await asyncio.to_thread(_read_detail, context, principal, job_id)
        if detail is not None:  # it shows the Rx as QC checked it and as it was changed
            await log_prescription_view(context, principal, job_id)
        page_header(principal, _store_name(context, principal))
        with ui.column().classes("w-full p-4 gap-4"):
            ui.link("← All jobs", "/store").classes("text-lg")
            if detail is None:
                ui.label("Job not found.").classes("text-2xl font-bold")
                return None
            milestones = Milestones(context, principal)
            actions = OrderActions(context, principal)
            body = ui.column().classes("w-full gap-4")
            with body:
                _job_page(detail, milestones, actions)

        def show(_: int, fresh: JobDetail | None) -> None:
            body.clear()
            with body:
                if fresh is None:
                    ui.label("This job is no longer visible here.").classes("text-xl")
                else:
                    _job_page(fresh, milestones, actions)

        PageFeed(context, principal, views.job_detail, show, only_job=job_id)
        return None


def _read_store(
    context: ServerContext, principal: PersonPrincipal
) -> tuple[StorePage, dict[StoreFilter, int], list[views.FlagEntry]]:
    """What the page opens with: the first page of all jobs, the filters' counts, the flags."""
    now = utcnow()
    with context.db.read_session() as session:
        return (
            views.store_page(session, principal, now, StoreFilter.all, None, views.STORE_PAGE_SIZE),
            views.store_counts(session, principal),
            views.flag_feed(session, principal, now),
        )


def _read_page(
    context: ServerContext, principal: PersonPrincipal, view: StoreFilter, after: StoreKey | None
) -> StorePage:
    with context.db.read_session() as session:
        return views.store_page(session, principal, utcnow(), view, after, views.STORE_PAGE_SIZE)


def _read_detail(
    context: ServerContext, principal: PersonPrincipal, job_id: int
) -> JobDetail | None:
    with context.db.read_session() as session:
        return views.job_detail(session, principal, job_id, utcnow())
