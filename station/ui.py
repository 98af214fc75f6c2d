"""The station page: one screen that confirms scans; taps only for hold, breakage, notes, overrides.

Every client shows the same station state, read from the `StationView`; they subscribe to its
change events and redraw, so there is no polling per client.
"""

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from nicegui import events, ui

from core.labels import StationLabels, human
from core.trace import svg
from station.flow import Screen, Verdict
from station.qc import EYES
from station.qc_ui import job_heading, lens_text, qc_panel, return_text
from station.reprint import ReprintFailed
from station.shipping_ui import shipment_panel
from station.view import StationView
from station.wire import Action, BreakageDetail, JobCard, Reason

STATIC = Path(__file__).parent / "static"
SCRIPT = (STATIC / "station.js").read_text()
STYLE = (STATIC / "station.css").read_text()
POWERS = ("sph", "cyl", "add")  # dioptres: always signed
# Order values a card block shows (paths' first parts): a chip marks a change the lab accepted.
RX_VALUES = ("right", "left")
LENS_VALUES = ("lens_design", "lens_material", "lens_index", "surfaced", "treatments", "job_type")
FRAME_VALUES = ("frame", "trace")
OVERRIDE_PRESETS = ("Rush: supervisor approved", "Stage done on another line", "Route is wrong")
ACTION_WORDS = {
    Action.start: "started",
    Action.complete: "completed",
    Action.hold: "hold",
    Action.release: "released",
    Action.breakage: "breakage",
    Action.rework: "rework",
    Action.note: "note",
}


def build_page(view: StationView) -> None:
    ui.add_head_html(f"<style>{STYLE}</style><script>{SCRIPT}</script>")
    ui.page_title(f"{view.name} · LensTrack")
    ui.query(".nicegui-content").classes("p-3 gap-3")
    ui.element("div").props('id="scan-flash"').classes("scan-flash")
    if wedge := view.wedge:
        # In the page itself, not run once the socket is up: a scan in the first moments
        # after a (re)load would otherwise lose its first keys.
        ui.add_body_html(
            f"<script>lenstrack.installWedge({wedge.max_key_gap_ms}, {wedge.min_length})</script>"
        )

    async def on_scan(event: events.GenericEventArguments) -> None:
        await view.scan(str(event.args))

    ui.on("station_scan", on_scan)

    @ui.refreshable
    def status_bar() -> None:
        _status_bar(view)

    @ui.refreshable
    def qc() -> None:
        qc_panel(view)

    @ui.refreshable
    def main() -> None:
        _main(view, view.screen, qc)

    def on_screen(screen: Screen) -> None:
        status_bar.refresh()  # it shows who is signed in
        main.refresh()
        ui.run_javascript(f"lenstrack.feedback('{screen.tone}')")

    status_bar()
    main()
    view.screen_changed.subscribe(on_screen)
    view.status_changed.subscribe(status_bar.refresh)
    view.device_changed.subscribe(status_bar.refresh)
    view.qc_changed.subscribe(qc.refresh)
    if view.has_camera:
        ui.query("body").classes("has-camera")  # the action buttons keep clear of the panel
        _camera_panel(view)


def _camera_panel(view: StationView) -> None:
    """The latest camera frame with the codes boxed, pushed from the camera's preview event
    (already throttled to `preview_interval` there), so no client runs a timer."""
    with ui.card().classes("camera-panel gap-1 p-2").mark("camera-panel"):
        image = ui.interactive_image().classes("w-full").mark("camera-preview")

        def show(jpeg: bytes) -> None:
            image.set_source("data:image/jpeg;base64," + base64.b64encode(jpeg).decode())

        view.preview_changed.subscribe(show)
        if view.shows_tickets:
            _ticket_input(view)


def _ticket_input(view: StationView) -> None:
    """Demo only: put a printed ticket for any code under the virtual camera."""

    def put(_: object = None) -> None:
        if code.value.strip():
            view.show_ticket(code.value.strip())
            code.value = ""

    with ui.row().classes("w-full no-wrap items-center gap-1"):
        code = (
            ui.input(placeholder="Ticket to show")
            .props("dense dark")
            .classes("grow")
            .on("keydown.enter", put)
            .mark("ticket-code")
        )
        ui.button("Show", on_click=put).props("dense unelevated").mark("show-ticket")


