"""Typed reading of the job fields of a DCS record, and the formatting to write them back.

Chiral labels carry "right;left" (an empty side is None); the frame and lens labels (HBOX,
VBOX, FED, DIA, LIND, LMATID, LNAM, LDNAM, ACOAT) may give one value for both eyes. Numbers
are plain decimals (no exponent, no NaN). AX is a whole degree 0…180. PRVA (prism base,
degrees counter-clockwise from 3 o'clock as the wearer is seen from the front) becomes
in/out/up/down when it is 0, 90, 180 or 270, else the degrees rounded to a whole one; a PRVM
of 0 is no prism. Vendor labels `_LT_<NAME>` are LensTrack's own extras. A known label given
twice, or a malformed value, raises `DcsError` at that line.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from .records import DcsError, Field, Record

EYES = ("R", "L")
VENDOR_PREFIX = "_LT_"
_DECIMAL = re.compile(r"[+-]?(\d{1,6}(\.\d{0,6})?|\.\d{1,6})")
# The base toward the nose is at 0° for the right eye and at 180° for the left.
BASES = {
    "R": {0: "in", 90: "up", 180: "out", 270: "down"},
    "L": {0: "out", 90: "up", 180: "in", 270: "down"},
}
# Lens and frame labels some systems give once for the pair; Rx labels always need both sides.
ONE_FOR_BOTH = frozenset({"HBOX", "VBOX", "FED", "DIA", "LIND", "LMATID", "LNAM", "LDNAM", "ACOAT"})
READ_LABELS = frozenset(
    {
        "JOB", "SPH", "CYL", "AX", "ADD", "PRVM", "PRVA", "IPD", "NPD", "SEGHT", "OCHT",
        "LIND", "LMATID", "LNAM", "LDNAM", "FTYP", "ETYP", "HBOX", "VBOX", "DBL", "FED",
        "DIA", "TINT", "ACOAT",
    }
)  # fmt: skip


@dataclass(frozen=True)
class EyeFields:
    sph: float | None = None
    cyl: float | None = None
    axis: int | None = None
    add: float | None = None
    prism: float | None = None
    prism_base: str | None = None
    mono_pd: float | None = None  # IPD: distance, monocular
    near_pd: float | None = None  # NPD
    seg_height: float | None = None  # SEGHT
    oc_height: float | None = None  # OCHT
    lens_index: float | None = None  # LIND
    material_id: str | None = None  # LMATID
    lens_name: str | None = None  # LNAM
    design_name: str | None = None  # LDNAM
    hbox: float | None = None
    vbox: float | None = None
    fed: float | None = None
    dia: float | None = None
    acoat: str | None = None


@dataclass(frozen=True)
class JobFields:
    job: str
    right: EyeFields
    left: EyeFields
    dbl: float | None = None
    frame_type: str | None = None  # FTYP, as written
    edge_type: str | None = None  # ETYP, as written
    tint: str | None = None
    vendor: dict[str, str] = field(default_factory=dict)  # `_LT_` labels, prefix removed
    lines: dict[str, int] = field(default_factory=dict)  # label → line, for later errors

    def eye(self, eye: str) -> EyeFields:
        return self.right if eye == "R" else self.left


def read_job(record: Record) -> JobFields:
    fields: dict[str, Field] = {}
    for item in record.fields:
        if item.label in READ_LABELS or item.label.startswith(VENDOR_PREFIX):
            if item.label in fields:
                first = fields[item.label].line
                raise DcsError(item.line, f"{item.label} given twice (first at line {first})")
            fields[item.label] = item
    reader = _Reader(fields)
    eyes: dict[str, dict[str, Any]] = {eye: {} for eye in EYES}
    for name, label in (
        ("sph", "SPH"), ("cyl", "CYL"), ("add", "ADD"), ("mono_pd", "IPD"),
        ("near_pd", "NPD"), ("seg_height", "SEGHT"), ("oc_height", "OCHT"),
        ("lens_index", "LIND"), ("hbox", "HBOX"), ("vbox", "VBOX"), ("fed", "FED"),
        ("dia", "DIA"),
    ):  # fmt: skip
        for eye, value in zip(EYES, reader.chiral(label), strict=True):
            eyes[eye][name] = None if value is None else reader.number(label, value)
    for name, label in (
        ("material_id", "LMATID"), ("lens_name", "LNAM"), ("design_name", "LDNAM"),
        ("acoat", "ACOAT"),
    ):  # fmt: skip
        for eye, value in zip(EYES, reader.chiral(label), strict=True):
            eyes[eye][name] = value
    for eye, value in zip(EYES, reader.chiral("AX"), strict=True):
        eyes[eye]["axis"] = None if value is None else reader.axis(value)
    magnitudes, angles = reader.chiral("PRVM"), reader.chiral("PRVA")
    for eye, magnitude, angle in zip(EYES, magnitudes, angles, strict=True):
        prism = None if magnitude is None else reader.number("PRVM", magnitude)
        if prism:
            if angle is None:
                raise DcsError(reader.line("PRVM"), f"PRVM for {eye} without its PRVA angle")
            eyes[eye] |= {"prism": prism, "prism_base": prism_base(eye, reader.angle(angle))}
    dbl = fields.get("DBL")
    return JobFields(
        job=fields["JOB"].value,
        right=EyeFields(**eyes["R"]),
        left=EyeFields(**eyes["L"]),
        dbl=None if dbl is None else reader.number("DBL", dbl.value),
        frame_type=reader.text("FTYP"),
        edge_type=reader.text("ETYP"),
        tint=reader.text("TINT"),
        vendor={
            label.removeprefix(VENDOR_PREFIX): item.value
            for label, item in fields.items()
            if label.startswith(VENDOR_PREFIX)
        },
        lines={label: item.line for label, item in fields.items()},
    )


def prism_base(eye: str, degrees: float) -> str:
    """in/out/up/down for exactly 0, 90, 180 or 270; else whole degrees as the order takes them."""
    if degrees in BASES[eye]:
        return BASES[eye][int(degrees)]
    return str(round(degrees) % 360)


def prism_angle(eye: str, base: str) -> int:
    """The PRVA degrees of a base written as in/out/up/down or as degrees."""
    named = {name: angle for angle, name in BASES[eye].items()}
    return named[base] if base in named else int(base)


def number_text(value: float | None, decimals: int = 2) -> str:
    return "" if value is None else f"{value:.{decimals}f}"


def chiral_field(label: str, right: str, left: str) -> Field:
    return Field(label, f"{right};{left}")


class _Reader:
    def __init__(self, fields: dict[str, Field]) -> None:
        self.fields = fields

    def line(self, label: str) -> int:
        return self.fields[label].line

    def chiral(self, label: str) -> tuple[str | None, str | None]:
        item = self.fields.get(label)
        if item is None:
            return None, None
        parts = item.parts
        if len(parts) == 1 and label in ONE_FOR_BOTH:
            parts = parts * 2
        if len(parts) != 2:
            raise DcsError(item.line, f"{label}: expected 'right;left', got {item.value[:40]!r}")
        right, left = (part.strip() or None for part in parts)
        return right, left

    def text(self, label: str) -> str | None:
        item = self.fields.get(label)
        return None if item is None else item.value

    def number(self, label: str, text: str) -> float:
        if not _DECIMAL.fullmatch(text):
            raise DcsError(self.line(label), f"{label}: {text[:20]!r} is not a number")
        return float(text)

    def axis(self, text: str) -> int:
        value = self.number("AX", text)
        if value != int(value) or not 0 <= value <= 180:
            raise DcsError(self.line("AX"), f"AX: {text!r} is not a whole degree 0…180")
        return int(value)

    def angle(self, text: str) -> float:
        value = self.number("PRVA", text)
        if not 0 <= value < 360:
            raise DcsError(self.line("PRVA"), f"PRVA: {text!r} is not an angle 0…<360")
        return value
