"""Final QC without a screen: the job's ordered lenses, what was measured, the verdict.

The station judges with the same engine (`core.optics`) as the server, offline too, and
with the store's profile where the job card names one; the server judges again on receipt
with the store's profile and refuses a pass that fails there, which the flow then shows as a
refused event.
"""

import logging
from typing import Literal, cast, get_args

from core.optics import (
    CheckResult,
    Design,
    Eye,
    PairRx,
    ToleranceFile,
    check_pair,
    load_profiles,
    ordered_pair,
)
from drivers.events import Event
from drivers.lensmeter import LensmeterReading
from station.flow import Screen, StationFlow
from station.settings import QcSettings
from station.wire import Action, DefectIn, InspectionIn, JobCard, JobStatus, Reason

log = logging.getLogger(__name__)

Field = Literal["sph", "cyl", "axis", "add", "prism_h", "prism_v"]
FIELDS: tuple[Field, ...] = get_args(Field)
EYES: tuple[Eye, Eye] = ("R", "L")


class Inspection:
    """One job's inspection: ordered lenses, measured values per eye, cosmetic checklist."""

    def __init__(self, card: JobCard, settings: QcSettings, tolerances: ToleranceFile) -> None:
        self.job_number = card.job_number
        self.design = cast(Design, card.lens_design)
        self.ordered = ordered_pair(card.prescription)
        self.eyes = [eye for eye in EYES if self.ordered.lens(eye) is not None]
        self.route = [stage.code for stage in card.route_stages]
        self.profile_name = _profile_name(card, settings, tolerances)
        self.profile = tolerances.profile(self.profile_name)
        self.measured: dict[Eye, dict[Field, float | int]] = {eye: {} for eye in self.eyes}
        self.pd: float | None = None  # binocular, when the lensmeter measured it
        self.cosmetic = dict.fromkeys(settings.cosmetic, True)
        self.source = ""  # "lensmeter" or "manual": where the last values came from

    def apply_reading(self, reading: LensmeterReading) -> None:
        """A lensmeter reading replaces what was measured for every eye it carries."""
        for eye in self.eyes:
            lens = getattr(reading, eye)
            if lens is None:
                continue
            values = lens.model_dump(exclude_none=True)
            if not lens.cyl:
                values.pop("axis", None)  # without a cylinder the axis means nothing
            self.measured[eye] = {key: values[key] for key in FIELDS if key in values}
        self.pd = reading.pd or self.pd
        self.source = "lensmeter"

    def set_value(self, eye: Eye, field: Field, value: float | None) -> None:
        """Manual entry of one value; None clears it."""
        if value is None:
            self.measured[eye].pop(field, None)
        else:
            self.measured[eye][field] = round(value) if field == "axis" else float(value)
        self.source = "manual"

    def missing(self) -> list[tuple[Eye, Field]]:
        """What must still be measured before the lenses can be judged, e.g. ("R", "axis")."""
        needed: list[tuple[Eye, Field]] = []
        for eye in self.eyes:
            ordered, measured = self.ordered.lens(eye), self.measured[eye]
            assert ordered is not None
            fields: list[Field] = ["sph", "cyl"]
            if measured.get("cyl"):
                fields.append("axis")
            if ordered.add is not None:
                fields.append("add")
            needed += [(eye, field) for field in fields if field not in measured]
        return needed

    def measured_pair(self) -> PairRx | None:
        if self.missing():
            return None
        values: dict[str, object] = {eye: dict(self.measured[eye]) for eye in self.eyes}
        if self.pd is not None:
            values["pd"] = self.pd
        return PairRx.model_validate(values)

    def result(self) -> CheckResult | None:
        measured = self.measured_pair()
        if measured is None:
            return None
        return check_pair(self.ordered, measured, self.design, self.profile)

    def passes(self) -> bool:
        result = self.result()
        return result is not None and result.passed and all(self.cosmetic.values())

    def failed_eyes(self) -> list[Eye]:
        """Eyes with a measurement out of tolerance."""
        result = self.result()
        failed = {check.eye for check in result.checks if not check.passed} if result else set()
        return [eye for eye in self.eyes if eye in failed]

    def uncovered_eyes(self, defects: list[DefectIn]) -> list[Eye]:
        """Failed eyes that no chosen defect names (a defect for the pair covers both)."""
        named = {defect.eye for defect in defects}
        return [] if None in named else [eye for eye in self.failed_eyes() if eye not in named]

    def deciding_defect(self, defects: list[DefectIn], reasons: list[Reason]) -> DefectIn:
        """The defect that sends the job furthest back along its route decides where it goes
        (redoing that stage redoes the later ones); the server applies the same rule. A return
        stage off the route is the route's first stage.
        """
        back_to = {reason.code: reason.return_stage for reason in reasons}

        def position(defect: DefectIn) -> int:
            stage = back_to.get(defect.code)
            return self.route.index(stage) if stage in self.route else 0

        return min(defects, key=position)

    def payload(self, defects: list[DefectIn]) -> InspectionIn:
        measured = self.measured_pair()
        return InspectionIn(
            measured=measured.model_dump(exclude_none=True) if measured else {},
            profile=self.profile_name,
            cosmetic=dict(self.cosmetic),
            defects=defects,
        )