def _status_bar(view: StationView) -> None:
    status, operator = view.connection, view.screen.operator
    with ui.row().classes("w-full items-center gap-3 no-wrap"):
        ui.label(view.name).classes("text-2xl font-bold whitespace-nowrap")
        ui.label(view.stage_name).classes("text-xl text-grey-5 whitespace-nowrap")
        ui.space()
        if operator:
            ui.label(operator.name).classes("chip tone-idle").mark("operator")
        else:
            ui.label("Signed out").classes("chip tone-idle").mark("operator")
        tone = {"online": "ok", "connecting": "warning", "offline": "error"}.get(
            status.connection, "error"
        )
        text = {"online": "Online", "connecting": "Connecting", "offline": "Offline"}.get(
            status.connection, "Token refused"
        )
        if status.queued:
            text += f" · {status.queued} queued"
        ui.label(text).classes(f"chip tone-{tone}").mark("connection")
        if fault := view.screen.storage_fault:
            ui.label("Cannot save scans").classes("chip tone-error").mark("storage").tooltip(fault)
        for device in view.devices:
            word = "connected" if device.connected else "lost"
            ui.label(f"{device.name} {word}").classes(
                f"chip chip-device tone-{'ok' if device.connected else 'error'}"
            ).mark("device").tooltip(f"{device.name} {word}: {device.detail or word}")
        if status.rejected:
            ui.button(f"{status.rejected} refused", on_click=lambda: _rejected_dialog(view)).props(
                "color=red-9 unelevated"
            ).classes("big-button").mark("rejected")
        if abs(status.clock_offset_seconds) > 120:
            ui.label(f"Clock off by {status.clock_offset_seconds:+.0f} s").classes(
                "chip tone-warning"
            )


def _main(view: StationView, screen: Screen, qc: Callable[[], None]) -> None:
    ui.label(screen.message).classes(f"banner tone-{screen.tone} w-full").mark("banner")
    if view.qc and view.qc.inspection and screen.card is not None:
        qc()  # the job being inspected: its measurements instead of the card
    elif screen.card is not None:
        _job_card(view, screen)
    if screen.carriers and screen.operator is not None:
        shipment_panel(view, screen)  # the job in hand leaves the lab by SHIP
    _actions(view, screen)


def _job_card(view: StationView, screen: Screen) -> None:
    assert screen.card is not None and screen.state is not None
    card, labels = screen.card.card, view.labels()
    names = view.stage_names()
    with ui.row().classes("w-full gap-3 no-wrap items-stretch").mark("job-card"):
        with ui.column().classes("panel gap-1").style("flex: 3"):
            with ui.row().classes("items-center gap-4"):
                job_heading(card)
            stage = screen.state.stage
            where = view.stage(stage) if stage else "no stage"
            ui.label(
                f"Store {card.store_code} · {where} · {screen.state.status.value.replace('_', ' ')}"
            ).classes("text-xl")
            with ui.row().classes("items-center gap-3"):
                _promised(card)
                _changed(card, labels, ("promised_at", "priority"))
            with ui.row().classes("items-center gap-3"):
                _prescription(card, labels)
                _changed(card, labels, RX_VALUES)
            with ui.row().classes("items-center gap-3"):
                ui.label(f"Lens {lens_text(card, labels)}").mark("lens")
                _changed(card, labels, LENS_VALUES)
            with ui.row().classes("items-center gap-3 no-wrap"):
                ui.label(f"Frame {_frame_text(card, labels)}").mark("frame")
                _changed(card, labels, FRAME_VALUES)
                if card.trace is not None:
                    ui.html(svg(card.trace, 200, stroke="#e2e8f0"), sanitize=False).props(
                        "data-part=trace"
                    ).mark("trace")
            if card.special_instructions:
                with ui.row().classes("items-center gap-3"):
                    ui.label(card.special_instructions).classes("special")
                    _changed(card, labels, ("special_instructions",))
        with ui.column().classes("panel gap-1").style("flex: 2"):
            ui.label("Route").classes("label")
            ui.label(" → ".join(names[code] for code in names)).classes("text-base")
            ui.label("History").classes("label mt-2")
            for entry in screen.card.timeline[-8:]:
                ui.label(
                    f"{entry.at.astimezone():%a %H:%M} {entry.stage.name} "
                    f"{ACTION_WORDS[entry.action]} {entry.operator_initials or ''} "
                    f"{entry.reason_code or ''}"
                ).classes("text-base")
            for event in screen.local_events:
                state = "queued" if event.state == "queued" else event.state
                ui.label(
                    f"{event.created_at.astimezone():%a %H:%M} here "
                    f"{ACTION_WORDS[event.action]} ({state})"
                ).classes("text-base pending")


def _promised(card: JobCard) -> None:
    left = card.promised_at - datetime.now(UTC)
    hours = left.total_seconds() / 3600
    promised = f"Promised {card.promised_at.astimezone():%a %d %b %H:%M}"
    if hours < 0:
        ui.label(f"{promised} · OVERDUE {-hours:.0f} h").classes("text-xl overdue")
    else:
        ui.label(f"{promised} · {hours:.0f} h left").classes("text-xl")


