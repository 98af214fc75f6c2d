"""What the station page shows and what it may do: a view of the station core.

The page gets this view, never the core, so it cannot reach the uplink or the outbox. The
core's change events are bridged into NiceGUI's, which redraw each open client in its own
context and forget clients that went away.
"""

from nicegui import Event as UiEvent

from core.labels import StationLabels, human
from drivers.camera import VirtualCamera
from station.core import DeviceStatus, StationCore
from station.flow import Screen
from station.outbox import OutboxEvent
from station.reprint import Reprinted, ReprintFailed, TicketPrinter
from station.uplink import UplinkStatus
from station.wire import Reason


class StationView:
    def __init__(self, core: StationCore) -> None:
        self._core = core
        self.name = core.settings.name
        self.wedge = core.settings.wedge
        self.qc = core.qc  # None unless this is a QC station
        self.has_camera = bool(core.cameras)
        self._virtual_cameras = [c for c in core.cameras if isinstance(c, VirtualCamera)]
        # What the page calls: scans, events for the shown job, sign-out, activity.
        self.scan = core.flow.scan
        self.record = core.flow.record
        self.override = core.flow.override
        self.ship = core.flow.ship
        self.sign_out = core.flow.sign_out
        self.touch = core.flow.touch
        self._printer = TicketPrinter(
            core.uplink, core.settings.printer, core.settings.data_dir / "tickets"
        )
        # What the page redraws on.
        self.screen_changed = UiEvent[Screen]()
        self.status_changed = UiEvent[UplinkStatus]()
        self.device_changed = UiEvent[DeviceStatus]()
        self.preview_changed = UiEvent[bytes]()
        self.qc_changed = UiEvent[[]]()
        core.flow.changed.register(self.screen_changed.emit)
        core.uplink.changed.register(self.status_changed.emit)
        core.devices_changed.register(self.device_changed.emit)
        for camera in core.cameras:
            camera.preview.register(self.preview_changed.emit)
        if core.qc is not None:
            core.qc.changed.register(self.qc_changed.emit)

    @property
    def screen(self) -> Screen:
        return self._core.flow.screen

    @property
    def connection(self) -> UplinkStatus:
        return self._core.uplink.status

    @property
    def devices(self) -> list[DeviceStatus]:
        return list(self._core.device_status.values())

    @property
    def stage_name(self) -> str:
        """This station's stage, as the server names it."""
        me = self._core.uplink.me()
        return me.stage.name if me else self.stage(self._core.settings.stage)

    def labels(self) -> StationLabels:
        return self._core.uplink.labels()

    def stage(self, code: str) -> str:
        """A stage's name: as the shown card's route names it, else as the lab does."""
        return self.stage_names().get(code) or human(self.labels().stages, code)

    def stage_names(self) -> dict[str, str]:
        """The shown card's route, by code (a return stage off it means its first stage)."""
        card = self.screen.card
        return {stage.code: stage.name for stage in card.card.route_stages} if card else {}

    async def reprint_ticket(self) -> Reprinted:
        """The shown job's ticket, printed (or saved); ReprintFailed says why not."""
        card = self.screen.card
        if card is None:
            raise ReprintFailed("Scan a job first")
        return await self._printer.reprint(card.card.id, card.card.job_number)

    def reasons(self, kind: str) -> list[Reason]:
        return [reason for reason in self._core.uplink.reasons() if reason.kind == kind]

    def refused(self) -> list[OutboxEvent]:
        """Events the server refused, kept on this PC for the supervisor."""
        return self._core.outbox.rejected()

    @property
    def shows_tickets(self) -> bool:
        """A virtual camera (demos) takes tickets typed on the page."""
        return bool(self._virtual_cameras)

    def show_ticket(self, code: str) -> None:
        for camera in self._virtual_cameras:
            camera.show(code)
