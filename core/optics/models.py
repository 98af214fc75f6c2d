"""Prescription and check-result models, shared by the server and the offline QC station.

Sign conventions (one representation internally; `prism` + `base` input is converted):
- `prism_h` is horizontal prism in Δ, positive = base out, negative = base in;
- `prism_v` is vertical prism in Δ, positive = base up, negative = base down;
- `base` given as a number is the 360° notation seen facing the patient: 90 is up for both
  eyes, 0 is base in for the right eye and base out for the left eye.
"""

import math
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Eye = Literal["R", "L"]
Design = Literal["SV", "MF", "PAL"]
EYES: tuple[Eye, ...] = ("R", "L")

# Named prism bases as (horizontal, vertical) unit components in the signs above.
NAMED_BASES: dict[str, tuple[float, float]] = {
    "in": (-1.0, 0.0),
    "out": (1.0, 0.0),
    "up": (0.0, 1.0),
    "down": (0.0, -1.0),
}


class _Input(BaseModel):
    # Strict: "-2.00" as a string or 90.0 as an axis is a wrong type; unknown keys are typos.
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


# What a lensmeter or a ruler can read; beyond it a value is an error, and a huge one would
# overflow the comparisons (1e308 + 1e308 is Infinity).
Dioptres = Annotated[float, Field(ge=-40, le=40)]
PrismDioptres = Annotated[float, Field(ge=-40, le=40)]
Millimetres = Annotated[float, Field(ge=-100, le=100)]


class Powers(_Input):
    """Sphero-cylindrical powers in dioptres, in plus or minus cylinder form."""

    sph: Dioptres | None = None
    cyl: Dioptres | None = None
    axis: Annotated[int, Field(ge=0, le=180)] | None = None
    add: Annotated[float, Field(ge=0, le=40)] | None = None

    @field_validator("axis")
    @classmethod
    def _zero_is_180(cls, axis: int | None) -> int | None:
        return 180 if axis == 0 else axis

    @model_validator(mode="after")
    def _complete_cylinder(self) -> Self:
        if self.cyl is not None and self.sph is None:
            raise ValueError("cyl needs sph")
        if self.cyl and self.axis is None:
            raise ValueError("a non-zero cyl needs an axis")
        return self


class EyeRx(Powers):
    """One lens: powers, prism at the PRP, its position and thickness (mm)."""

    prism_h: PrismDioptres | None = None
    prism_v: PrismDioptres | None = None
    pd: Annotated[float, Field(gt=0, le=100)] | None = None  # monocular: bridge centre to PRP
    prp_height: Millimetres | None = None
    fitting_height: Millimetres | None = None  # fitting cross (PAL) or segment top (MF)
    ct: Annotated[float, Field(gt=0, le=100)] | None = None
    verification: Powers | None = None  # compensated powers from the freeform design software

    def prism(self) -> tuple[float, float] | None:
        """(horizontal, vertical) prism; a missing component of a given prism counts as 0."""
        if self.prism_h is None and self.prism_v is None:
            return None
        return (self.prism_h or 0.0, self.prism_v or 0.0)


