"""The lab configuration file (stages, routes, reasons, stores, stations) as validated models."""

import tomllib
from collections.abc import Collection
from datetime import time
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from core.contract import EmailAddress
from core.labels import Labels
from server.models import JobType, LensDesign, ReasonKind, TicketClass

Code = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabInfo(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=120)
    timezone: str = Field(default="UTC", description="IANA zone in which shifts are defined.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value


class ShiftConfig(_Strict):
    name: str = Code
    starts: time


class BreakageCosts(_Strict):
    """Cost of one broken lens by design, and of a frame, in the lab's currency."""

    currency: str = Field(default="EUR", min_length=3, max_length=3)
    lens: dict[LensDesign, float] = {}
    frame: float = Field(default=0.0, ge=0)

    @field_validator("lens")
    @classmethod
    def _not_negative(cls, value: dict[LensDesign, float]) -> dict[LensDesign, float]:
        if any(cost < 0 for cost in value.values()):
            raise ValueError("costs cannot be negative")
        return value


class LineConfig(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=120)


class StageConfig(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=120)
    stalled_after_minutes: int = Field(default=240, gt=0)
    capacity: int = Field(default=1, gt=0, description="Jobs one station runs at once.")
    inspection: bool = Field(
        default=False,
        description="Force QA: a job passes this stage only with a judged inspection.",
    )
    carriers: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="A shipping stage: the carriers its station offers for a shipment.",
    )


class RouteConfig(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=120)
    job_types: list[JobType] = Field(min_length=1)
    designs: list[LensDesign] = Field(min_length=1)
    surfaced: bool
    steps: list[tuple[str, float]] = Field(min_length=1)


class ReasonConfig(_Strict):
    kind: ReasonKind
    code: str = Code
    description: str = Field(min_length=1, max_length=200)
    return_stage: str | None = None


class StationConfig(_Strict):
    name: str = Code
    stage: str
    line: str | None = None


class StoreConfig(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=120)
    tolerance_profile: str | None = Field(
        None, description="QC judges this store's jobs with it (config/tolerances.toml)"
    )
    notify_email: EmailAddress | None = Field(
        None, description="Where the store's messages go; omitted: left as the store set it."
    )


class MaterialConfig(_Strict):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=120)
    index: float = Field(ge=1.4, le=1.9)
    designs: list[LensDesign] = Field(default=list(LensDesign), min_length=1)


class TreatmentConfig(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=120)


class FrameConfig(_Strict):
    """A frame the lab stocks or receives often: picked on the order instead of typed."""

    code: str = Code
    name: str = Field(min_length=1, max_length=120)
    type: Literal["full_rim", "semi_rimless", "rimless"]
    a_mm: float = Field(gt=20, lt=90)
    b_mm: float = Field(gt=10, lt=80)
    dbl_mm: float = Field(gt=5, lt=40)
    ed_mm: float | None = Field(default=None, gt=20, lt=100)


class CatalogueConfig(_Strict):
    """`[catalogue]`: what an order may choose. Orders are checked against it once loaded."""

    # Prescription power steps the lab grinds: 0.25 D, or 0.125 D where it allows eighths.
    rx_step: Literal[0.25, 0.125] = 0.25
    materials: list[MaterialConfig] = []
    treatments: list[TreatmentConfig] = []
    frames: list[FrameConfig] = []

    @model_validator(mode="after")
    def _unique_codes(self) -> Self:
        for name, codes in (
            ("material", [m.code for m in self.materials]),
            ("treatment", [t.code for t in self.treatments]),
            ("frame", [f.code for f in self.frames]),
        ):
            duplicates = sorted({code for code in codes if codes.count(code) > 1})
            if duplicates:
                raise ValueError(f"duplicate {name} codes: {', '.join(duplicates)}")
        return self


class KpiTargets(_Strict):
    """`[kpi_targets]`: what the KPI dashboards draw against the actual rates (fractions)."""

    on_time: float = Field(default=0.95, gt=0, le=1, description="on-time delivery rate")
    first_pass: float = Field(default=0.97, gt=0, le=1, description="first-pass QC yield")


