"""The QC station's inspection panel: ordered vs measured per eye, coloured by the tolerance
checks, manual entry on a number pad, cosmetic toggles, PASS and FAIL (defects per eye).

Happy path: the scan starts the job, the lensmeter reading fills both eyes, one tap on PASS.
Dialogs live on the page's layout, not in the panel, so a reading arriving while one is
open redraws the panel without closing it.
"""

from nicegui import ui

from core.labels import StationLabels, human
from core.optics import Check, CheckResult, Eye
from station.qc import Field, Inspection
from station.view import StationView
from station.wire import DefectIn, JobCard, Reason

COLUMNS: tuple[Field, ...] = ("sph", "cyl", "axis")
PRISM_COLUMNS: tuple[Field, ...] = ("prism_h", "prism_v")
CHECK_OF: dict[Field, str] = {"prism_h": "prism", "prism_v": "prism"}  # else the same name
PAD_KEYS = ("7", "8", "9", "4", "5", "6", "1", "2", "3", "±", "0", ".")
CELL_COLORS = {"pass": "green-9", "fail": "red-9", "empty": "blue-grey-8"}
EYE_WORDS = {"R": "R", "L": "L", None: "Pair"}


def return_text(reason: Reason, stage_names: dict[str, str]) -> str:
    """Where a breakage or defect sends the job; off this route it is the route's start."""
    return stage_names.get(reason.return_stage or "", "the route's first stage")


def lens_text(card: JobCard, labels: StationLabels) -> str:
    """Design, material, index, surfaced or stock, and the treatments, as a person reads them."""
    treatments = ", ".join(human(labels.treatments, t) for t in card.treatments)
    return (
        f"{human(labels.designs, card.lens_design)} {card.lens_material} {card.lens_index:g}"
        f"{' surfaced' if card.surfaced else ' stock'} · {treatments or 'no treatments'}"
    )


def job_heading(card: JobCard) -> None:
    """Job number, tray and RUSH, the first things read off the card and the QC panel."""
    ui.label(card.job_number).classes("jobno").mark("job-number")
    if card.tray_number:
        ui.label(f"Tray {card.tray_number}").classes("text-2xl")
    if card.priority == "rush":
        ui.label("RUSH").classes("rush text-2xl")


def qc_panel(view: StationView) -> None:
    desk, screen = view.qc, view.screen
    if desk is None or desk.inspection is None or screen.card is None:
        return  # the inspection just ended; the page redraws the card from the screen
    inspection, card, labels = desk.inspection, screen.card.card, view.labels()
    result = inspection.result()
    with ui.column().classes("panel w-full gap-2").mark("qc-panel"):
        _header(card, inspection, labels)
        _measurements(view, inspection, result, labels)
        _cosmetic(view, inspection)
        with ui.row().classes("w-full items-center gap-3 no-wrap"):
            ui.button("PASS", on_click=desk.pass_job).props(
                f"color=green-8 unelevated {'' if inspection.passes() else 'disable'}"
            ).classes("qc-verdict").mark("qc-pass")
            ui.button("FAIL…", on_click=lambda: _fail_dialog(view)).props(
                "color=red-9 unelevated"
            ).classes("qc-verdict").mark("qc-fail")
            why = _why_not(inspection, result, labels)
            ui.label(why).classes("text-lg grow").mark("qc-why")


def _header(card: JobCard, inspection: Inspection, labels: StationLabels) -> None:
    with ui.row().classes("w-full items-center gap-4"):
        job_heading(card)
        ui.label(f"Store {card.store_code} · {lens_text(card, labels)}").classes("text-lg")
        ui.space()
        source = {"lensmeter": "Lensmeter reading", "manual": "Entered by hand"}
        ui.label(source.get(inspection.source, "Waiting for the lensmeter…")).classes(
            f"chip tone-{'ok' if inspection.source else 'idle'}"
        ).mark("qc-source")


def _columns(inspection: Inspection) -> list[Field]:
    lenses = [inspection.ordered.lens(eye) for eye in inspection.eyes]
    columns = list(COLUMNS)
    if any(lens and lens.add is not None for lens in lenses):
        columns.append("add")
    if any(lens and lens.prism() is not None for lens in lenses):
        columns += PRISM_COLUMNS
    return columns