class PairRx(_Input):
    """A job's lenses; `pd` is the binocular PD (mm), else the sum of the monocular PDs."""

    R: EyeRx | None = None
    L: EyeRx | None = None
    pd: Annotated[float, Field(gt=0, le=200)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _prism_components(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        converted = dict(data)
        for eye in EYES:
            lens = data.get(eye)
            if isinstance(lens, dict) and ("prism" in lens or "base" in lens):
                converted[eye] = _with_prism_components(eye, lens)
        return converted

    def lens(self, eye: Eye) -> EyeRx | None:
        return self.R if eye == "R" else self.L

    def binocular_pd(self) -> float | None:
        if self.pd is not None:
            return self.pd
        if self.R is None or self.L is None or self.R.pd is None or self.L.pd is None:
            return None
        return self.R.pd + self.L.pd


def _with_prism_components(eye: Eye, lens: dict[str, Any]) -> dict[str, Any]:
    """Replace `prism` + `base` by `prism_h` + `prism_v` (the base direction depends on the eye)."""
    converted = dict(lens)
    amount, base = converted.pop("prism", None), converted.pop("base", None)
    if "prism_h" in lens or "prism_v" in lens:
        raise ValueError(f"{eye}: give prism + base or prism_h/prism_v, not both")
    if not isinstance(amount, int | float) or isinstance(amount, bool) or amount < 0:
        raise ValueError(f"{eye}: prism must be a non-negative number of prism dioptres")
    if isinstance(base, str) and base in NAMED_BASES:
        horizontal, vertical = NAMED_BASES[base]
    elif isinstance(base, int | float) and not isinstance(base, bool) and 0 <= base <= 360:
        # Angle 0 points nasally for R (base in) and temporally for L (base out).
        nasal_sign = -1.0 if eye == "R" else 1.0
        angle = math.radians(base)
        horizontal, vertical = nasal_sign * math.cos(angle), math.sin(angle)
    else:
        raise ValueError(f"{eye}: base must be in/out/up/down or an angle 0–360")
    converted["prism_h"], converted["prism_v"] = amount * horizontal, amount * vertical
    return converted


class CheckRequest(_Input):
    """One `check-lens` input line; no profile means the tolerance file's default."""

    profile: str | None = None
    design: Design
    ordered: PairRx
    measured: PairRx


class Check(BaseModel):
    """One judged quantity. `eye` is None for pair checks; units: D, degrees, Δ or mm."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    eye: Eye | None
    field: str
    ordered: float
    measured: float
    deviation: float
    tolerance: float
    passed: bool = Field(alias="pass")
    note: str | None = None


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    passed: bool = Field(alias="pass")
    checks: list[Check]

    def as_json(self) -> dict[str, Any]:
        """The `check-lens` output shape: `note` only where there is one."""
        checks = [
            {
                key: value
                for key, value in check.model_dump(by_alias=True).items()
                if key != "note" or value is not None
            }
            for check in self.checks
        ]
        return {"pass": self.passed, "checks": checks}


class PrescriptionLine(Protocol):
    """One eye of a job's prescription as the server stores it and the station's card shows it."""

    @property
    def eye(self) -> str: ...
    @property
    def sph(self) -> float: ...
    @property
    def cyl(self) -> float: ...
    @property
    def axis(self) -> int | None: ...
    @property
    def add(self) -> float | None: ...
    @property
    def prism(self) -> float | None: ...
    @property
    def prism_base(self) -> str | None: ...
    @property
    def mono_pd(self) -> float | None: ...
    @property
    def fitting_height(self) -> float | None: ...
    @property
    def center_thickness(self) -> float | None: ...
    @property
    def verify_sph(self) -> float | None: ...
    @property
    def verify_cyl(self) -> float | None: ...
    @property
    def verify_axis(self) -> int | None: ...


def ordered_pair(lines: Iterable[PrescriptionLine]) -> PairRx:
    """The ordered lenses of a prescription, as the tolerance engine reads them."""
    return PairRx.model_validate({str(line.eye): _ordered_lens(line) for line in lines})


def _ordered_lens(line: PrescriptionLine) -> dict[str, Any]:
    lens: dict[str, Any] = {"sph": line.sph, "cyl": line.cyl}
    optional = {
        "axis": line.axis,
        "add": line.add,
        "pd": line.mono_pd,
        "fitting_height": line.fitting_height,
        "ct": line.center_thickness,
    }
    lens.update({key: value for key, value in optional.items() if value is not None})
    if line.verify_sph is not None:
        verification = {"sph": line.verify_sph, "cyl": line.verify_cyl, "axis": line.verify_axis}
        lens["verification"] = {k: v for k, v in verification.items() if v is not None}
    if line.prism is not None and line.prism_base is not None:
        base = line.prism_base
        lens["prism"] = line.prism
        lens["base"] = int(base) if base.isdigit() else base
    return lens
