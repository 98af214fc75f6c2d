"""Tolerance profiles (config/tolerances.toml) and the one band lookup every table uses.

A profile may name another in `extends`: its tables are merged over the parent's, key by
key; a band list given in the child replaces the parent's list whole.
"""

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from core.optics.models import Design

DEFAULT_PROFILES_PATH = Path(__file__).resolve().parents[2] / "config" / "tolerances.toml"

# Powers come in 1/8 D steps and percentages give values like 0.135: comparing with this
# slack makes 6.50 land inside "…6.50" and a 0.13 deviation pass ±0.13 despite float error,
# and is far below any step that matters.
EPS = 1e-6


class ProfileError(ValueError):
    """A tolerance file or profile name that cannot be used."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Config):
    """Applies to |power| up to `upto` (inclusive unless `inclusive = false`; none: no limit).

    The tolerance is `tol` or `percent` of |ordered power|; `skip` bands are not checked.
    """

    upto: float | None = None
    inclusive: bool = True
    tol: float | None = None
    percent: float | None = None
    skip: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> Self:
        rules = (self.tol is not None) + (self.percent is not None) + self.skip
        if rules != 1:
            raise ValueError("a band needs exactly one of tol, percent or skip")
        return self


def _ordered_table(bands: list[Band]) -> list[Band]:
    limits = [band.upto for band in bands]
    if not bands or limits[-1] is not None:
        raise ValueError("the last band must have no `upto` so every power finds a band")
    if any(limit is None for limit in limits[:-1]) or limits[:-1] != sorted(set(limits[:-1])):
        raise ValueError("band `upto` limits must rise strictly")
    return bands


BandTable = Annotated[list[Band], AfterValidator(_ordered_table)]


def band_tolerance(table: list[Band], power: float) -> float | None:
    """The tolerance for `power` (sign ignored), or None where the table says not to check."""
    magnitude = abs(power)
    band = next(
        band
        for band in table
        if band.upto is None
        or magnitude < band.upto - EPS
        or (band.inclusive and magnitude <= band.upto + EPS)
    )
    if band.skip:
        return None
    return band.tol if band.tol is not None else magnitude * band.percent / 100


def within(deviation: float, tolerance: float) -> bool:
    return deviation <= tolerance + EPS


class PowerTables(_Config):
    sv_mf: BandTable
    pal: BandTable

    def for_design(self, design: Design) -> list[Band]:
        return self.pal if design == "PAL" else self.sv_mf


class BandTables(_Config):
    sph: PowerTables  # by |power| of the meridian of highest absolute power
    cyl: PowerTables  # by |cyl|
    axis: BandTable  # degrees, by |cyl|
    add: BandTable  # by add


class Imbalance(_Config):
    """Prism imbalance up to `max_power` in the meridian; above it a position rule in mm."""

    prism: float
    max_power: float
    otherwise_mm: float


class Profile(_Config):
    description: str = ""
    bands: BandTables
    prism: float  # Δ, unwanted prism at the PRP
    prp_location_mm: float
    prism_rule: Literal["or", "and"]  # prism and PRP location: either suffices, or both needed
    vertical_imbalance: Imbalance
    horizontal_imbalance: Imbalance
    fitting_height_mm: float
    fitting_height_pair_mm: float
    ct_mm: float
    use_verification_power: bool


class ToleranceFile(_Config):
    default: str
    profiles: dict[str, Profile]

    @model_validator(mode="after")
    def _default_exists(self) -> Self:
        self.profile(self.default)
        return self

    def profile(self, name: str | None) -> Profile:
        name = self.default if name is None else name
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles))
            raise ProfileError(f"unknown profile {name!r} (known: {known})") from None


def load_profiles(path: Path = DEFAULT_PROFILES_PATH) -> ToleranceFile:
    """Read and validate a tolerance file; raises OSError or ValueError (incl. ProfileError)."""
    with path.open("rb") as file:
        raw = tomllib.load(file)
    profiles = raw.get("profiles", {})
    resolved = {name: _resolve(name, profiles, ()) for name in profiles}
    return ToleranceFile.model_validate({**raw, "profiles": resolved})


def _resolve(name: str, profiles: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
    if name in seen:
        raise ProfileError(f"profiles extend each other in a loop: {' → '.join((*seen, name))}")
    if name not in profiles:
        raise ProfileError(f"profile {seen[-1]!r} extends unknown profile {name!r}")
    own = dict(profiles[name])
    parent = own.pop("extends", None)
    return own if parent is None else _merge(_resolve(parent, profiles, (*seen, name)), own)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        inherited = base.get(key)
        both_tables = isinstance(value, dict) and isinstance(inherited, dict)
        merged[key] = _merge(inherited, value) if both_tables else value
    return merged
