"""The store portal: the store's jobs live, a job page with its whole history, the flags feed.

Made for a counter screen: one coloured row per job (red: late, breakage or rework, with the
reason), the ETA beside the promised time in the lab's time zone, pickup actions in reach.
Rows stay where they are when they change, so nothing jumps under a finger.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from sqlalchemy.orm import Session

from server.context import ServerContext
from server.domain import jobs, views
from server.domain.auth import PersonPrincipal
from server.domain.errors import DomainError
from server.domain.views import JobDetail, StoreFilter, StoreRow, Tone
from server.models import Store, utcnow
from server.pages.access import STORE_PORTAL_ROLES, admit, page_header
from server.pages.live_view import PageFeed

TONE_CLASSES = {
    Tone.red: "bg-red-50 border-red-600",
    Tone.amber: "bg-amber-50 border-amber-500",
    Tone.ready: "bg-green-50 border-green-600",
    Tone.normal: "bg-white border-slate-300",
    Tone.done: "bg-slate-100 border-slate-400",
}
ROW_CLASSES = "w-full rounded-lg border-l-[10px] shadow-sm px-5 py-3"
ETA_LATE, ETA_ON_TIME = "text-red-700 font-bold", "text-slate-700"
FILTER_LABELS = {
    StoreFilter.all: "All",
    StoreFilter.late: "Late",
    StoreFilter.rework: "Rework / breakage",
    StoreFilter.ready: "To collect",
}

# A route step's state as an icon and colour: done, current (the job is there), to come.
STEP_ICONS = {
    "done": ("check_circle", "positive"),
    "current": ("play_circle", "primary"),
    "todo": ("radio_button_unchecked", "grey"),
}
STEP_CELL = """<q-td :props="props"><q-icon class="q-mr-sm" size="sm" :name="props.row.icon"
 :color="props.row.colour" />{{ props.value }}</q-td>"""

Milestone = Callable[[Session, PersonPrincipal, int], Any]


def _store_name(context: ServerContext, principal: PersonPrincipal) -> str:
    if principal.store_id is None:
        return "All stores"
    with context.db.session() as session:
        return session.get_one(Store, principal.store_id).name


class Milestones:
    """The store's two actions; the change comes back to every open page through the bus."""

    def __init__(self, context: ServerContext, principal: PersonPrincipal) -> None:
        self.context = context
        self.principal = principal

    def _run(self, mark: Milestone, job_id: int) -> None:
        with self.context.session() as session:
            mark(session, self.principal, job_id)

    async def mark(self, mark: Milestone, job_id: int) -> None:
        try:
            await asyncio.to_thread(self._run, mark, job_id)
        except DomainError as error:
            ui.notify(error.message, type="negative")


