"""Pydantic models at the API boundary (requests and responses)."""

import math
import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from server.models import (
    BreakagePart,
    EventAction,
    Eye,
    JobStatus,
    JobType,
    LensDesign,
    Priority,
    Role,
)


def _reject_nul(value: object) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, list):
        for item in value:
            _reject_nul(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key)
            _reject_nul(item)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # PostgreSQL text cannot hold NUL (a 500 from the driver); no real input contains one.
    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        _reject_nul(value)
        return value


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _quarter_step(step: float) -> AfterValidator:
    def check(value: float) -> float:
        if not math.isclose(value / step, round(value / step), abs_tol=1e-6):
            raise ValueError(f"must be a multiple of {step} D")
        return value

    return AfterValidator(check)


# Ranges a lab can make; anything outside is a typing error, not a prescription.
Sphere = Annotated[float, Field(ge=-30, le=30, allow_inf_nan=False), _quarter_step(0.125)]
Cylinder = Annotated[float, Field(ge=-15, le=15, allow_inf_nan=False), _quarter_step(0.125)]
Axis = Annotated[int, Field(ge=1, le=180, description="Degrees; 0 is written as 180.")]
AddPower = Annotated[float, Field(ge=0.25, le=5, allow_inf_nan=False), _quarter_step(0.125)]
Prism = Annotated[float, Field(gt=0, le=15, allow_inf_nan=False)]
MonoPD = Annotated[float, Field(ge=20, le=45, allow_inf_nan=False, description="mm")]
FittingHeight = Annotated[float, Field(ge=8, le=40, allow_inf_nan=False, description="mm")]
CenterThickness = Annotated[float, Field(ge=0.5, le=25, allow_inf_nan=False, description="mm")]
# Compensated powers come from design software in 0.01 D, not in prescription steps.
VerificationPower = Annotated[float, Field(ge=-30, le=30, allow_inf_nan=False)]
PrismBase = Annotated[
    str, StringConstraints(pattern=r"^(in|out|up|down|(\d|[1-9]\d|[12]\d\d|3[0-5]\d))$")
]
ScanCode = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9-]+$")
]
ReasonCodeText = Annotated[str, StringConstraints(min_length=1, max_length=32)]


class PrescriptionEyeIn(_In):
    sph: Sphere
    cyl: Cylinder = 0.0
    axis: Axis | None = None
    add: AddPower | None = None
    prism: Prism | None = None
    prism_base: PrismBase | None = None
    mono_pd: MonoPD | None = None
    fitting_height: FittingHeight | None = None
    center_thickness: CenterThickness | None = None
    verify_sph: VerificationPower | None = Field(
        default=None, description="Freeform: compensated sphere the lens is verified against"
    )
    verify_cyl: VerificationPower | None = None
    verify_axis: Axis | None = None

    @model_validator(mode="after")
    def _axis_with_cylinder(self) -> Self:
        if self.cyl != 0 and self.axis is None:
            raise ValueError("axis is required when cyl is not 0")
        if (self.prism is None) != (self.prism_base is None):
            raise ValueError("prism and prism_base go together")
        if (self.verify_cyl is not None or self.verify_axis is not None) and (
            self.verify_sph is None
        ):
            raise ValueError("verify_cyl and verify_axis need verify_sph")
        if self.verify_cyl and self.verify_axis is None:
            raise ValueError("verify_axis is required when verify_cyl is not 0")
        return self


class PrescriptionEyeOut(_Out):
    eye: Eye
    sph: float
    cyl: float
    axis: int | None
    add: float | None
    prism: float | None
    prism_base: str | None
    mono_pd: float | None
    fitting_height: float | None
    center_thickness: float | None
    verify_sph: float | None
    verify_cyl: float | None
    verify_axis: int | None


class FrameIn(_In):
    model_config = ConfigDict(extra="allow")
    type: Literal["full_rim", "semi_rimless", "rimless"] | None = None
    a_mm: float | None = Field(default=None, gt=20, lt=90)
    b_mm: float | None = Field(default=None, gt=10, lt=80)
    dbl_mm: float | None = Field(default=None, gt=5, lt=40)
    ed_mm: float | None = Field(default=None, gt=20, lt=100)
    description: str | None = Field(default=None, max_length=200)


