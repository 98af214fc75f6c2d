"""The station page: one screen that confirms scans; taps only for hold, breakage, notes, overrides.

Every client shows the same station state (`StationFlow.screen`, `Uplink.status`); they
subscribe to the station's change events and redraw, so there is no polling per client.
"""

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nicegui import events, ui

from drivers.camera import VirtualCamera
from station.flow import Screen, Verdict
from station.qc_ui import qc_panel, return_text
from station.uplink import UplinkStatus
from station.wire import Action, BreakageDetail, JobCard, Reason

if TYPE_CHECKING:
    from station.app import StationApp

STATIC = Path(__file__).parent / "static"
SCRIPT = (STATIC / "station.js").read_text()
STYLE = (STATIC / "station.css").read_text()
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


def build_page(station: "StationApp") -> None:
    ui.add_head_html(f"<style>{STYLE}</style><script>{SCRIPT}</script>")
    ui.page_title(f"{station.settings.name} · LensTrack")
    ui.query(".nicegui-content").classes("p-3 gap-3")
    ui.element("div").props('id="scan-flash"').classes("scan-flash")
    if wedge := station.settings.wedge:
        # In the page itself, not run once the socket is up: a scan in the first moments
        # after a (re)load would otherwise lose its first keys.
        ui.add_body_html(
            f"<script>lenstrack.installWedge({wedge.max_key_gap_ms}, {wedge.min_length})</script>"
        )

    async def on_scan(event: events.GenericEventArguments) -> None:
        await station.flow.scan(str(event.args))

    ui.on("station_scan", on_scan)

    @ui.refreshable
    def status_bar() -> None:
        _status_bar(station, station.uplink.status)

    @ui.refreshable
    def qc() -> None:
        qc_panel(station)

    @ui.refreshable
    def main() -> None:
        _main(station, station.flow.screen, qc)

    def on_screen(screen: Screen) -> None:
        status_bar.refresh()  # it shows who is signed in
        main.refresh()
        ui.run_javascript(f"lenstrack.feedback('{screen.tone}')")

    status_bar()
    main()
    station.screen_changed.subscribe(on_screen)
    station.status_changed.subscribe(status_bar.refresh)
    station.device_changed.subscribe(status_bar.refresh)
    station.qc_changed.subscribe(qc.refresh)
    if station.cameras:
        ui.query("body").classes("has-camera")  # the action buttons keep clear of the panel
        _camera_panel(station)


def _camera_panel(station: "StationApp") -> None:
    """The latest camera frame with the codes boxed, pushed from the camera's preview event
    (already throttled to `preview_interval` there), so no client runs a timer."""
    with ui.card().classes("camera-panel gap-1 p-2").mark("camera-panel"):
        image = ui.interactive_image().classes("w-full").mark("camera-preview")

        def show(jpeg: bytes) -> None:
            image.set_source("data:image/jpeg;base64," + base64.b64encode(jpeg).decode())

        station.preview_changed.subscribe(show)
        for camera in station.cameras:
            if isinstance(camera, VirtualCamera):
                _ticket_input(camera)


def _ticket_input(camera: VirtualCamera) -> None:
    """Demo only: put a printed ticket for any code under the virtual camera."""

    def put(_: object = None) -> None:
        if code.value.strip():
            camera.show(code.value.strip())
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


def _status_bar(station: "StationApp", status: UplinkStatus) -> None:
    operator = station.flow.screen.operator
    with ui.row().classes("w-full items-center gap-3 no-wrap"):
        ui.label(station.settings.name).classes("text-2xl font-bold")
        ui.label(station.stage_name).classes("text-xl text-grey-5")
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
        if fault := station.flow.screen.storage_fault:
            ui.label("Cannot save scans").classes("chip tone-error").mark("storage").tooltip(fault)
        for device in station.device_status.values():
            word = "connected" if device.connected else "lost"
            ui.label(f"{device.name} {word}").classes(
                f"chip tone-{'ok' if device.connected else 'error'}"
            ).mark("device").tooltip(device.detail or word)
        if status.rejected:
            ui.button(
                f"{status.rejected} refused", on_click=lambda: _rejected_dialog(station)
            ).props("color=red-9 unelevated").classes("big-button").mark("rejected")
        if abs(status.clock_offset_seconds) > 120:
            ui.label(f"Clock off by {status.clock_offset_seconds:+.0f} s").classes(
                "chip tone-warning"
            )


def _main(station: "StationApp", screen: Screen, qc: Callable[[], None]) -> None:
    ui.label(screen.message).classes(f"banner tone-{screen.tone} w-full").mark("banner")
    if station.qc and station.qc.inspection and screen.card is not None:
        qc()  # the job being inspected: its measurements instead of the card
    elif screen.card is not None:
        _job_card(station, screen)
    _actions(station, screen)


