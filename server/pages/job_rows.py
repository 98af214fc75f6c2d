"""Store rows as one browser component: the page holds row data, the browser draws the rows.

NiceGUI re-renders a page's whole element tree in the browser on any element update, so a list
built from ~20 elements a row made every open store page re-render hundreds of elements per
station event. Here the list is one element: a changed job is sent as its row's data alone
(`run_method("place")`) and only that row is re-rendered. The element's `rows` prop is kept
equal to what the browser shows, so a page sent whole again (a reconnect) shows the same.

The store's list (`StoreList`) holds one filter's first rows in the database's order
(`views.store_page`); "Show more" reads the rows after the last one, a filter button that
filter's first page. A live change puts its job where the order says among the loaded rows,
or leaves it to "Show more" when it falls after them.
"""

from bisect import bisect_left
from collections.abc import Awaitable, Callable
from typing import Literal

from nicegui import ui
from nicegui.events import GenericEventArguments
from pydantic import BaseModel, ValidationError

from server.domain import views
from server.domain.views import StoreFilter, StoreKey, StorePage, StoreRow, Tone

TONE_CLASSES = {
    Tone.red: "bg-red-50 border-red-600",
    Tone.amber: "bg-amber-50 border-amber-500",
    Tone.ready: "bg-green-50 border-green-600",
    Tone.normal: "bg-white border-slate-300",
    Tone.done: "bg-slate-100 border-slate-400",
}
FILTER_LABELS = {
    StoreFilter.all: "All",
    StoreFilter.late: "Late",
    StoreFilter.rework: "Rework / breakage",
    StoreFilter.ready: "To collect",
}
Milestone = Literal["ready_for_pickup", "delivered"]


class FlagPayload(BaseModel):
    kind: str
    label: str
    reason: str
    red: bool


class RowPayload(BaseModel):
    """What the browser gets of a job: display texts, no identifiers beyond the job's."""

    job_id: int
    job_number: str
    tray: str
    rush: bool
    patient: str
    state: str
    progress: float
    step: str
    promised: str
    eta: str
    eta_late: bool
    tone: str
    tone_classes: str
    flags: list[FlagPayload]
    can_mark_ready: bool
    can_mark_delivered: bool


class MarkRequest(BaseModel):
    """A milestone button's click, as the browser sends it."""

    job_id: int
    action: Milestone


def row_payload(row: StoreRow) -> RowPayload:
    return RowPayload(
        job_id=row.job_id,
        job_number=row.job_number,
        tray=f"Tray {row.tray_number}" if row.tray_number else "No tray",
        rush=row.rush,
        patient=f"Patient {row.patient_ref}",
        state=row.state,
        progress=row.progress,
        step=f"{row.step} of {row.steps}",
        promised=f"Promised {row.promised}",
        eta=f"Expected {row.eta}" if row.eta else "",
        eta_late=row.eta_after_promise,
        tone=row.tone.value,
        tone_classes=TONE_CLASSES[row.tone],
        flags=[
            FlagPayload(
                kind=flag.kind.value,
                label=flag.label,
                reason=flag.reason,
                red=flag.kind in views.RED_FLAGS,
            )
            for flag in row.flags
        ],
        can_mark_ready=row.can_mark_ready,
        can_mark_delivered=row.can_mark_delivered,
    )


OnMark = Callable[[MarkRequest], Awaitable[None]]


class JobRows(ui.element, component="job_rows.js"):
    """Job rows as the store sees them: one job's head on its page, or `StoreList`."""

    def __init__(self, rows: list[StoreRow], *, on_mark: OnMark, link: bool) -> None:
        super().__init__()
        self._props["rows"] = [row_payload(row).model_dump() for row in rows]
        self._props["link"] = link
        self._props["filters"] = []  # no filter bar
        self.on_mark = on_mark
        self.on("mark", self._mark)

    @property
    def rows(self) -> list[dict[str, object]]:
        return self._props["rows"]

    async def _mark(self, event: GenericEventArguments) -> None:
        try:
            request = MarkRequest.model_validate(event.args)
        except ValidationError:
            ui.notify("That action was not understood; reload the page.", type="negative")
            return
        await self.on_mark(request)