class JobCreate(_In):
    job_number: ScanCode
    tray_number: ScanCode | None = None
    store_code: str
    patient_ref: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    job_type: JobType = JobType.new
    priority: Priority = Priority.regular
    ordered_at: AwareDatetime
    promised_at: AwareDatetime
    lens_design: LensDesign
    lens_material: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    lens_index: float = Field(ge=1.4, le=1.9)
    surfaced: bool
    treatments: list[Annotated[str, StringConstraints(min_length=1, max_length=32)]] = []
    frame: FrameIn = FrameIn()
    special_instructions: str = Field(default="", max_length=1000)
    right: PrescriptionEyeIn | None = None
    left: PrescriptionEyeIn | None = None

    # Field validators (not one model validator) so each error names its field.
    @field_validator("promised_at")
    @classmethod
    def _promised_after_ordered(cls, promised_at: datetime, info: ValidationInfo) -> datetime:
        ordered_at = info.data.get("ordered_at")
        if ordered_at is not None and promised_at < ordered_at:
            raise ValueError("is before ordered_at")
        return promised_at

    @field_validator("right", "left")
    @classmethod
    def _add_for_multifocals(
        cls, eye: PrescriptionEyeIn | None, info: ValidationInfo
    ) -> PrescriptionEyeIn | None:
        design = info.data.get("lens_design")
        if eye is not None and design not in (None, LensDesign.SV) and eye.add is None:
            raise ValueError(f"{design} lenses need an add power for each eye")
        return eye

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.right is None and self.left is None:
            raise ValueError("at least one eye (right or left) is required")
        return self


class StageOut(_Out):
    code: str
    name: str


class FlagOut(_Out):
    kind: str
    reason: str
    raised_at: datetime


class JobOut(_Out):
    id: int
    job_number: str
    tray_number: str | None
    store_code: str
    patient_ref: str
    job_type: JobType
    priority: Priority
    ordered_at: datetime
    promised_at: datetime
    lens_design: LensDesign
    lens_material: str
    lens_index: float
    surfaced: bool
    treatments: list[str]
    frame: dict[str, object]
    special_instructions: str
    tolerance_profile: str | None = Field(description="The store's QC profile; None: the lab's")
    route_code: str
    route_stages: list[StageOut]
    current_stage: StageOut | None
    status: JobStatus
    status_before_hold: JobStatus | None = Field(description="What a release restores.")
    rework_count: int
    breakage_count: int
    state_changed_at: datetime
    eta: datetime | None
    flags: list[FlagOut]
    ready_for_pickup_at: datetime | None
    delivered_at: datetime | None
    prescription: list[PrescriptionEyeOut]


class JobSummary(_Out):
    id: int
    job_number: str
    tray_number: str | None
    store_code: str
    priority: Priority
    promised_at: datetime
    current_stage: StageOut | None
    status: JobStatus
    state_changed_at: datetime
    eta: datetime | None
    flags: list[FlagOut]


class JobPage(BaseModel):
    total: int
    items: list[JobSummary]


class BreakageDetail(_In):
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


class DefectIn(_In):
    eye: Eye | None = Field(default=None, description="None: the pair or the frame.")
    code: ReasonCodeText


class InspectionIn(_In):
    """A QC inspection, riding on the event that passes (complete) or fails (rework) the job.

    `measured` has the shape of `lenstrack check-lens` input: {"R": {sph, cyl, axis, add,
    prism_h, prism_v, pd, fitting_height, ...}, "L": {...}, "pd": ...}. The server judges it
    against the job's ordered Rx with the store's tolerance profile.
    """

    measured: dict[str, object]
    profile: str | None = Field(
        default=None,
        description="What the station judged with; a store's own profile is used instead.",
    )
    cosmetic: dict[Annotated[str, StringConstraints(max_length=40)], bool] = Field(
        default={}, max_length=30
    )
    defects: list[DefectIn] = Field(default=[], max_length=20)