def _measurements(
    view: StationView, inspection: Inspection, result: CheckResult | None, labels: StationLabels
) -> None:
    """Ordered and measured per eye, right eye above left, as on every lensmeter."""
    columns = _columns(inspection)
    checks = {(c.eye, c.field): c for c in result.checks} if result else {}
    with ui.grid(columns=f"48px repeat({len(columns)}, 1fr)").classes("w-full gap-2"):
        ui.label("")
        for field in columns:
            ui.label(human(labels.measurements, field)).classes("label text-center")
        for eye in inspection.eyes:
            ui.label(eye).classes("text-3xl font-bold self-center").mark(f"qc-eye-{eye}")
            for field in columns:
                check = checks.get((eye, CHECK_OF.get(field, field)))
                title = f"{eye} {human(labels.measurements, field)}"
                _cell(view, inspection, eye, field, title, check)
    shown = {(eye, CHECK_OF.get(field, field)) for eye in inspection.eyes for field in columns}
    for check in checks.values():
        if not check.passed and (check.eye, check.field) not in shown:
            ui.label(
                f"{_check_name(check, labels)}: {_number(check.measured)} vs "
                f"{_number(check.ordered)}, {_off(check)}"
            ).classes("qc-note tone-error").mark("qc-other-fail")


def _check_name(check: Check, labels: StationLabels) -> str:
    """The eye and the quantity ("R SPH"); a pair check by its name alone."""
    name = human(labels.measurements, check.field)
    return f"{check.eye} {name}" if check.eye else name


def _cell(
    view: StationView,
    inspection: Inspection,
    eye: Eye,
    field: Field,
    title: str,
    check: Check | None,
) -> None:
    lens = inspection.ordered.lens(eye)
    ordered = getattr(lens, field) if lens else None
    measured = inspection.measured[eye].get(field)
    tone = "empty" if measured is None else "fail" if check and not check.passed else "pass"
    with (
        ui.button(on_click=lambda: _number_pad(view, eye, field, title, measured))
        .props(f"unelevated no-caps color={CELL_COLORS[tone]}")
        .classes(f"qc-cell qc-{tone}")
        .mark(f"qc-cell-{eye}-{field}"),
        ui.column().classes("items-center gap-0 w-full"),
    ):
        ui.label(_value(field, measured)).classes("qc-measured")
        ui.label(f"ordered {_value(field, ordered)}").classes("qc-ordered")
        if check is not None and not check.passed:
            ui.label(_off(check)).classes("qc-off").mark("qc-off")


def _off(check: Check) -> str:
    unit = "°" if check.field == "axis" else ""
    return f"off {check.deviation:.2f}{unit} (±{check.tolerance:g}{unit})".replace(".00°", "°")


def _value(field: Field, value: float | int | None) -> str:
    if value is None:
        return "—"
    return str(value) if field == "axis" else _number(value)


def _number(value: float) -> str:
    return f"{value:+.2f}"


def _cosmetic(view: StationView, inspection: Inspection) -> None:
    desk = view.qc
    assert desk is not None
    with ui.row().classes("w-full gap-2"):
        for index, (item, ok) in enumerate(inspection.cosmetic.items()):
            ui.button(
                f"{'✓' if ok else '✗'} {item}",
                on_click=lambda item=item, ok=ok: desk.set_cosmetic(item, not ok),
            ).props(f"unelevated no-caps color={'green-9' if ok else 'red-9'}").classes(
                "qc-toggle"
            ).mark(f"cosmetic-{index}")


def _why_not(inspection: Inspection, result: CheckResult | None, labels: StationLabels) -> str:
    if missing := inspection.missing():
        return "To measure: " + ", ".join(
            f"{eye} {human(labels.measurements, field)}" for eye, field in missing
        )
    failed = [c for c in result.checks if not c.passed] if result else []
    if failed:
        return "Out of tolerance: " + ", ".join(_check_name(c, labels) for c in failed)
    if rejected := [item for item, ok in inspection.cosmetic.items() if not ok]:
        return "Cosmetic: " + ", ".join(rejected)
    return "All within tolerance"


