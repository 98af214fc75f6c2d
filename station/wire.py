"""The station's own copies of the server's wire models (field-compatible with server.schemas).

Kept here so a station PC needs only this package and `drivers`, never the server code.
Responses ignore fields the station does not use, so the server may add fields freely.
"""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.lifecycle import Action, JobStatus


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class BreakageDetail(BaseModel):
    """What broke: a lens (which eyes) or the frame, and the blanks taken to replace it."""

    part: Literal["lens", "frame"] = "lens"
    eyes: list[Literal["R", "L"]] = Field(default=["R", "L"], max_length=2)
    replacement_blanks: list[str] = Field(default=[], max_length=4)


class DefectIn(BaseModel):
    eye: Literal["R", "L"] | None = None  # None: the pair or the frame
    code: str


class InspectionIn(BaseModel):
    """A QC inspection riding on complete (pass) or rework (fail); `measured` has the shape of
    `lenstrack check-lens` input."""

    measured: dict[str, object]
    profile: str | None = None
    cosmetic: dict[str, bool] = {}
    defects: list[DefectIn] = []


class EventIn(BaseModel):
    """What the station sends; the server forbids unknown fields, so nothing extra goes in."""

    model_config = ConfigDict(extra="forbid")

    event_uuid: uuid.UUID
    sequence: int = Field(ge=1)
    job: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9-]+$")
    action: Action
    operator_badge: str | None = None
    reason_code: str | None = None
    to_stage: str | None = None
    override_reason: str | None = Field(default=None, min_length=3, max_length=200)
    note: str | None = Field(default=None, max_length=2000)
    breakage: BreakageDetail | None = None
    inspection: InspectionIn | None = None
    created_at: AwareDatetime
    sent_at: AwareDatetime


class Stage(_Reply):
    code: str
    name: str


class EyeRx(_Reply):
    eye: Literal["R", "L"]
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


class JobCard(_Reply):
    """`JobOut`: what the job card shows."""

    id: int
    job_number: str
    tray_number: str | None
    store_code: str
    job_type: str
    priority: Literal["regular", "rush"]
    promised_at: datetime
    lens_design: str
    lens_material: str
    lens_index: float
    surfaced: bool
    treatments: list[str]
    frame: dict[str, object]
    special_instructions: str
    tolerance_profile: str | None = None  # the store's; None: the station's own
    route_stages: list[Stage]
    current_stage: Stage | None
    status: JobStatus
    status_before_hold: JobStatus | None = None  # what a release restores
    prescription: list[EyeRx]


class JobSummary(_Reply):
    id: int
    job_number: str
    tray_number: str | None
    current_stage: Stage | None
    status: JobStatus


class JobPage(_Reply):
    total: int
    items: list[JobSummary]


class TimelineEntry(_Reply):
    event_uuid: uuid.UUID
    action: Action
    stage: Stage
    station: str
    operator_initials: str | None
    reason_code: str | None
    to_stage: Stage | None
    override_reason: str | None
    note: str | None
    at: datetime


class FieldError(_Reply):
    field: str
    message: str


class JobState(_Reply):
    job_number: str
    tray_number: str | None
    stage: str | None
    status: JobStatus


class EventResult(_Reply):
    event_uuid: uuid.UUID
    status: Literal["stored", "duplicate", "rejected"]
    job: JobState | None = None
    error: FieldError | None = None


class SequenceGap(_Reply):
    first_missing: int
    last_missing: int


class BatchReply(_Reply):
    results: list[EventResult]
    sequence_gaps: list[SequenceGap]


class StationMe(_Reply):
    name: str
    stage: Stage
    last_sequence: int


class Operator(_Reply):
    badge_code: str
    name: str
    initials: str
    role: str


class Reason(_Reply):
    kind: Literal["hold", "breakage", "defect"]
    code: str
    description: str
    return_stage: str | None
