"""Lens tolerance checks (ANSI Z80.1 and store profiles): pure functions over pydantic models.

Only `load_profiles` reads a file. Shared by the server and the offline QC station, so it
imports neither.
"""

from core.optics.checks import check_pair
from core.optics.models import (
    Check,
    CheckRequest,
    CheckResult,
    Design,
    Eye,
    EyeRx,
    PairRx,
    Powers,
    PrescriptionLine,
    ordered_pair,
)
from core.optics.profiles import (
    DEFAULT_PROFILES_PATH,
    Band,
    Profile,
    ProfileError,
    ToleranceFile,
    band_tolerance,
    load_profiles,
)

__all__ = [
    "DEFAULT_PROFILES_PATH",
    "Band",
    "Check",
    "CheckRequest",
    "CheckResult",
    "Design",
    "Eye",
    "EyeRx",
    "PairRx",
    "Powers",
    "PrescriptionLine",
    "Profile",
    "ProfileError",
    "ToleranceFile",
    "band_tolerance",
    "check_pair",
    "load_profiles",
    "ordered_pair",
]
