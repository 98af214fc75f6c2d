"""Store rows as one browser component: the page holds row data, the browser draws the rows.

NiceGUI re-renders a page's whole element tree in the browser on any element update, so a list
built from ~20 elements a row made every open store page re-render hundreds of elements per
station event. Here the list is one element: a changed job is sent as its row's data alone
(`run_method("upsert")`) and only that row is re-rendered. The element's `rows` prop is kept
equal to what the browser shows, so a page sent whole again (a reconnect) shows the same.
Filtering is done in the browser from the views each row matches, computed here.
"""

from collections.abc import Awaitable, Callable
from typing import Literal

from nicegui import ui
from nicegui.events import GenericEventArguments
from pydantic import BaseModel, ValidationError

from server.domain import views
from server.domain.views import StoreFilter, StoreRow, Tone

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
COUNT_LABELS = {
    StoreFilter.all: "jobs",
    StoreFilter.late: "late",
    StoreFilter.rework: "rework or breakage",
    StoreFilter.ready: "to collect",
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
    views: list[str]  # the filters this row shows under


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
        views=[view.value for view in StoreFilter if views.matches(row, view)],
    )


OnMark = Callable[[MarkRequest], Awaitable[None]]


class JobRows(ui.element, component="job_rows.js"):
    """The store's list (`filters=True`: filter bar and counts), or one job's head."""

    def __init__(self, rows: list[StoreRow], *, on_mark: OnMark, link: bool, filters: bool) -> None:
        super().__init__()
        self._props["rows"] = [row_payload(row).model_dump() for row in rows]
        self._props["link"] = link
        self._props["filters"] = (
            [{"value": view.value, "label": label} for view, label in FILTER_LABELS.items()]
            if filters
            else []
        )
        self._props["counts"] = (
            [{"view": view.value, "label": label} for view, label in COUNT_LABELS.items()]
            if filters
            else []
        )
        self.on_mark = on_mark
        self.on("mark", self._mark)

    @property
    def rows(self) -> list[dict[str, object]]:
        return self._props["rows"]

    def show(self, job_id: int, row: StoreRow | None) -> None:
        """Puts the job's current row in place (a job new to the list on top), or drops it."""
        rows = self.rows
        index = next((i for i, shown in enumerate(rows) if shown["job_id"] == job_id), None)
        payload = None if row is None else row_payload(row).model_dump()
        unchanged = rows[index] == payload if index is not None else payload is None
        if unchanged:
            return
        with self._props.suspend_updates():  # the browser gets the one row, not the whole list
            if payload is None:
                del rows[index]
            elif index is not None:
                rows[index] = payload
            else:
                rows.insert(0, payload)
        if payload is None:
            self.run_method("remove", job_id)
        else:
            self.run_method("upsert", payload)

    async def _mark(self, event: GenericEventArguments) -> None:
        try:
            request = MarkRequest.model_validate(event.args)
        except ValidationError:
            ui.notify("That action was not understood; reload the page.", type="negative")
            return
        await self.on_mark(request)