def _changed(card: JobCard, labels: StationLabels, values: tuple[str, ...]) -> None:
    """'R CYL changed Tue 14:32' beside a block whose values an accepted change request
    changed: the operator checks them against the lenses and the ticket, which may be older."""
    changes = [c for c in card.accepted_changes if c.field.split(".")[0] in values]
    if changes:
        names = ", ".join(dict.fromkeys(_value_name(c.field, labels) for c in changes))
        when = max(c.changed_at for c in changes).astimezone()
        chip = ui.label(f"{names} changed {when:%a %H:%M}").classes("chip tone-warning")
        chip.props("data-part=changed").mark("changed")


def _value_name(path: str, labels: StationLabels) -> str:
    """'right.cyl' → 'R CYL', 'frame.a_mm' → 'A', 'lens_material' → 'Lens material'."""
    head, _, name = path.partition(".")
    if head in ("right", "left"):
        return f"{head[0].upper()} {human(labels.measurements, name)}"
    if head == "frame":
        return human(labels.frame, name)
    return human({}, "frame_shape" if head == "trace" else head)


def _frame_text(card: JobCard, labels: StationLabels) -> str:
    """The frame type by its name, then each measurement or detail after its label."""
    parts = []
    for key, value in card.frame.items():
        if value is None or value == "":
            continue
        if key == "type":
            parts.append(human(labels.frame_types, str(value)))
        else:
            shown = f"{value:g}" if isinstance(value, float | int) else str(value)
            parts.append(f"{human(labels.frame, key)} {shown}")
    return " · ".join(parts) or "—"


def _prescription(card: JobCard, labels: StationLabels) -> None:
    """The ordered Rx, right eye above left, as every lab and lensmeter shows it."""
    columns = ("sph", "cyl", "axis", "add", "prism", "mono_pd", "fitting_height")
    eyes = sorted(card.prescription, key=lambda eye: EYES.index(eye.eye))
    rows = "".join(
        f"<tr><th>{eye.eye}</th>"
        + "".join(f"<td>{_rx_value(column, getattr(eye, column))}</td>" for column in columns)
        + "</tr>"
        for eye in eyes
    )
    head = "".join(f"<th>{escape(human(labels.measurements, c))}</th>" for c in columns)
    ui.html(f"<table class='rx'><tr><th></th>{head}</tr>{rows}</table>", sanitize=False).mark("rx")


def _rx_value(column: str, value: float | int | str | None) -> str:
    """Powers signed to the quarter dioptre's two decimals (no cylinder: DS, a sphere, as the
    ticket prints it); PD, height, prism as measured."""
    if value is None:
        return "—"
    if column == "cyl" and value == 0:
        return "DS"
    if column in POWERS:
        return f"{value:+.2f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _actions(view: StationView, screen: Screen) -> None:
    with ui.row().classes("actions w-full gap-3"):
        if screen.card is not None and screen.operator is not None:
            if screen.verdict == Verdict.needs_override and screen.tone != "ok":
                ui.button("Override…", on_click=lambda: _override_dialog(view)).props(
                    "color=amber-9 unelevated"
                ).classes("big-button").mark("override")
            if screen.verdict == Verdict.on_hold:
                ui.button("Release", on_click=lambda: view.record(Action.release)).props(
                    "color=green-9 unelevated"
                ).classes("big-button").mark("release")
            else:
                ui.button("Hold…", on_click=lambda: _reason_dialog(view, "hold")).props(
                    "color=orange-9 unelevated"
                ).classes("big-button").mark("hold")
            ui.button("Breakage…", on_click=lambda: _reason_dialog(view, "breakage")).props(
                "color=red-9 unelevated"
            ).classes("big-button").mark("breakage")
            ui.button("Note…", on_click=lambda: _note_dialog(view)).props(
                "color=blue-grey-7 unelevated"
            ).classes("big-button").mark("note")
            ui.button("Reprint ticket", on_click=lambda: _reprint(view)).props(
                "color=indigo-8 unelevated icon=print"
            ).classes("big-button").mark("reprint")
        ui.space()
        if screen.operator is not None:
            ui.button("Sign out", on_click=lambda: view.sign_out()).props(
                "color=grey-8 unelevated"
            ).classes("big-button").mark("sign-out")


async def _reprint(view: StationView) -> None:
    """Prints the shown job's ticket again; saved instead, the browser gets the file."""
    view.touch()
    try:
        done = await view.reprint_ticket()
    except ReprintFailed as error:
        ui.notify(str(error), type="warning", position="bottom", timeout=10_000, classes="text-xl")
        return
    ui.notify(done.message, type="positive", position="bottom", classes="text-xl")
    if done.saved is not None:
        ui.download.content(done.saved.read_bytes(), done.saved.name, "application/pdf")


