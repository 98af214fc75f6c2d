"""Human names for the lab's identifiers (`semi_rimless`, `a_mm`, `blue_filter`…), one table per
kind, so a person at a station never reads a raw identifier.

The tables come from the lab config (`[labels.*]`); the server adds each stage's name and
serves them to stations, which cache them for offline use. An identifier no table names is
shown made readable: "semi_rimless" → "Semi rimless".
"""

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Label = Annotated[str, StringConstraints(min_length=1, max_length=120)]


class Labels(BaseModel):
    """The lab config's tables: identifier → what a person reads."""

    model_config = ConfigDict(frozen=True)

    designs: dict[str, Label] = {}  # lens designs: SV, PAL, MF
    treatments: dict[str, Label] = {}  # lens options: hard_coat, ar, blue_filter…
    frame_types: dict[str, Label] = {}  # full_rim, semi_rimless, rimless
    frame: dict[str, Label] = {}  # frame measurements: a_mm, b_mm, dbl_mm, ed_mm…
    measurements: dict[str, Label] = {}  # Rx and QC quantities: sph, axis, prism_v_imbalance…


class StationLabels(Labels):
    """What a station caches (`GET /api/stations/me/labels`): the tables and every stage's name."""

    stages: dict[str, Label] = {}


def readable(identifier: str) -> str:
    """An identifier no table names, for a person: underscores as spaces, capitalised."""
    text = identifier.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def human(table: Mapping[str, str], identifier: str) -> str:
    """The table's name for the identifier, else the identifier made readable."""
    return table.get(identifier) or readable(identifier)
