"""The job contract between stations and the server, written once.

What a station sends (`EventIn` with its breakage and inspection details) is validated here
by the server's own rules: unknown fields are refused and sizes bounded, so an event the
station builds is one the server accepts. What a station reads (the job card, lists,
timeline, event results, its own identity, operators and reasons) is declared with the fields
the station uses; `server.schemas` extends these for its responses, and since replies ignore
fields they do not declare, the server may add fields without breaking older stations.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.lifecycle import Action, JobStatus
from core.trace import Trace


class Eye(StrEnum):
    R = "R"
    L = "L"


class JobType(StrEnum):
    new = "new"
    redo = "redo"
    warranty = "warranty"
    third_party = "third_party"


class RemakeClass(StrEnum):
    """Why a job is made again (the remake's class, as labs report them)."""

    doctor_redo = "doctor_redo"
    lab_redo = "lab_redo"
    warranty = "warranty"
    non_adapt = "non_adapt"
    other = "other"


class Priority(StrEnum):
    regular = "regular"
    rush = "rush"


class LensDesign(StrEnum):
    SV = "SV"
    MF = "MF"
    PAL = "PAL"


class BreakagePart(StrEnum):
    lens = "lens"
    frame = "frame"


class ReasonKind(StrEnum):
    hold = "hold"
    breakage = "breakage"
    defect = "defect"


class SignAction(StrEnum):
    """An operator's badge scanned at a station: sent like a job event, naming no job, so the
    server knows who was signed in where and when."""

    sign_in = "sign_in"
    sign_out = "sign_out"


class Role(StrEnum):
    technician = "technician"
    qc_inspector = "qc_inspector"
    lab_manager = "lab_manager"
    store_staff = "store_staff"
    admin = "admin"


# The check looks this deep and no further, so no input drives it to Python's recursion
# limit. Nothing deeper is missed: each nested model checks its own fields again, and
# free-form JSON fields are refused beyond a few levels (`bounded_json`).
MAX_NESTING = 16


def _reject_nul(value: object, depth: int = 0) -> None:
    if depth > MAX_NESTING:
        return
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, list):
        for item in value:
            _reject_nul(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key, depth + 1)
            _reject_nul(item, depth + 1)


class Inbound(BaseModel):
    """What the server accepts: unknown fields refused, surrounding whitespace stripped, no
    NaN or Infinity. Numbers and booleans are declared strict field by field (`true` is not
    the number 1, nor "1.5" a number); enums, UUIDs and times stay parsed from their JSON
    strings."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    # PostgreSQL text cannot hold NUL (a 500 from the driver); no real input contains one.
    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        _reject_nul(value)
        return value


class Reply(BaseModel):
    """What the server answers. Fields a model does not declare are ignored, so a station
    reads the replies of a newer server; the server builds them from its ORM rows and sends
    every field (a default only lets a station read an older server's reply)."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        from_attributes=True,
        json_schema_serialization_defaults_required=True,
    )


ScanCode = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9-]+$")
]
ReasonCodeText = Annotated[str, StringConstraints(min_length=1, max_length=32)]
StageCode = Annotated[str, StringConstraints(min_length=1, max_length=32)]
MAX_BATCH_EVENTS = 1000  # a server may take fewer per batch (its max_batch_size), never more
# A JSON number for a float field: an integer is a number too, a string or a boolean is not.
StrictNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]

# Times a lab's records can carry; outside them a date is a typo (year 1) or an attack (year
# 1 at +14:00 is not a time in UTC at all: converting it overflows). From 1970: a station
# whose clock was never set reads 1970, and the server corrects its times by the offset.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)


def _in_service_years(value: datetime) -> datetime:
    try:
        in_range = EARLIEST_TIME <= value.astimezone(UTC) < LATEST_TIME
    except OverflowError:
        in_range = False
    if not in_range:
        raise PydanticCustomError("datetime_range", "must be between 1970 and 2099 (UTC)")
    return value


WireTime = Annotated[AwareDatetime, AfterValidator(_in_service_years)]

# Free-form JSON a station or an order may carry (measured values, frame details): bounded in
# depth, size, text and magnitude, so no input recurses, bloats or stores NaN or Infinity.
MAX_JSON_DEPTH = 4
MAX_JSON_ITEMS = 40
MAX_JSON_TEXT = 200
MAX_JSON_NUMBER = 1e6


def _json_problem(value: object, depth: int = 0) -> tuple[list[str], str] | None:
    """Where in `value` (keys from its top) and what makes it unfit as bounded JSON, or None."""
    if depth > MAX_JSON_DEPTH:
        return [], f"nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, str):
        return ([], f"text longer than {MAX_JSON_TEXT}") if len(value) > MAX_JSON_TEXT else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        # `not <=` also refuses NaN, which compares false to everything.
        finite = abs(value) <= MAX_JSON_NUMBER
        return None if finite else ([], f"not a finite number within ±{MAX_JSON_NUMBER:g}")
    if isinstance(value, dict | list):
        if len(value) > MAX_JSON_ITEMS:
            return [], f"more than {MAX_JSON_ITEMS} items"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if found := _json_problem(key, depth + 1) or _json_problem(item, depth + 1):
                return [str(key), *found[0]], found[1]
        return None
    return None if value is None or isinstance(value, bool) else ([], "not a JSON value")