class JobSummary:
    """One job as a store person reads it: a list row, or the head of the job page.

    Built once; `show` sets texts, classes and props on the kept elements, so a change sends
    the few elements that differ, not a new row, and the browser mounts nothing new. The rush
    badge and the ETA are kept and hidden when a job lacks them; the buttons and the flag lines
    are rebuilt, only when they changed. Nothing is kept that a row does not show: NiceGUI
    re-renders the page's whole element tree in the browser on any update.
    """

    def __init__(self, row: StoreRow, milestones: Milestones, *, link: bool) -> None:
        self.row: StoreRow | None = None
        self.milestones = milestones
        job_id = row.job_id
        with ui.element("div").props(f"data-job-id={job_id}") as self.element:
            with ui.row().classes("w-full items-center gap-4 no-wrap"):
                with ui.column().classes("gap-0 w-36 shrink-0"):
                    number = (
                        ui.link(row.job_number, f"/store/jobs/{job_id}")
                        if link
                        else ui.label(row.job_number)
                    )
                    number.classes("text-2xl font-bold text-slate-900")
                    with ui.row().classes("gap-2 items-center"):
                        self.tray = ui.label().classes("text-sm text-slate-600")
                        self.rush = ui.badge("RUSH", color="red-8").classes("text-sm")
                    self.patient = ui.label().classes("text-sm text-slate-600")
                with ui.column().classes("gap-1 grow min-w-[11rem]"):
                    self.state = ui.label().classes("text-lg font-semibold")
                    with ui.row().classes("w-full items-center gap-3 no-wrap"):
                        self.progress = (
                            ui.linear_progress(0.0, show_value=False, size="10px")
                            .props("rounded")
                            .classes("grow")
                        )
                        self.step = ui.label().classes("text-sm text-slate-600 shrink-0")
                with ui.column().classes("gap-0 w-52 shrink-0"):
                    self.promised = ui.label().classes("text-base")
                    self.eta = ui.label()
                self.actions = ui.column().classes("gap-2 shrink-0")
            self.flags = ui.element("div")
        self.show(row)

    def show(self, row: StoreRow) -> None:
        old, self.row = self.row, row
        if row == old:
            return
        self.tray.set_text(f"Tray {row.tray_number}" if row.tray_number else "No tray")
        self.rush.set_visibility(row.rush)
        self.patient.set_text(f"Patient {row.patient_ref}")
        self.state.set_text(row.state)
        self.progress.set_value(row.progress)
        self.progress.props(f"color={'red-7' if row.tone == Tone.red else 'primary'}")
        self.step.set_text(f"{row.step} of {row.steps}")
        self.promised.set_text(f"Promised {row.promised}")
        self.eta.set_text(f"Expected {row.eta}" if row.eta else "")
        if old is None or row.eta_after_promise != old.eta_after_promise:
            self.eta.classes(remove=f"{ETA_LATE} {ETA_ON_TIME}")  # keeps "hidden" if hidden
            self.eta.classes(f"text-base {ETA_LATE if row.eta_after_promise else ETA_ON_TIME}")
        self.eta.set_visibility(bool(row.eta))
        if old is None or _actions(row) != _actions(old):  # built when needed: few rows have any
            self.actions.clear()
            with self.actions:
                self._buttons(row)
        if old is None or row.flags != old.flags:
            self.flags.clear()
            with self.flags:
                for flag in row.flags:
                    _flag_line(flag)
        if old is None:
            self.element.classes(f"{ROW_CLASSES} {TONE_CLASSES[row.tone]}")
        elif row.tone != old.tone:  # the list's filter may have added "hidden": keep it
            self.element.classes(remove=TONE_CLASSES[old.tone], add=TONE_CLASSES[row.tone])
        self.element.props(f"data-tone={row.tone.value}")

    def _buttons(self, row: StoreRow) -> None:
        job_id, mark = row.job_id, self.milestones.mark
        if row.can_mark_ready:
            ui.button(
                "Ready for pickup",
                icon="storefront",
                on_click=lambda: mark(jobs.mark_ready_for_pickup, job_id),
            ).props("unelevated color=green-8 no-caps")
        if row.can_mark_delivered:
            ui.button(
                "Delivered to patient",
                icon="how_to_reg",
                on_click=lambda: mark(jobs.mark_delivered, job_id),
            ).props("unelevated color=primary no-caps")


def _actions(row: StoreRow) -> tuple[bool, bool]:
    return row.can_mark_ready, row.can_mark_delivered


def _flag_line(flag: views.FlagView) -> None:
    red = flag.kind in views.RED_FLAGS
    with ui.row().classes("items-center gap-2 mt-1 no-wrap").props(f"data-flag={flag.kind}"):
        ui.badge(flag.label, color="red-8" if red else "amber-9").classes("text-sm")
        ui.label(flag.reason).classes(
            "text-base " + ("text-red-800 font-semibold" if red else "text-amber-900")
        )


class StoreList:
    """The live list: one row per job, updated in place when that job changes."""

    def __init__(self, milestones: Milestones, rows: list[StoreRow]) -> None:
        self.milestones = milestones
        self.view = StoreFilter.all
        self.rows: dict[int, StoreRow] = {}
        self.summaries: dict[int, JobSummary] = {}
        with ui.row().classes("w-full items-center gap-4"):
            ui.toggle(
                {view: label for view, label in FILTER_LABELS.items()},
                value=StoreFilter.all,
                on_change=lambda event: self.filter(event.value),
            ).props("size=lg no-caps toggle-color=primary")
            self.counts = ui.label().classes("text-base text-slate-600")
        self.container = ui.column().classes("w-full gap-3")
        self.empty = ui.label("No jobs here.").classes("text-lg text-slate-500 p-4")
        for row in rows:
            self.show(row.job_id, row, new_on_top=False)

    def show(self, job_id: int, row: StoreRow | None, *, new_on_top: bool = True) -> None:
        summary = self.summaries.get(job_id)
        if row is None:
            if summary is not None:
                self.container.remove(summary.element)
                del self.summaries[job_id], self.rows[job_id]
        else:
            if summary is None:
                with self.container:
                    summary = JobSummary(row, self.milestones, link=True)
                if new_on_top:  # a job the store just ordered
                    summary.element.move(self.container, target_index=0)
                self.summaries[job_id] = summary
            else:
                summary.show(row)
            self.rows[job_id] = row
            summary.element.set_visibility(views.matches(row, self.view))
        self._count()

    def filter(self, view: StoreFilter) -> None:
        self.view = StoreFilter(view)
        for job_id, summary in self.summaries.items():
            summary.element.set_visibility(views.matches(self.rows[job_id], self.view))
        self._count()

    def _count(self) -> None:
        counts = {
            view: sum(views.matches(row, view) for row in self.rows.values())
            for view in FILTER_LABELS
        }
        self.counts.set_text(
            f"{counts[StoreFilter.all]} jobs · {counts[StoreFilter.late]} late · "
            f"{counts[StoreFilter.rework]} rework or breakage · "
            f"{counts[StoreFilter.ready]} to collect"
        )
        self.empty.set_visibility(counts[self.view] == 0)


