"""The frame's lens shape (a DCS trace) as stored with a job, and its outline for drawing.

A trace is polar: radii from the box centre in 0.01 mm, at equal angles counter-clockwise
from 3 o'clock as the wearer's right lens is seen from the front, or at explicit angles.
A side traced once serves both eyes, the left mirrored. The order page, the ticket and the
station card all draw it from `outline`, so they show one shape.
"""

import math
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Frame radii lie between a few mm and about 45 mm; DCS traces carry 100 to 1000+ points.
# Numbers are strict (no "2643" strings, no 26.43 for a radius); JSON arrays read as tuples.
Radius = Annotated[int, Field(ge=100, le=6000, strict=True)]
Angle = Annotated[float, Field(ge=0, lt=360, allow_inf_nan=False, strict=True)]
MAX_POINTS = 10_000


class EyeTrace(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    radii: tuple[Radius, ...] = Field(min_length=8, max_length=MAX_POINTS)
    angles: tuple[Angle, ...] | None = Field(
        default=None, description="Explicit angles in degrees; None: equiangular"
    )

    @model_validator(mode="after")
    def _angles_match(self) -> Self:
        if self.angles is not None and len(self.angles) != len(self.radii):
            raise ValueError(f"{len(self.angles)} angles for {len(self.radii)} radii")
        return self

    def point_angles(self) -> tuple[float, ...]:
        if self.angles is not None:
            return self.angles
        step = 360 / len(self.radii)
        return tuple(index * step for index in range(len(self.radii)))


class Trace(BaseModel):
    """Right and left lens shapes; a frame traced on one side has the same shape on both."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    right: EyeTrace | None = None
    left: EyeTrace | None = None

    @model_validator(mode="after")
    def _one_side(self) -> Self:
        if self.right is None and self.left is None:
            raise ValueError("a trace needs a right or a left side")
        return self

    def side(self, eye: str) -> tuple[EyeTrace, bool]:
        """The shape for "R" or "L", and whether it is mirrored from the other side."""
        own, other = (self.right, self.left) if eye == "R" else (self.left, self.right)
        if own is not None:
            return own, False
        assert other is not None  # the validator guarantees one side
        return other, True


Point = tuple[float, float]


def outline(trace: EyeTrace, mirrored: bool = False) -> list[Point]:
    """The shape in mm around its box centre, y up, as seen from the front."""
    points = []
    for radius, angle in zip(trace.radii, trace.point_angles(), strict=True):
        theta = math.radians(angle)
        x = radius / 100 * math.cos(theta)
        points.append((-x if mirrored else x, radius / 100 * math.sin(theta)))
    return points


def box(points: list[Point]) -> tuple[float, float]:
    """Horizontal (A) and vertical (B) box size in mm."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return max(xs) - min(xs), max(ys) - min(ys)


def pair_outlines(trace: Trace, bridge_mm: float = 18.0) -> dict[str, list[Point]]:
    """Both lenses placed as worn and seen from the front (right lens on the viewer's left),
    in mm with y down, so a drawing surface can scale them as they are."""
    shapes = {eye: outline(*trace.side(eye)) for eye in ("R", "L")}
    # The right lens seen from the front has its nasal side toward the viewer's right.
    half_gap = bridge_mm / 2
    placed: dict[str, list[Point]] = {}
    for eye, points in shapes.items():
        xs = [x for x, _ in points]
        shift = -half_gap - max(xs) if eye == "R" else half_gap - min(xs)
        placed[eye] = [(x + shift, -y) for x, y in points]
    return placed


def svg(trace: Trace, width_px: int = 240, stroke: str = "#0f172a") -> str:
    """Both lens shapes as an inline SVG (for the order page and the station card)."""
    placed = pair_outlines(trace)
    every = [point for points in placed.values() for point in points]
    min_x, max_x = min(x for x, _ in every), max(x for x, _ in every)
    min_y, max_y = min(y for _, y in every), max(y for _, y in every)
    margin = 2.0
    view_w, view_h = max_x - min_x + 2 * margin, max_y - min_y + 2 * margin
    height_px = round(width_px * view_h / view_w)
    paths = "".join(
        f'<path data-eye="{eye}" d="M{" L".join(f"{x:.2f},{y:.2f}" for x, y in points)} Z" />'
        for eye, points in placed.items()
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_px}" height="{height_px}"'
        f' viewBox="{min_x - margin:.2f} {min_y - margin:.2f} {view_w:.2f} {view_h:.2f}"'
        f' role="img" aria-label="Lens shape"><g fill="none" stroke="{stroke}"'
        f' stroke-width="0.6">{paths}</g></svg>'
    )