def bounded_json(value: object) -> object:
    """An AfterValidator: the value as it is, if it is bounded JSON (see above)."""
    if found := _json_problem(value):
        path, problem = found
        message = f"{'.'.join(path)}: {problem}" if path else problem
        raise PydanticCustomError("bounded_json", message)
    return value


def _field_error(field: str, message: str) -> ValidationError:
    """A model validator's error that names its field, not the whole model."""
    error = PydanticCustomError("value_error", message)
    return ValidationError.from_exception_data(
        "EventIn", [InitErrorDetails(type=error, loc=(field,), input=None)]
    )


def not_before(earlier: str) -> Callable[[type, datetime, ValidationInfo], datetime]:
    """A field validator (wrap it in `field_validator`): the time may not be before the field
    `earlier`, which is declared above it and so validated first."""

    def check(cls: type, value: datetime, info: ValidationInfo) -> datetime:
        first = info.data.get(earlier)
        if first is not None and value < first:
            raise ValueError(f"is before {earlier}")
        return value

    return check


# -- what a station sends --


class BreakageDetail(Inbound):
    """What broke, for a breakage event; without it a breakage counts both lenses."""

    part: BreakagePart = BreakagePart.lens
    eyes: list[Eye] = Field(default=[Eye.R, Eye.L], max_length=2)
    replacement_blanks: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = (
        Field(default=[], max_length=4)
    )

    @model_validator(mode="after")
    def _eyes_for_lenses(self) -> Self:
        if self.part == BreakagePart.lens and not self.eyes:
            raise ValueError("a lens breakage names the eye (R, L or both)")
        if len(set(self.eyes)) != len(self.eyes):
            raise ValueError("an eye is named twice")
        return self


class DefectIn(Inbound):
    eye: Eye | None = Field(default=None, description="None: the pair or the frame.")
    code: ReasonCodeText


class InspectionIn(Inbound):
    """A QC inspection, riding on the event that passes (complete) or fails (rework) the job.

    `measured` has the shape of `lenstrack check-lens` input: {"R": {sph, cyl, axis, add,
    prism_h, prism_v, pd, fitting_height, ...}, "L": {...}, "pd": ...}. The server judges it
    against the job's ordered Rx with the store's tolerance profile.
    """

    measured: Annotated[dict[str, object], AfterValidator(bounded_json)]
    profile: str | None = Field(
        default=None,
        max_length=64,
        description="What the station judged with; a store's own profile is used instead.",
    )
    cosmetic: dict[Annotated[str, StringConstraints(max_length=40)], StrictBool] = Field(
        default={}, max_length=30
    )
    defects: list[DefectIn] = Field(default=[], max_length=20)


# Where a store's messages go: one plain address (no display name, no list), as a mail
# server's envelope takes it.
EmailAddress = Annotated[
    str,
    StringConstraints(
        min_length=3,
        max_length=254,
        pattern=r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$",
    ),
]


class ShipmentIn(Inbound):
    """How a job leaves the lab, with its completion at a shipping stage: the carrier (one
    the stage lists), its tracking number as scanned or typed, and the box or batch."""

    carrier: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    tracking_number: Annotated[
        str, StringConstraints(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]*$")
    ]
    box: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None


