"""The one reading model every lensmeter format decodes to, and the checks applied to it.

Sign conventions: cylinder as the device reports it (minus or plus form is not transposed).
Prism is split into signed components per eye, in prism dioptres: `prism_h` > 0 is base out
(temporal), < 0 base in (nasal); `prism_v` > 0 is base up, < 0 base down.

Axis: 0–180 is accepted; with a cylinder, 0 is the same meridian as 180 and is normalised to
180 (the written form); without a cylinder the axis means nothing and is kept as sent.
"""

import math
from typing import Any, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

Eye = Literal["R", "L"]
EYES: tuple[Eye, Eye] = ("R", "L")
M = TypeVar("M", bound=BaseModel)


class FrameError(ValueError):
    """A frame is malformed or out of range; the message is the reason reported."""


class EyeReading(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    sph: float = Field(ge=-30, le=30)
    cyl: float = Field(0.0, ge=-15, le=15)
    axis: int | None = Field(None, ge=0, le=180)
    add: float | None = Field(None, ge=0, le=5)
    prism_h: float | None = Field(None, ge=-20, le=20, description="Δ, + base out, − base in")
    prism_v: float | None = Field(None, ge=-20, le=20, description="Δ, + base up, − base down")

    @field_validator("axis")
    @classmethod
    def _zero_is_180(cls, axis: int, info: ValidationInfo) -> int:
        return 180 if axis == 0 and info.data.get("cyl", 0) != 0 else axis

    @model_validator(mode="after")
    def _axis_with_cylinder(self) -> Self:
        if self.cyl != 0 and self.axis is None:
            raise ValueError("a cylinder needs an axis")
        return self


class LensmeterReading(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    R: EyeReading | None = None
    L: EyeReading | None = None
    pd: float | None = Field(None, ge=20, le=90, description="mm")
    job: str | None = None  # DCS carries the job the inspected lenses belong to
    source_format: str
    raw: bytes = Field(b"", repr=False, exclude=True)

    @model_validator(mode="after")
    def _an_eye(self) -> Self:
        if self.R is None and self.L is None:
            raise ValueError("no eye measured")
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """`{"R": {...} | None, "L": {...} | None}` plus "pd" and "job" when present."""
        result: dict[str, Any] = {
            eye: None if reading is None else reading.model_dump(exclude_none=True)
            for eye, reading in (("R", self.R), ("L", self.L))
        }
        result.update(self.model_dump(include={"pd", "job"}, exclude_none=True))
        return result


def eye_records(reading: LensmeterReading) -> list[tuple[str, Eye, tuple[float, ...]]]:
    """What a per-eye encoder writes, in device order: ("power", eye, (sph, cyl, axis)), then
    ("add", eye, (add,)) and ("prism", eye, (h, v)) when the eye has them."""
    records: list[tuple[str, Eye, tuple[float, ...]]] = []
    for eye in EYES:
        lens = getattr(reading, eye)
        if lens is None:
            continue
        records.append(("power", eye, (lens.sph, lens.cyl, lens.axis or 0)))
        if lens.add is not None:
            records.append(("add", eye, (lens.add,)))
        if lens.prism_h is not None or lens.prism_v is not None:
            records.append(("prism", eye, (lens.prism_h or 0, lens.prism_v or 0)))
    return records


class FrameRejected(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: str
    raw: bytes = Field(repr=False)
    source_format: str


ParseResult = LensmeterReading | FrameRejected


def number(text: str, what: str) -> float:
    """A plain decimal like `-01.25`; refuses `nan`, `1e3` and the like that float() takes."""
    stripped = text.strip()
    body = stripped.lstrip("+-")
    if not body or len(stripped) - len(body) > 1 or not body.replace(".", "", 1).isdigit():
        raise FrameError(f"{what}: not a number: {text!r}")
    value = float(stripped)
    if not math.isfinite(value):
        raise FrameError(f"{what}: not finite: {text!r}")
    return value


class ReadingBuilder:
    """Collects fields from a frame in any order, refusing duplicates, then validates once."""

    def __init__(self, source_format: str) -> None:
        self.source_format = source_format
        self.eyes: dict[Eye, dict[str, float | int]] = {"R": {}, "L": {}}
        self.extra: dict[str, float | str] = {}

    def set(self, eye: Eye, field: str, value: float | int) -> None:
        if field in self.eyes[eye]:
            raise FrameError(f"{eye}.{field}: given twice")
        self.eyes[eye][field] = value

    def set_extra(self, field: str, value: float | str) -> None:
        if field in self.extra:
            raise FrameError(f"{field}: given twice")
        self.extra[field] = value

    def build(self, raw: bytes) -> LensmeterReading:
        eyes: dict[str, EyeReading] = {}
        for eye, fields in self.eyes.items():
            if not fields:
                continue
            if "sph" not in fields:
                raise FrameError(f"{eye}: {', '.join(sorted(fields))} without a sphere")
            eyes[eye] = _validated(EyeReading, fields, eye)
        if not eyes:
            raise FrameError("no eye measured")
        values = {**eyes, **self.extra, "source_format": self.source_format, "raw": raw}
        return _validated(LensmeterReading, values, None)


def _validated(model: type[M], values: dict[str, Any], eye: str | None) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in (eye, *first["loc"]) if part is not None)
        got = f" (got {first['input']!r})" if first["loc"] else ""
        raise FrameError(f"{field or 'reading'}: {first['msg']}{got}") from None