def _number_pad(
    view: StationView, eye: Eye, field: Field, title: str, current: float | None
) -> None:
    """Touch entry of one measured value (axis: whole degrees)."""
    desk = view.qc
    assert desk is not None
    view.touch()
    typed = [""]
    with _dialog() as dialog, ui.card().classes("gap-2 items-center"):
        ui.label(f"{title} (was {_value(field, current)})").classes("text-2xl")
        display = ui.label().classes("qc-pad-display").mark("pad-display")

        def show() -> None:
            display.set_text(typed[0] or "—")

        def key(pressed: str) -> None:
            text = typed[0]
            if pressed == "±":
                typed[0] = text[1:] if text.startswith("-") else "-" + text
            elif pressed == "." and (field == "axis" or "." in text):
                return
            else:
                typed[0] = text + pressed
            show()

        def back() -> None:
            typed[0] = typed[0][:-1]
            show()

        def save(value: float | None) -> None:
            dialog.close()
            desk.set_value(eye, field, value)

        def ok() -> None:
            try:
                save(float(typed[0]))
            except ValueError:
                display.set_text("Not a number")

        show()
        with ui.grid(columns=3).classes("gap-2"):
            for pressed in PAD_KEYS:
                if field == "axis" and pressed in "±.":
                    ui.label("")
                    continue
                ui.button(pressed, on_click=lambda pressed=pressed: key(pressed)).props(
                    "unelevated"
                ).classes("qc-pad-key").mark(f"pad-{pressed}")
        with ui.row().classes("gap-2"):
            ui.button("⌫", on_click=back).props("unelevated color=grey-8").classes("qc-pad-key")
            ui.button("Clear", on_click=lambda: save(None)).props("flat").classes("big-button")
            ui.button("OK", on_click=ok).props("unelevated color=green-8").classes(
                "big-button"
            ).mark("pad-ok")
    dialog.open()


def _dialog() -> ui.dialog:
    """A dialog on the page's layout (outside the redrawn panel), deleted once closed."""
    with ui.context.client.layout:
        dialog = ui.dialog()
    dialog.on_value_change(lambda event: None if event.value else dialog.delete())
    return dialog


def _fail_dialog(view: StationView) -> None:
    """Defects per eye (or the pair), each showing where it sends the job; the first chosen
    decides the return stage."""
    desk = view.qc
    assert desk is not None and desk.inspection is not None
    view.touch()
    inspection = desk.inspection
    eyes: list[Eye | None] = [*inspection.eyes, None]
    reasons = view.reasons("defect")
    stage_names = view.stage_names()
    chosen: list[DefectIn] = []

    def toggle(defect: DefectIn) -> None:
        if defect in chosen:
            chosen.remove(defect)
        else:
            chosen.append(defect)
        choices.refresh()

    def send() -> None:
        if chosen and not inspection.uncovered_eyes(chosen):
            dialog.close()
            desk.fail_job(list(chosen), reasons)

    @ui.refreshable
    def choices() -> None:
        for reason in reasons:
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                with ui.column().classes("grow gap-0"):
                    ui.label(f"{reason.code} — {reason.description}").classes("text-xl")
                    ui.label(f"back to {return_text(reason, stage_names)}").classes("qc-ordered")
                for eye in eyes:
                    defect = DefectIn(eye=eye, code=reason.code)
                    on = defect in chosen
                    ui.button(EYE_WORDS[eye], on_click=lambda defect=defect: toggle(defect)).props(
                        f"unelevated color={'red-9' if on else 'grey-8'}"
                    ).classes("qc-eye").mark(f"defect-{reason.code}-{EYE_WORDS[eye]}")
        uncovered = inspection.uncovered_eyes(chosen)
        ready = bool(chosen) and not uncovered
        with ui.row().classes("w-full items-center gap-3"):
            ui.button("Send to rework", on_click=send).props(
                f"unelevated color=red-9 {'' if ready else 'disable'}"
            ).classes("big-button").mark("send-rework")
            ui.button("Cancel", on_click=dialog.close).props("flat").classes("big-button")
            if uncovered:
                words = " and ".join(uncovered)
                ui.label(f"{words} failed: choose a defect for {words} (or the pair)").classes(
                    "text-lg pending"
                ).mark("rework-uncovered")
            elif chosen:
                deciding = inspection.deciding_defect(chosen, reasons)
                reason = next(r for r in reasons if r.code == deciding.code)
                ui.label(f"Job goes back to {return_text(reason, stage_names)}").classes(
                    "text-lg"
                ).mark("rework-target")

    with _dialog() as dialog, ui.card().classes("min-w-[760px] gap-2"):
        ui.label("Fail: choose the defects, per eye").classes("text-2xl")
        choices()
    dialog.open()