class EventIn(Inbound):
    """One scan-time event made by a station. The station is known from its token."""

    event_uuid: uuid.UUID
    sequence: StrictInt = Field(
        ge=1, le=2**63 - 1, description="Per-station, increasing by 1 per event."
    )
    action: Action | SignAction
    job: ScanCode | None = Field(
        default=None,
        validate_default=True,
        description="Job number or tray number as scanned; none with sign_in and sign_out.",
    )
    operator_badge: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None, validate_default=True, description="Needed with sign_in and sign_out."
    )
    reason_code: ReasonCodeText | None = None
    to_stage: StageCode | None = Field(default=None, description="Rework target stage code.")
    override_reason: Annotated[str, StringConstraints(min_length=3, max_length=200)] | None = None
    note: str | None = Field(default=None, max_length=2000)
    breakage: BreakageDetail | None = Field(default=None, description="Only with breakage.")
    inspection: InspectionIn | None = Field(
        default=None, description="QC result: with complete (pass) or rework (fail)."
    )
    shipment: ShipmentIn | None = Field(
        default=None, description="Carrier and tracking: with complete at a shipping stage."
    )
    created_at: WireTime = Field(description="Device clock at scan time.")
    sent_at: WireTime = Field(description="Device clock when this send began.")

    _sent_after_created = field_validator("sent_at")(not_before("created_at"))

    @field_validator("job")
    @classmethod
    def _job_with_job_actions(cls, job: str | None, info: ValidationInfo) -> str | None:
        signing = isinstance(info.data.get("action"), SignAction)
        if signing and job is not None:
            raise ValueError("a sign-in or sign-out names no job")
        if not signing and job is None:
            raise ValueError("a job event names its job")
        return job

    @field_validator("operator_badge")
    @classmethod
    def _badge_with_sign_actions(cls, badge: str | None, info: ValidationInfo) -> str | None:
        if isinstance(info.data.get("action"), SignAction) and badge is None:
            raise ValueError("a sign-in or sign-out names the operator's badge")
        return badge

    @property
    def signs(self) -> bool:
        """A sign-in or sign-out, not a job event."""
        return isinstance(self.action, SignAction)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.signs:
            details = ("reason_code", "to_stage", "override_reason", "note", "breakage")
            for name in (*details, "inspection", "shipment"):
                if getattr(self, name) is not None:
                    raise _field_error(name, "a sign-in or sign-out carries only a badge")
        if self.breakage is not None and self.action != Action.breakage:
            raise ValueError("breakage details belong to a breakage event")
        if self.shipment is not None and self.action != Action.complete:
            raise _field_error("shipment", "a shipment rides on complete")
        if self.inspection is not None:
            if self.action not in (Action.complete, Action.rework):
                raise ValueError("an inspection rides on complete (pass) or rework (fail)")
            if self.action == Action.rework and not self.inspection.defects:
                raise ValueError("a failed inspection names at least one defect code")
        return self


# -- what a station reads --


class Stage(Reply):
    code: str
    name: str
    # Default: a card cached by a station before the server sent it still reads.
    inspection: bool = Field(
        default=False, description="A job passes this stage only with a judged inspection."
    )
    # A shipping stage lists its carriers; completing a job there records its shipment.
    carriers: list[str] | None = None


class OrderedEye(Reply):
    """One eye of the ordered prescription, as the card shows it (core.optics reads it as a
    `PrescriptionLine`)."""

    eye: Eye
    sph: float
    cyl: float
    axis: int | None = None
    add: float | None = None
    prism: float | None = None
    prism_base: str | None = None
    mono_pd: float | None = None
    fitting_height: float | None = None
    center_thickness: float | None = None
    verify_sph: float | None = None
    verify_cyl: float | None = None
    verify_axis: int | None = None


class ChangedValue(Reply):
    """One order value changed after production started (an accepted change request)."""

    field: str = Field(description='A path into the order: "right.sph", "frame.type", ...')
    old_value: object = None
    new_value: object = None
    changed_at: datetime


class JobSummary(Reply):
    """A job in a list (`GET /api/jobs`)."""

    id: int
    job_number: str
    tray_number: str | None
    store_code: str
    priority: Priority
    promised_at: datetime
    current_stage: Stage | None
    status: JobStatus


class JobCard(JobSummary):
    """One job (`GET /api/jobs/{id}`, `/lookup/{code}`): what the station's card shows."""

    job_type: JobType
    lens_design: LensDesign
    lens_material: str
    lens_index: float
    surfaced: bool
    treatments: list[str]
    frame: dict[str, object]
    special_instructions: str
    # Defaults: a card cached by a station before the server sent these still reads.
    tolerance_profile: str | None = Field(
        default=None, description="The store's QC profile; None: the lab's"
    )
    route_stages: list[Stage]
    status_before_hold: JobStatus | None = Field(
        default=None, description="What a release restores."
    )
    prescription: list[OrderedEye]
    trace: Trace | None = Field(default=None, description="The frame's lens shape")
    accepted_changes: list[ChangedValue] = Field(
        default=[], description="Values changed after production started, oldest first"
    )
    cancel_reason: str | None = Field(default=None, description="Why the order was cancelled")


class JobPage(Reply):
    total: int
    items: list[JobSummary]


class TimelineEntry(Reply):
    event_uuid: uuid.UUID
    action: Action
    stage: Stage
    station: str
    operator_initials: str | None
    reason_code: str | None
    to_stage: Stage | None
    override_reason: str | None
    note: str | None
    at: datetime = Field(description="Device time corrected onto the server clock.")


class FieldError(Reply):
    field: str
    message: str


class JobState(Reply):
    """The job after an event: what a station applies to its cached card."""

    job_number: str
    tray_number: str | None
    stage: str | None
    status: JobStatus


class EventResult(Reply):
    event_uuid: uuid.UUID
    status: Literal["stored", "duplicate", "rejected"]
    job: JobState | None = None
    error: FieldError | None = None


class SequenceGap(Reply):
    first_missing: int
    last_missing: int


class BatchReply(Reply):
    results: list[EventResult]
    sequence_gaps: list[SequenceGap]


class StationMe(Reply):
    name: str
    stage: Stage
    last_sequence: int


class Operator(Reply):
    badge_code: str
    name: str
    initials: str
    role: Role


class Reason(Reply):
    kind: ReasonKind
    code: str
    description: str
    return_stage: str | None