def _job_card(station: "StationApp", screen: Screen) -> None:
    assert screen.card is not None and screen.state is not None
    card = screen.card.card
    names = {stage.code: stage.name for stage in card.route_stages}
    with ui.row().classes("w-full gap-3 no-wrap items-stretch").mark("job-card"):
        with ui.column().classes("panel gap-1").style("flex: 3"):
            with ui.row().classes("items-center gap-4"):
                ui.label(card.job_number).classes("jobno").mark("job-number")
                if card.tray_number:
                    ui.label(f"Tray {card.tray_number}").classes("text-2xl")
                if card.priority == "rush":
                    ui.label("RUSH").classes("rush text-2xl")
            where = names.get(screen.state.stage or "", "no stage")
            ui.label(
                f"Store {card.store_code} · {where} · {screen.state.status.value.replace('_', ' ')}"
            ).classes("text-xl")
            _promised(card)
            _prescription(card)
            treatments = ", ".join(card.treatments) or "no treatments"
            ui.label(
                f"Lens {card.lens_design} {card.lens_material} {card.lens_index:g}"
                f"{' surfaced' if card.surfaced else ' stock'} · {treatments}"
            )
            frame = ", ".join(f"{key} {value}" for key, value in card.frame.items() if value)
            ui.label(f"Frame {frame or '—'}")
            if card.special_instructions:
                ui.label(card.special_instructions).classes("special")
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


def _prescription(card: JobCard) -> None:
    columns = ("sph", "cyl", "axis", "add", "prism", "mono_pd", "fitting_height")
    headers = ("SPH", "CYL", "AX", "ADD", "PRISM", "PD", "HT")
    rows = "".join(
        f"<tr><th>{eye.eye}</th>"
        + "".join(f"<td>{_rx_value(getattr(eye, column))}</td>" for column in columns)
        + "</tr>"
        for eye in card.prescription
    )
    head = "".join(f"<th>{header}</th>" for header in headers)
    ui.html(f"<table class='rx'><tr><th></th>{head}</tr>{rows}</table>", sanitize=False)


def _rx_value(value: float | int | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:+.2f}"
    return str(value)


def _actions(station: "StationApp", screen: Screen) -> None:
    flow = station.flow
    with ui.row().classes("actions w-full gap-3"):
        if screen.card is not None and screen.operator is not None:
            if screen.verdict == Verdict.needs_override and screen.tone != "ok":
                ui.button("Override…", on_click=lambda: _override_dialog(station)).props(
                    "color=amber-9 unelevated"
                ).classes("big-button").mark("override")
            if screen.verdict == Verdict.on_hold:
                ui.button("Release", on_click=lambda: flow.record(Action.release)).props(
                    "color=green-9 unelevated"
                ).classes("big-button").mark("release")
            else:
                ui.button("Hold…", on_click=lambda: _reason_dialog(station, "hold")).props(
                    "color=orange-9 unelevated"
                ).classes("big-button").mark("hold")
            ui.button("Breakage…", on_click=lambda: _reason_dialog(station, "breakage")).props(
                "color=red-9 unelevated"
            ).classes("big-button").mark("breakage")
            ui.button("Note…", on_click=lambda: _note_dialog(station)).props(
                "color=blue-grey-7 unelevated"
            ).classes("big-button").mark("note")
        ui.space()
        if screen.operator is not None:
            ui.button("Sign out", on_click=lambda: flow.sign_out()).props(
                "color=grey-8 unelevated"
            ).classes("big-button").mark("sign-out")


def _reason_dialog(station: "StationApp", kind: str) -> None:
    station.flow.touch()
    reasons = [reason for reason in station.uplink.reasons() if reason.kind == kind]
    stage_names = station.stage_names()
    with ui.dialog() as dialog, ui.card().classes("min-w-[640px] gap-2"):
        ui.label("Hold reason" if kind == "hold" else "Breakage reason").classes("text-2xl")
        detail = _breakage_detail() if kind == "breakage" else lambda: None
        for reason in reasons:
            ui.button(
                _reason_text(reason, stage_names),
                on_click=lambda reason=reason: _choose(dialog, station, reason, detail()),
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
    dialog: ui.dialog, station: "StationApp", reason: Reason, breakage: BreakageDetail | None
) -> None:
    dialog.close()
    action = Action.hold if reason.kind == "hold" else Action.breakage
    station.flow.record(action, reason_code=reason.code, breakage=breakage)


def _note_dialog(station: "StationApp") -> None:
    station.flow.touch()
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
                station.flow.record(Action.note, note=text.value.strip())

        with ui.row():
            ui.button("Save note", on_click=save).props("unelevated").classes("big-button").mark(
                "save-note"
            )
            ui.button("Cancel", on_click=dialog.close).props("flat").classes("big-button")
    dialog.open()


def _override_dialog(station: "StationApp") -> None:
    station.flow.touch()
    with ui.dialog() as dialog, ui.card().classes("min-w-[640px] gap-2"):
        ui.label("Start here anyway? Give the reason").classes("text-2xl")
        ui.label(station.flow.screen.message).classes("text-lg")

        def confirm(reason: str) -> None:
            if len(reason.strip()) >= 3:
                dialog.close()
            station.flow.override(reason)

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


def _rejected_dialog(station: "StationApp") -> None:
    with ui.dialog() as dialog, ui.card().classes("min-w-[700px]"):
        ui.label("Events the server refused (kept here for the supervisor)").classes("text-2xl")
        for event in station.outbox.rejected():
            ui.label(
                f"{event.created_at.astimezone():%a %H:%M} {event.job} {event.action.value}: "
                f"{event.error}"
            ).classes("text-lg")
        ui.button("Close", on_click=dialog.close).classes("big-button")
    dialog.open()