class AftersalesConfig(_Strict):
    """`[aftersales]`: the lab's service promises to its stores, and when stores call patients.

    Clocks run in elapsed hours: a promise to a store is kept around the clock."""

    first_response_hours: int = Field(default=24, gt=0, le=24 * 30)
    resolution_hours: dict[TicketClass, int] = Field(
        default={
            TicketClass.lens_defect: 72,
            TicketClass.frame_fit: 48,
            TicketClass.non_adapt: 240,
            TicketClass.breakage: 72,
            TicketClass.wrong_rx: 72,
            TicketClass.delay: 24,
            TicketClass.other: 120,
        },
        description="Resolution target per ticket class; a class left out keeps its default",
    )
    follow_up_days: list[int] = Field(default=[3, 14, 30], max_length=10)

    @field_validator("resolution_hours")
    @classmethod
    def _every_class(cls, value: dict[TicketClass, int]) -> dict[TicketClass, int]:
        if any(not 0 < hours <= 24 * 90 for hours in value.values()):
            raise ValueError("resolution hours must be between 1 and 2160")
        defaults = cls.model_fields["resolution_hours"].get_default()
        return {**defaults, **value}

    @field_validator("follow_up_days")
    @classmethod
    def _distinct_days(cls, value: list[int]) -> list[int]:
        if any(not 0 < days <= 365 for days in value) or len(set(value)) != len(value):
            raise ValueError("follow-up days must be distinct, each from 1 to 365")
        return sorted(value)


class LabelsConfig(Labels):
    """`[labels.*]`: what stations show for identifiers; stage names are the stages' own."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LabConfig(_Strict):
    lab: LabInfo
    lines: list[LineConfig] = []
    stores: list[StoreConfig] = []
    stages: list[StageConfig] = Field(min_length=1)
    routes: list[RouteConfig] = Field(min_length=1)
    reasons: list[ReasonConfig] = []
    stations: list[StationConfig] = []
    shifts: list[ShiftConfig] = []
    breakage_costs: BreakageCosts = BreakageCosts()
    labels: LabelsConfig = LabelsConfig()
    catalogue: CatalogueConfig = CatalogueConfig()
    aftersales: AftersalesConfig = AftersalesConfig()
    kpi_targets: KpiTargets = KpiTargets()

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        stages = {stage.code for stage in self.stages}
        lines = {line.code for line in self.lines}
        problems: list[str] = []
        for name, codes in (
            ("stage", [s.code for s in self.stages]),
            ("route", [r.code for r in self.routes]),
            ("station", [s.name for s in self.stations]),
            ("store", [s.code for s in self.stores]),
            ("reason", [f"{r.kind}:{r.code}" for r in self.reasons]),
            ("shift", [s.name for s in self.shifts]),
        ):
            duplicates = sorted({code for code in codes if codes.count(code) > 1})
            if duplicates:
                problems.append(f"duplicate {name} codes: {', '.join(duplicates)}")
        for route in self.routes:
            for stage_code, minutes in route.steps:
                if stage_code not in stages:
                    problems.append(f"route {route.code}: unknown stage {stage_code!r}")
                if minutes <= 0:
                    problems.append(f"route {route.code}: minutes for {stage_code} must be > 0")
        for reason in self.reasons:
            if reason.return_stage is not None and reason.return_stage not in stages:
                problems.append(f"reason {reason.code}: unknown stage {reason.return_stage!r}")
        for station in self.stations:
            if station.stage not in stages:
                problems.append(f"station {station.name}: unknown stage {station.stage!r}")
            if station.line is not None and station.line not in lines:
                problems.append(f"station {station.name}: unknown line {station.line!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def check_store_profiles(config: LabConfig, known: Collection[str]) -> None:
    """ValueError naming each store whose tolerance profile the tolerance file lacks."""
    unknown = [
        f"store {store.code}: unknown tolerance profile {store.tolerance_profile!r}"
        for store in config.stores
        if store.tolerance_profile is not None and store.tolerance_profile not in known
    ]
    if unknown:
        raise ValueError(f"{'; '.join(unknown)} (known: {', '.join(sorted(known))})")


def load_lab_config(path: Path, known_profiles: Collection[str] | None = None) -> LabConfig:
    """The file validated, and its stores' profiles checked when the known ones are given."""
    with path.open("rb") as file:
        config = LabConfig.model_validate(tomllib.load(file))
    if known_profiles is not None:
        check_store_profiles(config, known_profiles)
    return config
