"""Pydantic models at the API boundary (requests and responses).

The station's wire models live once in `core.contract`; the server's responses extend them
with what only people and integrations read. Responses are built from ORM rows
(`from_attributes`): a name the row lacks is a property on the ORM class, or, where the
row's attribute of that name is a relationship, an alias that reads through it.
"""

import math
import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AliasPath,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from core import contract
from core.contract import (
    MAX_BATCH_EVENTS,
    MAX_JSON_TEXT,
    ScanCode,
    StrictNumber,
    WireTime,
    bounded_json,
    not_before,
)

# Shapes the server answers or accepts exactly as the contract declares them; its modules
# read every wire model from here.
from core.contract import BreakageDetail as BreakageDetail
from core.contract import DefectIn as DefectIn
from core.contract import EventIn as EventIn
from core.contract import FieldError as FieldError
from core.contract import Inbound as _In
from core.contract import InspectionIn as InspectionIn
from core.contract import JobState as JobState
from core.contract import Operator as Operator
from core.contract import SequenceGap as SequenceGap
from core.contract import Stage as Stage
from core.trace import Trace
from server.models import (
    BreakagePart,
    ChangeState,
    JobType,
    LensDesign,
    Priority,
    RemakeClass,
    Role,
)


class _Out(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_serialization_defaults_required=True
    )


def _problem(message: str) -> PydanticCustomError:
    """A refusal read beside its field as it is (a ValueError reads "Value error, ...")."""
    return PydanticCustomError("order", message)


def on_step(value: float, step: float) -> bool:
    """Whether a power is a whole number of `step` dioptres."""
    return math.isclose(value / step, round(value / step), abs_tol=1e-6)


def _quarter_step(step: float) -> AfterValidator:
    def check(value: float) -> float:
        if not on_step(value, step):
            raise _problem(f"must be a multiple of {step} D")
        return value

    return AfterValidator(check)


# Ranges a lab can make; anything outside is a typing error, not a prescription.
Sphere = Annotated[StrictNumber, Field(ge=-30, le=30), _quarter_step(0.125)]
Cylinder = Annotated[StrictNumber, Field(ge=-15, le=15), _quarter_step(0.125)]
Axis = Annotated[StrictInt, Field(ge=1, le=180, description="Degrees; 0 is written as 180.")]
AddPower = Annotated[StrictNumber, Field(ge=0.25, le=5), _quarter_step(0.125)]
Prism = Annotated[StrictNumber, Field(gt=0, le=15)]
MonoPD = Annotated[StrictNumber, Field(ge=20, le=45, description="mm")]
FittingHeight = Annotated[StrictNumber, Field(ge=8, le=40, description="mm")]
CenterThickness = Annotated[StrictNumber, Field(ge=0.5, le=25, description="mm")]
# Compensated powers come from design software in 0.01 D, not in prescription steps.
VerificationPower = Annotated[StrictNumber, Field(ge=-30, le=30)]
PrismBase = Annotated[
    str, StringConstraints(pattern=r"^(in|out|up|down|(\d|[1-9]\d|[12]\d\d|3[0-5]\d))$")
]