ReadPage = Callable[[StoreFilter, StoreKey | None], Awaitable[StorePage]]


class StoreList(JobRows):
    """The store's open jobs: a filter bar with counts, a page of rows, "Show more"."""

    def __init__(
        self,
        page: StorePage,
        counts: dict[StoreFilter, int],
        *,
        read_page: ReadPage,
        on_mark: OnMark,
    ) -> None:
        super().__init__([], on_mark=on_mark, link=True)
        self.read_page = read_page
        self.view = StoreFilter.all
        self.keys: dict[int, StoreKey] = {}  # each shown row's place in the order
        self.end: StoreKey | None = None  # the last loaded key while more rows follow
        self._props["filters"] = [
            {"value": view.value, "label": label} for view, label in FILTER_LABELS.items()
        ]
        self._props["counts"] = {view.value: count for view, count in counts.items()}
        self._load(page)
        self.on("view", self._choose)
        self.on("more", self._more)

    def _load(self, page: StorePage) -> None:
        self.keys = {row.job_id: views.store_key(row) for row in page.rows}
        self.end = page.more
        self._props["view"] = self.view.value
        self._props["rows"] = [row_payload(row).model_dump() for row in page.rows]
        self._props["more"] = page.more is not None

    async def _choose(self, event: GenericEventArguments) -> None:
        try:
            view = StoreFilter(event.args)
        except ValueError:
            return  # not a filter this page offers
        page = await self.read_page(view, None)
        self.view = view
        self._load(page)
        self.update()  # a new list: sent whole

    async def _more(self) -> None:
        view, after = self.view, self.end
        if after is None:
            return  # every row is shown
        page = await self.read_page(view, after)
        if (view, after) != (self.view, self.end):
            return  # a filter was chosen, or a second click added these rows, meanwhile
        # A row a live update placed meanwhile is shown already (its key moved before `end`).
        fresh = [row for row in page.rows if row.job_id not in self.keys]
        payloads = [row_payload(row).model_dump() for row in fresh]
        self.keys.update((row.job_id, views.store_key(row)) for row in fresh)
        self.end = page.more
        with self._props.suspend_updates():
            self.rows.extend(payloads)
            self._props["more"] = page.more is not None
        self.run_method("append", payloads, page.more is not None)

    def show_counts(self, counts: dict[StoreFilter, int]) -> None:
        fresh = {view.value: count for view, count in counts.items()}
        if fresh != self._props["counts"]:
            with self._props.suspend_updates():
                self._props["counts"] = fresh
            self.run_method("setCounts", fresh)

    def show(self, job_id: int, row: StoreRow | None) -> None:
        """Puts the job's current row where the order puts it among the loaded rows, or drops
        it: gone from the list, not under this filter, or after the loaded rows. A row whose
        place is unchanged is updated where it is."""
        rows = self.rows
        index = next((i for i, shown in enumerate(rows) if shown["job_id"] == job_id), None)
        key = views.store_key(row) if row is not None and views.matches(row, self.view) else None
        if key is not None and self.end is not None and key > self.end:
            key = None  # "Show more" brings it, in its place
        if key is None:
            if index is not None:
                with self._props.suspend_updates():
                    del rows[index]
                del self.keys[job_id]
                self.run_method("remove", job_id)
            return
        assert row is not None
        payload = row_payload(row).model_dump()
        if index is not None and self.keys[job_id] == key and rows[index] == payload:
            return
        with self._props.suspend_updates():  # the browser gets the one row, not the whole list
            if index is not None:
                del rows[index]
            self.keys[job_id] = key
            index = bisect_left(rows, key, key=lambda shown: self.keys[int(shown["job_id"])])
            rows.insert(index, payload)
        self.run_method("place", payload, index)