class EventIn(_In):
    """One scan-time event made by a station. The station is known from its token."""

    event_uuid: uuid.UUID
    sequence: int = Field(ge=1, le=2**63 - 1, description="Per-station, increasing by 1 per event.")
    job: ScanCode = Field(description="Job number or tray number as scanned.")
    action: EventAction
    operator_badge: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    reason_code: ReasonCodeText | None = None
    to_stage: str | None = Field(default=None, description="Rework target stage code.")
    override_reason: Annotated[str, StringConstraints(min_length=3, max_length=200)] | None = None
    note: str | None = Field(default=None, max_length=2000)
    breakage: BreakageDetail | None = Field(default=None, description="Only with breakage.")
    inspection: InspectionIn | None = Field(
        default=None, description="QC result: with complete (pass) or rework (fail)."
    )
    created_at: AwareDatetime = Field(description="Device clock at scan time.")
    sent_at: AwareDatetime = Field(description="Device clock when this send began.")

    @field_validator("sent_at")
    @classmethod
    def _sent_after_created(cls, sent_at: datetime, info: ValidationInfo) -> datetime:
        created_at = info.data.get("created_at")
        if created_at is not None and created_at > sent_at:
            raise ValueError("is before created_at")
        return sent_at

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.breakage is not None and self.action != EventAction.breakage:
            raise ValueError("breakage details belong to a breakage event")
        if self.inspection is not None:
            if self.action not in (EventAction.complete, EventAction.rework):
                raise ValueError("an inspection rides on complete (pass) or rework (fail)")
            if self.action == EventAction.rework and not self.inspection.defects:
                raise ValueError("a failed inspection names at least one defect code")
        return self


class EventBatchIn(_In):
    events: list[EventIn] = Field(min_length=1)


class FieldError(BaseModel):
    field: str
    message: str


class JobState(BaseModel):
    job_number: str
    tray_number: str | None
    stage: str | None
    status: JobStatus


class EventResult(BaseModel):
    event_uuid: uuid.UUID
    status: Literal["stored", "duplicate", "rejected"]
    event_id: int | None = None
    job: JobState | None = None
    error: FieldError | None = None


class SequenceGap(BaseModel):
    first_missing: int
    last_missing: int


class EventBatchOut(BaseModel):
    results: list[EventResult]
    sequence_gaps: list[SequenceGap]


class StationMe(BaseModel):
    id: int
    name: str
    stage: StageOut
    last_sequence: int
    sequence_gaps: list[SequenceGap]


class TimelineEntry(BaseModel):
    event_id: int
    event_uuid: uuid.UUID
    action: EventAction
    stage: StageOut
    station: str
    operator_initials: str | None
    reason_code: str | None
    to_stage: StageOut | None
    override_reason: str | None
    note: str | None
    at: datetime = Field(description="Device time corrected onto the server clock.")
    received_at: datetime


class LoginIn(_In):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class PersonOut(_Out):
    id: int
    username: str
    name: str
    role: Role
    store_code: str | None


class OperatorOut(BaseModel):
    badge_code: str
    name: str
    initials: str
    role: Role


class ReasonOut(BaseModel):
    kind: str
    code: str
    description: str
    return_stage: str | None


class BreakageOut(_Out):
    id: int
    job_number: str
    stage: StageOut
    station: str
    reason_code: str
    part: BreakagePart
    eyes: str
    shift: str | None
    cost: float
    currency: str
    replacement_blanks: list[str]
    occurred_at: datetime
    reversed_at: datetime | None
    reversal_reason: str | None


class ReversalIn(_In):
    reason: Annotated[str, StringConstraints(min_length=3, max_length=200)]


class JobUpdateOut(BaseModel):
    """One entry of the change feed, as pushed to pages and webhooks."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    job_id: int
    store_id: int
    kind: str
    detail: dict[str, object]
    created_at: datetime


class InspectionCheckOut(_Out):
    eye: str | None
    field: str
    ordered: float
    measured: float
    deviation: float
    tolerance: float
    passed: bool


class InspectionDefectOut(BaseModel):
    eye: str | None
    code: str
    description: str


class InspectionOut(BaseModel):
    id: int
    attempt: int
    passed: bool
    profile: str
    station: str
    inspected_at: datetime
    cosmetic: dict[str, bool]
    checks: list[InspectionCheckOut]
    defects: list[InspectionDefectOut]