class PrescriptionEyeIn(_In):
    # Cross-field rules are field validators on the later field (validated even when left
    # out), so each refusal names the field to fix and comes with every other one at once.
    # A field that failed its own checks is missing from `info.data`: no rule fires on it.
    sph: Sphere
    cyl: Cylinder = 0.0
    axis: Axis | None = Field(default=None, validate_default=True)
    add: AddPower | None = None
    prism: Prism | None = None
    prism_base: PrismBase | None = Field(default=None, validate_default=True)
    mono_pd: MonoPD | None = None
    fitting_height: FittingHeight | None = None
    center_thickness: CenterThickness | None = None
    verify_sph: VerificationPower | None = Field(
        default=None, description="Freeform: compensated sphere the lens is verified against"
    )
    verify_cyl: VerificationPower | None = None
    verify_axis: Axis | None = Field(default=None, validate_default=True)

    @field_validator("axis")
    @classmethod
    def _axis_with_cylinder(cls, axis: int | None, info: ValidationInfo) -> int | None:
        if axis is None and info.data.get("cyl", 0) != 0:
            raise _problem("axis (1–180) is required when cyl is not 0")
        return axis

    @field_validator("prism_base")
    @classmethod
    def _base_with_prism(cls, base: str | None, info: ValidationInfo) -> str | None:
        if "prism" in info.data and (info.data["prism"] is None) != (base is None):
            raise _problem("give the base (in, out, up, down)" if base is None else "no prism")
        return base

    @field_validator("verify_cyl", "verify_axis")
    @classmethod
    def _verification_complete(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and "verify_sph" in info.data and info.data["verify_sph"] is None:
            raise _problem(f"{info.field_name} needs verify_sph")
        if info.field_name == "verify_axis" and value is None and info.data.get("verify_cyl"):
            raise _problem("verify_axis is required when verify_cyl is not 0")
        return value


# Details a frame may carry beyond the declared ones (colour, supplier, a DCS label): a few,
# each a short name and a bounded JSON value.
MAX_FRAME_EXTRAS = 20
FrameExtraName = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class FrameIn(_In):
    model_config = ConfigDict(extra="allow")
    # Validates the extras (`extra="allow"` keeps them; this says what they may be).
    __pydantic_extra__: dict[FrameExtraName, Annotated[object, AfterValidator(bounded_json)]]
    code: str | None = Field(
        default=None, max_length=32, description="A frame of the lab's catalogue"
    )
    type: Literal["full_rim", "semi_rimless", "rimless"] | None = None
    a_mm: StrictNumber | None = Field(default=None, gt=20, lt=90)
    b_mm: StrictNumber | None = Field(default=None, gt=10, lt=80)
    dbl_mm: StrictNumber | None = Field(default=None, gt=5, lt=40)
    ed_mm: StrictNumber | None = Field(default=None, gt=20, lt=100)
    description: str | None = Field(default=None, max_length=MAX_JSON_TEXT)

    @model_validator(mode="after")
    def _few_extras(self) -> Self:
        if len(self.model_extra or {}) > MAX_FRAME_EXTRAS:
            raise _problem(f"at most {MAX_FRAME_EXTRAS} details beyond the declared ones")
        return self


MAX_TREATMENTS = 20  # more than any lens takes: a longer list is not an order


class JobCreate(_In):
    # Store staff give neither number (refused naming it): the lab assigns job numbers, so a
    # store never probes a number of the lab-wide namespace (`jobs.store_number_problems`).
    job_number: ScanCode | None = Field(
        default=None,
        description="Lab staff and systems only. Left out: the lab's next job number on a new "
        "order, the job's own on an edit.",
    )
    tray_number: ScanCode | None = Field(
        default=None,
        description="Lab staff and systems only; a store's edit keeps the job's tray.",
    )
    store_code: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    patient_ref: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    job_type: JobType = JobType.new
    priority: Priority = Priority.regular
    ordered_at: WireTime
    promised_at: WireTime
    lens_design: LensDesign
    lens_material: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    lens_index: StrictNumber = Field(ge=1.4, le=1.9)
    surfaced: StrictBool
    treatments: list[Annotated[str, StringConstraints(min_length=1, max_length=32)]] = Field(
        default=[], max_length=MAX_TREATMENTS
    )
    frame: FrameIn = FrameIn()
    special_instructions: str = Field(default="", max_length=1000)
    contact_declined: StrictBool = Field(
        default=False, description="The patient declined follow-up calls after delivery"
    )
    right: PrescriptionEyeIn | None = None
    left: PrescriptionEyeIn | None = None
    # How the cylinders above are written; the job stores minus cylinder (transposed).
    cylinder_form: Literal["minus", "plus"] = "minus"
    trace: Trace | None = Field(default=None, description="The frame's lens shape (DCS trace)")

    # Field validators (not one model validator) so each error names its field.
    _promised_after_ordered = field_validator("promised_at")(not_before("ordered_at"))

    @field_validator("right", "left", mode="wrap")
    @classmethod
    def _add_for_multifocals(
        cls, value: object, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> PrescriptionEyeIn | None:
        """An add only for multifocals, located at "right.add" and told together with the
        eye's own errors (a plain validator would run only once the eye is valid)."""
        errors: list[InitErrorDetails] = []
        try:
            eye = handler(value)
        except ValidationError as error:
            # Re-raised with the add's problem below; each keeps its location and message.
            errors = [
                InitErrorDetails(
                    type=PydanticCustomError(e["type"], e["msg"]), loc=e["loc"], input=e["input"]
                )
                for e in error.errors()
            ]
            eye = None
        raw = value.model_dump() if isinstance(value, PrescriptionEyeIn) else value
        add = raw.get("add") if isinstance(raw, dict) else None
        design = info.data.get("lens_design")
        if isinstance(raw, dict) and design and (add is None) != (design == LensDesign.SV):
            message = f"{design} lenses need an add" if add is None else "SV lenses take no add"
            errors.append(InitErrorDetails(type=_problem(message), loc=("add",), input=add))
        if errors:
            raise ValidationError.from_exception_data("PrescriptionEyeIn", errors)
        return eye

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.right is None and self.left is None:
            raise ValueError("at least one eye (right or left) is required")
        return self


class OrderCheck(BaseModel):
    """`POST /api/jobs/check`: the order would be accepted as it is."""

    warnings: list[FieldError] = Field(description="Unusual but possible values to look at")
    proposed_promised_at: datetime = Field(description="From the route's times and the load")


class FlagOut(_Out):
    kind: str
    reason: str
    raised_at: datetime


class JobSummary(contract.JobSummary):
    state_changed_at: datetime
    eta: datetime | None
    flags: list[FlagOut]


class JobRef(_Out):
    id: int
    job_number: str


class RemakeRef(JobRef):
    remake_class: RemakeClass | None


class JobOut(contract.JobCard, JobSummary):
    patient_ref: str | None = Field(description="None once its personal data was purged")
    ordered_at: datetime
    route_code: str
    rework_count: int
    breakage_count: int
    ready_for_pickup_at: datetime | None
    delivered_at: datetime | None
    cancelled_at: datetime | None
    remake_of: JobRef | None
    remake_class: RemakeClass | None
    remake_reason: str | None
    remakes: list[RemakeRef]
    personal_data_purged_at: datetime | None = Field(
        default=None, description="When retention purged its patient reference and prescription"
    )


class JobPage(contract.JobPage):
    total: int | None  # None on a page after a cursor: counted on the first page only
    total_capped: bool  # more match than `total`: counting stops at jobs.COUNT_REACH
    items: list[JobSummary]
    next_cursor: str | None  # the next page's `after`; None on the last page


class EventBatchIn(_In):
    # Bounded here, so a longer list is refused before any of its events is parsed.
    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)

    @field_validator("events")
    @classmethod
    def _one_event_per_uuid(cls, events: list[EventIn]) -> list[EventIn]:
        """A UUID twice is a resend only with the same content: two different events under
        one UUID would store one and answer "duplicate" for the other, which is lost."""
        first: dict[uuid.UUID, EventIn] = {}
        for index, event in enumerate(events):
            earlier = first.setdefault(event.event_uuid, event)
            if earlier is event:
                continue
            if earlier.model_dump(exclude={"sent_at"}) != event.model_dump(exclude={"sent_at"}):
                problem = _problem("an earlier event of this batch has this UUID and differs")
                error = InitErrorDetails(type=problem, loc=(index, "event_uuid"), input=None)
                raise ValidationError.from_exception_data("EventBatchIn", [error])
        return events


class EventResult(contract.EventResult):
    event_id: int | None = None


class EventBatchOut(contract.BatchReply):
    results: list[EventResult]


class StationMe(contract.StationMe):
    id: int
    sequence_gaps: list[SequenceGap]


class TimelineEntry(contract.TimelineEntry):
    model_config = ConfigDict(validate_by_name=True)
    event_id: int = Field(validation_alias="id")
    station: str = Field(validation_alias=AliasPath("station", "name"))
    received_at: datetime = Field(validation_alias="server_received_at")


class LoginIn(_In):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class PersonOut(_Out):
    model_config = ConfigDict(validate_by_name=True)
    id: int
    username: str
    name: str
    role: Role
    store_code: str | None = Field(default=None, validation_alias=AliasPath("store", "code"))


class ReasonOut(contract.Reason):
    model_config = ConfigDict(validate_by_name=True)
    return_stage: str | None = Field(
        default=None, validation_alias=AliasPath("return_stage", "code")
    )


class BreakageOut(_Out):
    model_config = ConfigDict(validate_by_name=True)
    id: int
    job_number: str = Field(validation_alias=AliasPath("job", "job_number"))
    stage: Stage
    station: str = Field(validation_alias=AliasPath("station", "name"))
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


# -- edits, cancels, change requests and remakes --

Reason = Annotated[str, StringConstraints(min_length=3, max_length=200)]


class CancelIn(_In):
    reason: Reason


class DeclineIn(_In):
    reason: Reason


class AcceptIn(_In):
    return_stage: str | None = Field(
        default=None, max_length=32, description="Stage code; None: the stage the change needs"
    )
    stay: StrictBool = Field(default=False, description="Leave the job where it is")


class RemakeIn(_In):
    remake_class: RemakeClass
    reason: Reason


class JobChangeOut(_Out):
    model_config = ConfigDict(validate_by_name=True)
    id: int
    field: str
    old_value: object
    new_value: object
    changed_at: datetime
    person: str | None = Field(default=None, validation_alias=AliasPath("person", "name"))
    change_request_id: int | None


class ChangeRequestOut(_Out):
    model_config = ConfigDict(validate_by_name=True)
    id: int
    job: JobRef
    state: ChangeState
    changes: dict[str, object] = Field(description="{order path: new value}")
    requested_at: datetime
    requested_by: str | None = Field(
        default=None, validation_alias=AliasPath("requested_by", "name")
    )
    decided_at: datetime | None
    decided_by: str | None = Field(default=None, validation_alias=AliasPath("decided_by", "name"))
    decline_reason: str | None
    return_stage: str | None = Field(
        default=None, validation_alias=AliasPath("return_stage", "code")
    )


class ErrorOut(BaseModel):
    """Every refusal (4xx, and 503): what to fix, field by field."""

    detail: list[FieldError] = Field(min_length=1)