class FlagsFeed:
    """The latest flags; an update adds and removes entries, the ones still listed stay."""

    def __init__(self) -> None:
        with ui.card().classes("w-full"):
            ui.label("Flags").classes("text-xl font-semibold")
            self.container = ui.column().classes("w-full gap-2")
            with self.container:
                self.none = ui.label("No flags raised.").classes("text-slate-500")
        self.shown: list[tuple[views.FlagEntry, ui.element]] = []

    def show(self, entries: list[views.FlagEntry]) -> None:
        kept: dict[views.FlagEntry, list[ui.element]] = {}
        for entry, element in self.shown:
            kept.setdefault(entry, []).append(element)
        shown: list[tuple[views.FlagEntry, ui.element]] = []
        for entry in entries:
            pool = kept.get(entry)
            if pool:
                shown.append((entry, pool.pop(0)))
            else:
                with self.container:
                    shown.append((entry, _flag_entry(entry)))
        for pool in kept.values():
            for element in pool:
                self.container.remove(element)
        children = self.container.default_slot.children
        for index, (_, element) in enumerate(shown, start=1):  # after "No flags raised."
            if children[index] is not element:
                element.move(self.container, target_index=index)
        self.shown = shown
        self.none.set_visibility(not entries)


def _flag_entry(entry: views.FlagEntry) -> ui.element:
    colour = "text-red-800" if entry.red else "text-amber-900"
    muted = "" if entry.open else " opacity-50 line-through"
    with ui.column().classes(f"gap-0 w-full{muted}") as element:
        with ui.row().classes("items-center gap-2"):
            ui.link(entry.job_number, f"/store/jobs/{entry.job_id}").classes("font-bold")
            ui.label(entry.label).classes(f"font-semibold {colour}")
            ui.label(entry.raised).classes("text-xs text-slate-500")
        ui.label(entry.reason).classes("text-sm")
    return element


def _job_page(detail: JobDetail, milestones: Milestones) -> None:
    JobSummary(detail.row, milestones, link=False)
    ui.label(f"Store {detail.store_code} · {detail.lens}").classes("text-slate-600")
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


def register_store_pages(context: ServerContext) -> None:
    @ui.page("/store", title="LensTrack · Store")
    async def store_page(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        rows, feed = await asyncio.to_thread(_read_store, context, principal)
        page_header(principal, f"{_store_name(context, principal)} · Store portal")
        milestones = Milestones(context, principal)
        with ui.element("div").classes(
            "w-full p-4 grid gap-4 grid-cols-1 xl:grid-cols-[1fr_24rem]"
        ):
            with ui.column().classes("w-full gap-3 min-w-0"):
                store_list = StoreList(milestones, rows)
            with ui.column().classes("w-full"):
                flags = FlagsFeed()
                flags.show(feed)

        async def refresh_feed(kinds: set[str]) -> None:
            if kinds & {"flag_raised", "flag_cleared"}:  # the feed lists flags only
                flags.show(
                    await live.read("flag_feed", lambda s: views.flag_feed(s, principal, utcnow()))
                )

        live = PageFeed(
            context, principal, views.store_row_by_id, store_list.show, after_batch=refresh_feed
        )
        return None

    @ui.page("/store/jobs/{job_id}", title="LensTrack · Job")
    async def store_job_page(request: Request, job_id: int) -> RedirectResponse | None:
        principal = admit(context, request, STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        detail = await asyncio.to_thread(_read_detail, context, principal, job_id)
        page_header(principal, _store_name(context, principal))
        with ui.column().classes("w-full p-4 gap-4"):
            ui.link("← All jobs", "/store").classes("text-lg")
            if detail is None:
                ui.label("Job not found.").classes("text-2xl font-bold")
                return None
            milestones = Milestones(context, principal)
            body = ui.column().classes("w-full gap-4")
            with body:
                _job_page(detail, milestones)

        def show(_: int, fresh: JobDetail | None) -> None:
            body.clear()
            with body:
                if fresh is None:
                    ui.label("This job is no longer visible here.").classes("text-xl")
                else:
                    _job_page(fresh, milestones)

        PageFeed(context, principal, views.job_detail, show, only_job=job_id)
        return None


def _read_store(
    context: ServerContext, principal: PersonPrincipal
) -> tuple[list[StoreRow], list[views.FlagEntry]]:
    now = utcnow()
    with context.db.session() as session:
        return views.store_rows(session, principal, now), views.flag_feed(session, principal, now)


def _read_detail(
    context: ServerContext, principal: PersonPrincipal, job_id: int
) -> JobDetail | None:
    with context.db.session() as session:
        return views.job_detail(session, principal, job_id, utcnow())