def _profile_name(card: JobCard, settings: QcSettings, tolerances: ToleranceFile) -> str | None:
    """The store's profile when this station's tolerance file has it, else the station's."""
    if card.tolerance_profile in tolerances.profiles:
        return card.tolerance_profile
    if card.tolerance_profile is not None:
        log.warning(
            "%s: the store's profile %r is not in this station's tolerance file; judging with"
            " %r here, the server judges with the store's",
            card.job_number,
            card.tolerance_profile,
            settings.profile or tolerances.default,
        )
    return settings.profile


class QcDesk:
    """The QC side of a station: an inspection for the job in progress here, filled by the
    lensmeter or by hand, then passed (complete) or failed (rework) through the flow.

    `changed()` fires whenever what the QC panel shows changes; `started(inspection)` when a
    new job is being inspected (the simulated lensmeter measures then)."""

    def __init__(self, settings: QcSettings, flow: StationFlow) -> None:
        self.settings = settings
        self.tolerances = load_profiles(settings.tolerances_file)
        self.tolerances.profile(settings.profile)  # an unknown profile fails at start-up
        self.flow = flow
        self.inspection: Inspection | None = None
        self.changed = Event[[]]()
        self.started = Event[[Inspection]]()
        flow.changed.register(self._screen)

    def _screen(self, screen: Screen) -> None:
        card = screen.card.card if screen.card else None
        state = screen.state
        inspecting = (
            card is not None
            and screen.operator is not None
            and state is not None
            and (state.stage, state.status) == (self.flow.stage, JobStatus.in_progress)
        )
        if not inspecting:
            if self.inspection is not None:
                self.inspection = None
                self.changed.emit()
            return
        assert card is not None
        if self.inspection is None or self.inspection.job_number != card.job_number:
            self.inspection = Inspection(card, self.settings, self.tolerances)
            self.started.emit(self.inspection)
            self.changed.emit()

    def reading(self, reading: LensmeterReading) -> None:
        if self.inspection is None:
            log.info("lensmeter reading with no job being inspected: ignored")
            return
        if reading.job and reading.job != self.inspection.job_number:
            log.warning(
                "reading for job %s while %s is inspected: ignored",
                reading.job,
                self.inspection.job_number,
            )
            return
        self.inspection.apply_reading(reading)
        self.changed.emit()

    def set_value(self, eye: Eye, field: Field, value: float | None) -> None:
        if self.inspection is not None:
            self.flow.touch()
            self.inspection.set_value(eye, field, value)
            self.changed.emit()

    def set_cosmetic(self, item: str, ok: bool) -> None:
        if self.inspection is not None:
            self.flow.touch()
            self.inspection.cosmetic[item] = ok
            self.changed.emit()

    def pass_job(self) -> Screen:
        """Releases the job to the next stage (shipping) with the inspection."""
        if self.inspection is None or not self.inspection.passes():
            return self.flow.screen  # the PASS button is disabled then
        return self.flow.record(Action.complete, inspection=self.inspection.payload([]))

    def fail_job(self, defects: list[DefectIn], reasons: list[Reason]) -> Screen:
        """Sends the job back as rework to the return stage of the defect that sends it
        furthest back; every failed eye needs a defect (the dialog only offers that)."""
        if self.inspection is None or not defects or self.inspection.uncovered_eyes(defects):
            return self.flow.screen
        deciding = self.inspection.deciding_defect(defects, reasons)
        inspection = self.inspection.payload(defects)
        return self.flow.record(Action.rework, reason_code=deciding.code, inspection=inspection)