def _reason_dialog(view: StationView, kind: str) -> None:
    view.touch()
    reasons = view.reasons(kind)
    stage_names = view.stage_names()
    with ui.dialog() as dialog, ui.card().classes("min-w-[640px] gap-2"):
        ui.label("Hold reason" if kind == "hold" else "Breakage reason").classes("text-2xl")
        detail = _breakage_detail() if kind == "breakage" else lambda: None
        for reason in reasons:
            ui.button(
                _reason_text(reason, stage_names),
                on_click=lambda reason=reason: _choose(dialog, view, reason, detail()),
            ).props("unelevated align=left no-caps").classes("big-button w-full").mark(
                f"reason-{reason.code}"
            )
        ui.button("Cancel", on_click=dialog.close).props("flat").classes("big-button")
    dialog.open()


def _reason_text(reason: Reason, stage_names: dict[str, str]) -> str:
    text = f"{reason.code} — {reason.description}"
    if reason.kind == "breakage":
        text += f" (back to {return_text(reason, stage_names)})"
    return text


def _breakage_detail() -> Callable[[], BreakageDetail]:
    """What broke: a lens (which eyes) or the frame, and any replacement blanks taken."""
    with ui.row().classes("w-full items-center gap-3"):
        part = (
            ui.toggle({"lens": "Lens", "frame": "Frame"}, value="lens")
            .props("size=lg unelevated toggle-color=red-9")
            .mark("breakage-part")
        )
        eyes = (
            ui.toggle({"R": "R", "L": "L", "RL": "Both"}, value="RL")
            .props("size=lg unelevated toggle-color=red-9")
            .bind_visibility_from(part, "value", value="lens")
            .mark("breakage-eyes")
        )
        blanks = (
            ui.input("Replacement blanks", placeholder="ids, comma separated")
            .classes("grow text-xl")
            .mark("breakage-blanks")
        )

    def detail() -> BreakageDetail:
        return BreakageDetail(
            part=part.value,
            eyes=list(eyes.value) if part.value == "lens" else [],
            replacement_blanks=[b.strip() for b in (blanks.value or "").split(",") if b.strip()],
        )

    return detail


def _choose(
    dialog: ui.dialog, view: StationView, reason: Reason, breakage: BreakageDetail | None
) -> None:
    dialog.close()
    action = Action.hold if reason.kind == "hold" else Action.breakage
    view.record(action, reason_code=reason.code, breakage=breakage)


def _note_dialog(view: StationView) -> None:
    view.touch()
    with ui.dialog() as dialog, ui.card().classes("min-w-[640px]"):
        ui.label("Note").classes("text-2xl")
        text = (
            ui.textarea(placeholder="What should the next stage know?")
            .classes("w-full text-xl")
            .mark("note-text")
        )

        def save() -> None:
            if text.value.strip():
                dialog.close()
                view.record(Action.note, note=text.value.strip())

        with ui.row():
            ui.button("Save note", on_click=save).props("unelevated").classes("big-button").mark(
                "save-note"
            )
            ui.button("Cancel", on_click=dialog.close).props("flat").classes("big-button")
    dialog.open()


def _override_dialog(view: StationView) -> None:
    view.touch()
    with ui.dialog() as dialog, ui.card().classes("min-w-[640px] gap-2"):
        ui.label("Start here anyway? Give the reason").classes("text-2xl")
        ui.label(view.screen.message).classes("text-lg")

        def confirm(reason: str) -> None:
            if len(reason.strip()) >= 3:
                dialog.close()
            view.override(reason)

        for preset in OVERRIDE_PRESETS:
            ui.button(preset, on_click=lambda preset=preset: confirm(preset)).props(
                "unelevated no-caps align=left"
            ).classes("big-button w-full")
        other = ui.input("Other reason").classes("w-full text-xl").mark("override-reason")
        with ui.row():
            ui.button("Override", on_click=lambda: confirm(other.value or "")).props(
                "color=amber-9 unelevated"
            ).classes("big-button").mark("confirm-override")
            ui.button("Cancel", on_click=dialog.close).props("flat").classes("big-button")
    dialog.open()


def _rejected_dialog(view: StationView) -> None:
    with ui.dialog() as dialog, ui.card().classes("min-w-[700px]"):
        ui.label("Events the server refused (kept here for the supervisor)").classes("text-2xl")
        for event in view.refused():
            ui.label(
                f"{event.created_at.astimezone():%a %H:%M} {event.subject} {event.action.value}: "
                f"{event.error}"
            ).classes("text-lg")
        ui.button("Close", on_click=dialog.close).classes("big-button")
    dialog.open()
