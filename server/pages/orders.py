"""Order entry (`/store/orders/new`) and the order form it is built from.

`OrderForm(context, principal, choices, submit_label=..., on_submit=..., initial=None,
check=None)` renders every field of an order (`JobCreate`), checks it and calls
`await on_submit(order)` with a valid one. The edit page reuses it: `initial` is the order in
its JSON form (`JobCreate.model_dump(mode="json")`, or part of it), `on_submit` saves the
edit, `check(session, order)` refuses before `on_submit` (default `jobs.check_new_order`,
which also wants the lab's job and tray numbers free). `on_submit` may raise a DomainError:
its problems are shown beside their fields like any other.

Numbers are the lab's: lab staff get the job number field (the next number proposed) and the
tray; store staff get neither, only a line saying the job number is assigned on submit (on
an edit, the job's numbers), so a store never chooses a number of the lab-wide namespace.

One validation: the form builds the JSON an integration posts to `POST /api/jobs` and runs
`JobCreate` on it (pydantic's errors mapped by location, e.g. ("right", "sph") →
"right.sph"), then `check` in the domain (`InvalidFields`, same field paths). Every problem is
shown at once beside its field. Warnings (`orders.order_warnings`) are shown in amber and ask
for a second submit; they never refuse.

Keyboard first: focus starts on the first field to type (the lab's job number, a store's
patient reference); Tab follows the layout (order, lens, frame, the R row then the L row of
the Rx, notes, promise); a select takes typed letters, then Tab or Enter; Enter in the
promised date (the last field) or Ctrl+Enter anywhere submits; after a refusal focus goes to
the first wrong field.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import background_tasks, ui
from pydantic import ValidationError
from sqlalchemy.orm import Session

from core.labels import human, readable
from core.trace import Trace, svg
from server.context import ServerContext
from server.domain import audit, jobs, orders
from server.domain.auth import PersonPrincipal
from server.domain.errors import DomainError
from server.domain.jobs import LAB_NUMBERS, Problem
from server.domain.lab_time import lab_zone, local_text
from server.domain.orders import OrderChoices
from server.models import JobType, LensDesign, Priority, utcnow
from server.pages.access import STORE_PORTAL_ROLES, admit, page_header
from server.schemas import JobCreate

ORDER_PAGE = "/store/orders/new"
PROMISE_FORMAT = "%Y-%m-%d %H:%M"
# The Rx grid's columns, R row above L row; ADD only for multifocals.
RX_NUMBERS = ("sph", "cyl", "axis", "add", "prism")
RX_AFTER_BASE = ("mono_pd", "fitting_height")
PRISM_BASES = {"in": "In", "out": "Out", "up": "Up", "down": "Down"}
FRAME_SIZES = ("a_mm", "b_mm", "dbl_mm", "ed_mm")
# Amber hints for warnings (Quasar greys a field's hint); disabled fields (ADD for single
# vision, a catalogue frame's sizes) shaded, so the eye skips them as Tab does.
ORDER_STYLE = """
.order-warning .q-field__bottom { color: #b45309; font-weight: 600; }
.order-warning .q-field__control { background: #fef3c7; }
.q-field--disabled .q-field__control { background: #e2e8f0; }
"""

Submit = Callable[[JobCreate], Awaitable[None]]
Check = Callable[[Session, JobCreate], object]


def field_path(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as the domain names fields: ("right", "sph") → "right.sph"."""
    return ".".join(str(part) for part in location)


def _number(text: str | None) -> int | float | str | None:
    """What was typed into a number field, as JSON would carry it: a number (a decimal comma
    allowed), or the text itself, which the order's strict number fields refuse."""
    text = (text or "").strip().replace(",", ".")
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text or None


def _dioptres(column: str, value: object) -> object:
    """Powers as a prescription writes them (-1.00, not -1); no cylinder is an empty field."""
    if column not in ("sph", "cyl", "add") or not isinstance(value, int | float):
        return value
    return None if column == "cyl" and value == 0 else f"{value:.2f}"


def _numbers_note(data: dict[str, Any]) -> str:
    """What store staff read in place of the number fields: a job's numbers, or that the lab
    assigns one to a new order."""
    number, tray = data.get("job_number"), data.get("tray_number")
    if number is None:
        return "Job number: assigned when you submit"
    return f"Job number {number} · tray {tray}" if tray else f"Job number {number} · no tray yet"


class KeySelect(ui.select, component="order_select.js"):
    """A select that takes typed letters on the first key (see order_select.js)."""


class OrderForm:
    """The fields of one order, its checks, and the submit (see the module docstring)."""

    def __init__(
        self,
        context: ServerContext,
        principal: PersonPrincipal,
        choices: OrderChoices,
        *,
        submit_label: str,
        on_submit: Submit,
        initial: dict[str, Any] | None = None,
        check: Check | None = None,
    ) -> None:
        self.context = context
        self.principal = principal
        self.choices = choices
        self.on_submit = on_submit
        self.gives_numbers = not jobs.sees_one_store(principal)
        self.check = check or (
            lambda session, order: jobs.check_new_order(session, principal, order)
        )
        self.fields: dict[str, Any] = {}  # field path -> its input
        self.proposed = ""  # the promise last proposed: replaced while the field still shows it
        self.confirmed: list[Problem] = []  # warnings shown once; a second submit accepts them
        self.busy = False
        self.filling = False  # while `fill` sets every field, their reactions wait for the end
        ui.add_css(ORDER_STYLE)
        with ui.column().classes("w-full gap-2") as self.root:
            self.general = ui.column().classes("w-full gap-1")
            self._order_fields()
            self._lens_fields()
            self._frame_fields()
            self._rx_grid()
            self._closing_fields(submit_label)
        self.root.on("keydown.ctrl.enter", self.submit)
        self.fill(initial or {})

    @classmethod
    async def built_when_connected(cls, *args: Any, **kwargs: Any) -> "OrderForm":
        """The form, made once the page's socket is up. NiceGUI queues an `updateValue` for
        every input made before then and sends them just after it connects, which undid what
        a quick typist or a wand had typed in that moment (the value shown reverted)."""
        await ui.context.client.connected()
        return cls(*args, **kwargs)

    # Layout, in tab order.

    def _input(self, path: str, label: str, **props: str) -> ui.input:
        field = ui.input(label).props("outlined dense hide-bottom-space").classes("min-w-0")
        field.props.update({"data-field": path, "aria-label": label or path, **props})
        self.fields[path] = field
        return field

    def _select(self, path: str, label: str, options: dict[str, str]) -> KeySelect:
        field = KeySelect(options, label=label).props("outlined dense hide-bottom-space")
        field.props.update({"data-field": path, "aria-label": label or path})
        self.fields[path] = field
        return field

    def _order_fields(self) -> None:
        stores = self.choices.stores
        with ui.grid().classes("w-full gap-2 grid-cols-6"):
            if self.gives_numbers:
                self._input("job_number", "Job number")
                self._input("tray_number", "Tray")
            else:  # the lab's numbers: told, never typed (see `_fill`)
                self.numbers_note = (
                    ui.label("")
                    .classes("col-span-2 self-center text-slate-600")
                    .props("data-part=job-number-note")
                )
            store = self._select("store_code", "Store", stores)
            if len(stores) == 1:  # store staff order for their own store: nothing to pick
                store.disable()
            self._input("patient_ref", "Patient reference").classes("col-span-2")
            self._select("job_type", "Job type", {t.value: readable(t.value) for t in JobType})
        self.fields[self.first_field].props("autofocus")

    @property
    def first_field(self) -> str:
        """Where typing starts (and starts over)."""
        return "job_number" if self.gives_numbers else "patient_ref"

    def _lens_fields(self) -> None:
        labels = self.choices.labels
        catalogue = self.choices.catalogue
        with ui.row().classes("w-full gap-3 items-center no-wrap"):
            design = self._select(
                "lens_design",
                "Lens design",
                {d.value: human(labels.designs, d.value) for d in LensDesign},
            ).classes("w-40")
            if catalogue.materials:
                material = self._select("lens_material", "Material", {}).classes("w-56")
                material.on_value_change(self._material_chosen)
                self.index = ui.label("").classes("text-slate-600 w-20").props("data-part=index")
            else:  # no catalogue loaded: material and index are typed
                self._input("lens_material", "Material").classes("w-40")
                self._input("lens_index", "Index", inputmode="decimal").classes("w-24")
            self.surfaced = ui.checkbox("Surfaced")
            self.rush = ui.checkbox("Rush")
            self.fields["priority"] = self.rush
        design.on_value_change(self._design_chosen)
        with ui.row().classes("w-full gap-3 items-center") as treatments:
            ui.label("Treatments").classes("text-slate-600")
            if catalogue.treatments:
                self.treatments = {
                    t.code: ui.checkbox(labels.treatments.get(t.code, t.name))
                    for t in catalogue.treatments
                }
            else:
                self._input("treatments", "Codes, comma separated").classes("w-72")
            self.treatment_error = ui.label("").classes("text-red-700 text-sm")
        self.fields.setdefault("treatments", treatments)
        for field in (self.fields["job_type"], self.rush, self.surfaced):
            field.on_value_change(self._propose)

    def _frame_fields(self) -> None:
        labels = self.choices.labels
        frames = {f.code: f"{f.name} ({f.code})" for f in self.choices.catalogue.frames}
        with ui.row().classes("w-full gap-2 items-center no-wrap"):
            if frames:
                code = self._select("frame.code", "Frame", {"": "Typed here →", **frames})
                code.classes("w-72").on_value_change(self._frame_chosen)
            else:
                self._input("frame.code", "Frame code").classes("w-32")
            self._select(
                "frame.type",
                "Frame type",
                {t: human(labels.frame_types, t) for t in ("full_rim", "semi_rimless", "rimless")},
            ).classes("w-40")
            for size in FRAME_SIZES:
                name = human(labels.frame, size)
                self._input(f"frame.{size}", f"{name} mm", inputmode="decimal").classes("w-20")
        # The traced lens shape the job carries (from a DCS import or its original), as drawn on
        # the ticket and the station card.
        self.shape = ui.html("", sanitize=False).props("data-section=frame-shape")

    def _rx_grid(self) -> None:
        names = self.choices.labels.measurements
        columns = [*RX_NUMBERS, "prism_base", *RX_AFTER_BASE]
        with ui.row().classes("w-full items-center gap-4"):
            ui.label("Prescription").classes("text-lg font-semibold")
            self.plus = ui.checkbox("Cylinders written in plus form")
            self.fields["cylinder_form"] = self.plus
        with ui.grid().classes("w-full gap-2 grid-cols-[2rem_repeat(8,minmax(0,1fr))]"):
            ui.label("")
            for column in columns:
                ui.label(human(names, column)).classes("text-sm font-semibold text-slate-600")
            for side, eye in (("right", "R"), ("left", "L")):
                ui.label(eye).classes("text-xl font-bold self-center")
                for column in RX_NUMBERS:
                    self._input(f"{side}.{column}", "", inputmode="decimal")
                self._select(f"{side}.prism_base", "", PRISM_BASES)
                for column in RX_AFTER_BASE:
                    self._input(f"{side}.{column}", "", inputmode="decimal")

    def _closing_fields(self, submit_label: str) -> None:
        with ui.row().classes("w-full gap-3 items-start no-wrap"):
            self._input("special_instructions", "Special instructions").classes("grow")
            with ui.column().classes("gap-0 self-center text-sm text-slate-600"):
                self.ordered = ui.label("")
                self.proposal = ui.label("").props("data-part=proposal")
            zone = self.choices.zone.key
            promised = self._input(
                "promised_at", f"Promised ({zone})", placeholder="YYYY-MM-DD HH:MM"
            )
            promised.classes("w-52").on("keydown.enter", self.submit)
        with ui.row().classes("w-full items-center gap-4"):
            ui.button(submit_label, on_click=self.submit).props("color=primary size=lg")
            ui.label("Ctrl+Enter submits from any field").classes("text-sm text-slate-500")
            self.warning_note = ui.label("").classes("text-amber-800 font-semibold")

    # Values in and out.

    def start_over(self, choices: OrderChoices) -> None:
        """Empty for the next order (a fresh job number and promise), focus at the top."""
        self.choices = choices
        self.proposed = ""
        self.fill({})
        self.fields[self.first_field].run_method("focus")

    def fill(self, data: dict[str, Any]) -> None:
        """Shows an order (its JSON form); what it lacks is empty or the default."""
        self.filling = True
        try:
            self._fill(data)
        finally:
            self.filling = False
        self._design_chosen()
        self._frame_chosen()
        self.ordered.set_text(f"Ordered {local_text(utcnow(), self.choices.zone)}")
        self.show([], [])

    def _fill(self, data: dict[str, Any]) -> None:
        store_codes = list(self.choices.stores)
        if self.gives_numbers:
            self._set("job_number", data.get("job_number", self.choices.next_job_number))
            self._set("tray_number", data.get("tray_number"))
        else:
            self.numbers_note.set_text(_numbers_note(data))
        self._set("store_code", data.get("store_code", store_codes[0] if store_codes else None))
        self._set("patient_ref", data.get("patient_ref"))
        self._set("job_type", data.get("job_type", JobType.new.value))
        self.rush.value = data.get("priority") == Priority.rush
        self._set("lens_design", data.get("lens_design", LensDesign.SV.value))
        self._material_options()
        self._set("lens_material", data.get("lens_material"))
        if "lens_index" in self.fields:
            self._set("lens_index", data.get("lens_index"))
        self.surfaced.value = bool(data.get("surfaced", False))
        chosen = data.get("treatments", [])
        if hasattr(self, "treatments"):
            for code, box in self.treatments.items():
                box.value = code in chosen
        else:
            self._set("treatments", ", ".join(chosen))
        frame = data.get("frame") or {}
        for name in ("code", "type", *FRAME_SIZES):
            self._set(f"frame.{name}", frame.get(name, "" if name == "code" else None))
        self.plus.value = data.get("cylinder_form") == "plus"
        for side in ("right", "left"):
            eye = data.get(side) or {}
            for column in (*RX_NUMBERS, "prism_base", *RX_AFTER_BASE):
                self._set(f"{side}.{column}", _dioptres(column, eye.get(column)))
        self._set("special_instructions", data.get("special_instructions"))
        promised = data.get("promised_at")
        if promised:
            moment = datetime.fromisoformat(promised).astimezone(self.choices.zone)
            promised = f"{moment:{PROMISE_FORMAT}}"
        self._set("promised_at", promised)
        trace = data.get("trace")
        self.shape.set_content(svg(Trace.model_validate(trace), width_px=200) if trace else "")

    def _set(self, path: str, value: object) -> None:
        field = self.fields[path]
        if isinstance(field, ui.select):
            field.value = value if value in field.options else None
        else:
            field.value = (
                "" if value is None else f"{value:g}" if isinstance(value, float | int) else value
            )

    def _text(self, path: str) -> str | None:
        value = self.fields[path].value
        return (value.strip() or None) if isinstance(value, str) else value

    def _eye(self, side: str) -> dict[str, Any] | None:
        eye: dict[str, Any] = {
            column: _number(self._text(f"{side}.{column}")) for column in RX_NUMBERS
        }
        eye["prism_base"] = self._text(f"{side}.prism_base")
        eye |= {column: _number(self._text(f"{side}.{column}")) for column in RX_AFTER_BASE}
        eye = {name: value for name, value in eye.items() if value is not None}
        return eye or None  # an eye with nothing typed is not ordered

    def _frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"code": self._text("frame.code")}
        if not frame["code"]:  # a catalogue frame's type and sizes are the catalogue's
            frame["type"] = self._text("frame.type")
            frame |= {size: _number(self._text(f"frame.{size}")) for size in FRAME_SIZES}
        return {name: value for name, value in frame.items() if value is not None}

    def order_data(self) -> dict[str, Any]:
        """The order as the JSON `POST /api/jobs` takes, from what is typed."""
        promised = self._text("promised_at")
        try:  # typed in the lab's time zone
            naive = datetime.strptime(promised or "", PROMISE_FORMAT)
            promised = naive.replace(tzinfo=self.choices.zone).isoformat()
        except ValueError:
            pass  # JobCreate refuses it beside the field
        if hasattr(self, "treatments"):
            treatments = [code for code, box in self.treatments.items() if box.value]
        else:
            typed = self._text("treatments") or ""
            treatments = [code.strip() for code in typed.split(",") if code.strip()]
        numbers = {name: self._text(name) for name in LAB_NUMBERS if name in self.fields}
        data = {
            **numbers,
            "store_code": self._text("store_code"),
            "patient_ref": self._text("patient_ref"),
            "job_type": self._text("job_type"),
            "priority": Priority.rush if self.rush.value else Priority.regular,
            "ordered_at": utcnow().isoformat(),
            "promised_at": promised,
            "lens_design": self._text("lens_design"),
            "lens_material": self._text("lens_material"),
            "lens_index": self._index(),
            "surfaced": bool(self.surfaced.value),
            "treatments": treatments,
            "frame": self._frame(),
            "special_instructions": self._text("special_instructions") or "",
            "right": self._eye("right"),
            "left": self._eye("left"),
            "cylinder_form": "plus" if self.plus.value else "minus",
        }
        return {name: value for name, value in data.items() if value is not None}

    def _index(self) -> object:
        if "lens_index" in self.fields:
            return _number(self._text("lens_index"))
        material = self._material()
        return material.index if material else None

    def _material(self) -> Any:
        code = self._text("lens_material")
        return next((m for m in self.choices.catalogue.materials if m.code == code), None)

    # Reactions.

    def _design_chosen(self) -> None:
        if self.filling:
            return
        design = self._text("lens_design")
        for side in ("right", "left"):
            add = self.fields[f"{side}.add"]
            add.set_enabled(design != LensDesign.SV)  # disabled fields leave the tab order
            if design == LensDesign.SV:
                add.value = ""
        self._material_options()
        self._material_chosen()
        background_tasks.create(self._propose(), name="propose promise")

    def _material_options(self) -> None:
        """The catalogue's materials made in the chosen design."""
        material = self.fields["lens_material"]
        if isinstance(material, ui.select):
            design = self._text("lens_design")
            materials = self.choices.catalogue.materials
            allowed = {m.code: m.name for m in materials if design in m.designs}
            material.set_options(
                allowed, value=material.value if material.value in allowed else None
            )

    def _material_chosen(self) -> None:
        if hasattr(self, "index"):
            material = self._material()
            self.index.set_text(f"index {material.index:.2f}" if material else "")

    def _frame_chosen(self) -> None:
        if self.filling:
            return
        code = self._text("frame.code")
        known = next((f for f in self.choices.catalogue.frames if f.code == code), None)
        for name in ("type", *FRAME_SIZES):
            field = self.fields[f"frame.{name}"]
            field.set_enabled(known is None)  # the catalogue's sizes: nothing to type
            if known is not None:
                self._set(f"frame.{name}", getattr(known, name))

    async def _propose(self) -> None:
        """A fresh promise for the route the order now takes, unless one was typed."""
        design, job_type = self._text("lens_design"), self._text("job_type")
        if self.filling or design is None or job_type is None:
            return
        priority = Priority.rush if self.rush.value else Priority.regular
        surfaced = bool(self.surfaced.value)

        def propose(session: Session) -> datetime:
            lab_id = self.principal.lab_id
            args = (JobType(job_type), LensDesign(design), surfaced, priority)
            return orders.propose_promise(session, lab_id, *args, utcnow())

        try:
            promise = await asyncio.to_thread(self._read, propose)
        except DomainError:  # no route for it: the submit names the field
            return
        text = f"{promise.astimezone(self.choices.zone):{PROMISE_FORMAT}}"
        field = self.fields["promised_at"]
        if field.value in ("", self.proposed):
            field.value = text
        self.proposed = text
        proposed = local_text(promise, self.choices.zone)
        self.proposal.set_text(f"Proposed {proposed} (route and today's load)")

    def _read(self, work: Callable[[Session], Any]) -> Any:
        with self.context.db.read_session() as session:
            return work(session)

    # Submitting.

    async def submit(self) -> None:
        if self.busy:
            return
        self.busy = True
        try:
            await self._submit()
        finally:
            self.busy = False

    async def _submit(self) -> None:
        try:
            order = JobCreate.model_validate(self.order_data())
        except ValidationError as error:
            self.show([(field_path(e["loc"]), e["msg"]) for e in error.errors()], [])
            return
        try:
            await asyncio.to_thread(self._read, lambda session: self.check(session, order))
        except DomainError as error:
            self.show(error.problems, [])
            return
        warnings = orders.order_warnings(order)
        if warnings and warnings != self.confirmed:
            self.confirmed = warnings
            self.show([], warnings)
            return
        try:
            await self.on_submit(order)
        except DomainError as error:
            self.show(error.problems, [])

    def show(self, problems: list[Problem], warnings: list[Problem]) -> None:
        """Each problem beside its field (the first wrong field focused), warnings in amber;
        a problem no field shows (e.g. "role") above the form."""
        for field in self.fields.values():
            if isinstance(field, ui.input | ui.select):
                field.error = None
                field.props.pop("hint", None)
                field.classes(remove="order-warning")
        self.treatment_error.set_text("")
        self.general.clear()
        self.warning_note.set_text("")
        for path, message in problems:
            field = self._field_for(path)
            if isinstance(field, ui.input | ui.select):
                field.error = message
            elif field is not None and field is self.fields["treatments"]:
                self.treatment_error.set_text(message)
            else:  # e.g. "role", or an order with no eye at all
                with self.general:
                    ui.label(f"{path or 'order'}: {message}").classes("text-red-700 font-semibold")
        for path, message in warnings:
            field = self._field_for(path)
            if isinstance(field, ui.input | ui.select):
                field.props["hint"] = message
                field.classes(add="order-warning")
        if warnings:
            self.warning_note.set_text(
                f"{len(warnings)} warning(s) in amber: check them, then submit again to confirm"
            )
        else:
            self.confirmed = []
        # The first field in tab order with an error, else with a warning.
        marked = [f for f in self.fields.values() if isinstance(f, ui.input | ui.select)]
        first = next((f for f in marked if f.error), None) or next(
            (f for f in marked if "hint" in f.props and "order-warning" in f.classes), None
        )
        if first is not None:
            first.run_method("focus")

    def _field_for(self, path: str) -> Any:
        """The input showing `path`, or its nearest enclosing one ("treatments.0")."""
        parts = path.split(".")
        while parts:
            if (field := self.fields.get(".".join(parts))) is not None:
                return field
            parts.pop()
        return None


@dataclass(frozen=True)
class Created:
    job_id: int
    job_number: str
    tray_number: str | None
    promised: str  # in the lab's time zone


def _create(context: ServerContext, principal: PersonPrincipal, order: JobCreate) -> Created:
    with context.session() as session:
        job = jobs.create_job(session, principal, order)
        session.flush()
        promised = local_text(job.promised_at, lab_zone(session, principal.lab_id))
        return Created(job.id, job.job_number, job.tray_number, promised)


def _choices(context: ServerContext, principal: PersonPrincipal) -> OrderChoices:
    with context.db.read_session() as session:
        return orders.order_choices(session, principal)


def register_order_pages(context: ServerContext) -> None:
    @ui.page(ORDER_PAGE, title="LensTrack · New order")
    async def new_order_page(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        choices = await asyncio.to_thread(_choices, context, principal)
        opener = audit.actor_for(principal)  # the form's buttons run outside this request
        page_header(principal, "New order")
        with ui.column().classes("w-full px-4 py-2 gap-2"):
            created = ui.row().classes("w-full")

            async def create(order: JobCreate) -> None:
                with audit.acting_as(opener):
                    job = await asyncio.to_thread(_create, context, principal, order)
                created.clear()
                tray = f" · tray {job.tray_number}" if job.tray_number else ""
                with created, ui.card().classes("w-full bg-green-50").props("data-part=created"):
                    ui.label(f"Created {job.job_number}{tray} · promised {job.promised}").classes(
                        "text-lg font-semibold text-green-900"
                    )
                    with ui.row().classes("gap-6"):
                        ui.link("Open the job", f"/store/jobs/{job.job_id}")
                        ui.link(
                            "Print its ticket", f"/api/jobs/{job.job_id}/ticket.pdf", new_tab=True
                        )
                form.start_over(await asyncio.to_thread(_choices, context, principal))

            form = await OrderForm.built_when_connected(
                context, principal, choices, submit_label="Create order", on_submit=create
            )
        return None
