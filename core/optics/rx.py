"""Sphero-cylinder arithmetic: transposition, axis differences, power in a meridian."""

import math
from typing import NamedTuple


class SphCyl(NamedTuple):
    sph: float
    cyl: float
    axis: int | None  # None only for cyl 0 written without an axis


def normalize_axis(axis: int) -> int:
    """Keep an axis within 1–180 (0 and 180 are the same meridian)."""
    return (axis - 1) % 180 + 1


def transpose(rx: SphCyl) -> SphCyl:
    """The same lens in the other cylinder form: SPH + CYL, −CYL, AX ± 90."""
    axis = None if rx.axis is None else normalize_axis(rx.axis + 90)
    return SphCyl(rx.sph + rx.cyl, -rx.cyl, axis)


def in_form_of(rx: SphCyl, reference: SphCyl) -> SphCyl:
    """`rx` in the cylinder form of `reference` (minus cylinder when the reference has none)."""
    wrong_sign = rx.cyl < 0 if reference.cyl > 0 else rx.cyl > 0
    return transpose(rx) if wrong_sign else rx


def axis_difference(first: int, second: int) -> int:
    """Degrees between two axes, wrapping at 180: 179 vs 2 is 3."""
    difference = abs(first - second) % 180
    return min(difference, 180 - difference)


def meridian_power(rx: SphCyl, meridian: int) -> float:
    """Power in a meridian (degrees): SPH + CYL · sin²(meridian − axis)."""
    if rx.axis is None:
        return rx.sph
    return rx.sph + rx.cyl * math.sin(math.radians(meridian - rx.axis)) ** 2
