"""Realistic DCS job files: frame shapes traced at 360 points, vendor labels of other systems.

The demo's files in config/demo-dcs/ are these, written by
`.venv/bin/python -m tests.drivers.dcs_samples config/demo-dcs` (a test checks they match).
"""

import math
import sys
from pathlib import Path

from drivers.dcs import Field, Record, TraceBlock, write

DEMO_DIR = Path(__file__).resolve().parents[2] / "config" / "demo-dcs"


def frame_radii(
    a_mm: float, b_mm: float, squareness: float, points: int = 360, nasal_tilt: float = 0.0
) -> tuple[int, ...]:
    """Radii (0.01 mm) of a superellipse box a × b: squareness 2 is an oval, 4 and more a
    rounded rectangle; `nasal_tilt` narrows the nasal-lower corner a little as real frames do."""
    radii = []
    for index in range(points):
        theta = 2 * math.pi * index / points
        x = abs(math.cos(theta)) / (a_mm / 2)
        y = abs(math.sin(theta)) / (b_mm / 2)
        radius = (x**squareness + y**squareness) ** (-1 / squareness)
        radius *= 1 - nasal_tilt * max(0.0, math.cos(theta)) * max(0.0, -math.sin(theta))
        radii.append(round(radius * 100))
    return tuple(radii)


def fields(text: str) -> list[Field]:
    return [Field(*line.split("=", 1)) for line in text.strip().splitlines()]


def trace(side: str, radii: tuple[int, ...], explicit_angles: bool = False) -> TraceBlock:
    if not explicit_angles:
        return TraceBlock(side, radii)
    angles = tuple(round(36000 * index / len(radii)) for index in range(len(radii)))
    return TraceBlock(side, radii, angles, "U")


RECTANGLE = frame_radii(52, 36, 5, nasal_tilt=0.12)
OVAL = frame_radii(50, 38, 2.4)
ROUND = frame_radii(47, 44, 2.1)

THREE_JOBS = [
    Record(
        (
            *fields("""
JOB=DCS-24001
_LT_STORE=NORTH
_LT_PATIENT=NV-5521
SPH=-2.25;-2.00
CYL=-0.75;-0.50
AX=175;10
IPD=31.50;32.00
OCHT=21.00;21.00
LIND=1.60;1.60
LNAM=MR-8;MR-8
FTYP=1
ETYP=1
HBOX=52.00;52.00
VBOX=36.00;36.00
DBL=18.00
FED=55.20;55.20
_VWX_ORDERREF=A-99812
_VWX_COATING=HMC+
"""),
            trace("B", RECTANGLE),
            *fields("CIRC=145.20;145.20"),
        )
    ),
    Record(
        (
            *fields("""
JOB=DCS-24002
_LT_STORE=SOUTH
_LT_DESIGN=PAL
_LT_RUSH=1
SPH=+1.50;+1.75
CYL=-0.50;0.00
AX=90;0
ADD=2.25;2.25
IPD=30.50;31.00
SEGHT=19.50;19.50
LIND=1.67;1.67
LMATID=MR-7;MR-7
LDNAM=Freeform Comfort 14
FTYP=2
HBOX=50.00;50.00
VBOX=38.00;38.00
DBL=17.00
FED=53.00;53.00
ACOAT=AR-GREEN;AR-GREEN
_VWX_ORDERREF=A-99813
"""),
            trace("R", OVAL),
            trace("L", tuple(OVAL[(180 - index) % 360] for index in range(360))),
        )
    ),
    Record(
        (
            *fields("""
JOB=DCS-24003
_LT_STORE=NORTH
_LT_SURFACED=0
SPH=-1.00;-1.25
CYL=0.00;-0.25
AX=180;95
PRVM=1.00;1.00
PRVA=0;180
IPD=32.00;32.00
LIND=1.50;1.50
TINT=GREY 15%
"""),
            trace("R", ROUND),
        )
    ),
]

RIMLESS = Record(
    (
        *fields("""
JOB=DCS-24004
_LT_STORE=NORTH
_LT_DESIGN=MF
SPH=+0.75;+0.50
CYL=-0.25;-0.25
AX=85;95
ADD=1.75;1.75
IPD=31.00;31.00
SEGHT=17.00;17.00
LIND=1.59;1.59
LNAM=Polycarbonate;Polycarbonate
FTYP=3
ETYP=2
HBOX=50.00;50.00
VBOX=38.00;38.00
DBL=19.00
DRILLE=R;1;-22.50;2.00;1.40
DRILLE=R;2;22.50;2.00;1.40
_VWX_MOUNT=3-PIECE
"""),
        trace("R", OVAL, explicit_angles=True),
        *fields("""
BVD=12.00;12.00
PANTO=8.00
"""),
    )
)
SINGLE_VISION = Record(
    (
        *fields("""
REQ=FIL
JOB=DCS-24005
_LT_STORE=SOUTH
_LT_TRAY=4417
_LT_PROMISED=2026-12-18
SPH=-4.75;-5.25
CYL=-1.25;-1.00
AX=15;170
IPD=33.00;32.50
OCHT=20.00;20.00
LIND=1.67;1.67
LNAM=MR-7;MR-7
HBOX=54.00;54.00
VBOX=36.00;36.00
DBL=17.00
"""),
        trace("R", frame_radii(54, 36, 6, nasal_tilt=0.1)),
        trace("L", frame_radii(54, 36, 6, nasal_tilt=0.1)[::-1]),
    )
)
SAMPLES = {
    "three-jobs.dcs": THREE_JOBS,
    "rimless-bifocal.dcs": [RIMLESS],
    "single-vision.dcs": [SINGLE_VISION],
}


def sample_texts() -> dict[str, str]:
    return {name: write(records) for name, records in SAMPLES.items()}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEMO_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name, text in sample_texts().items():
        (target / name).write_bytes(text.encode("ascii"))
        print(target / name)
