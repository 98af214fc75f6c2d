"""Synthetic camera frames of job tickets, for the virtual camera, tests and the benchmark.

A ticket is a white card with a Code 128 of the job number and its text (optionally, as on
the lab's printed tickets, a DataMatrix of the same number beside it, its modules 1.1 times
the Code 128's), seen by a 1280×720 camera at one of four difficulty levels like the dev
corpora: L0 clean, L1 tilt/perspective/uneven light/blur/noise, L2 any rotation, heavier blur,
motion blur, glare; L3 (the hard corpus) any rotation, codes at 1.2–1.8 px per module, grey
ink, dim exposure, strong glare, 7–13 px motion blur and JPEG quality 40–70 (`HARD`). Sensor
noise is the corpora's, measured per level (`NOISE`, `HardRanges.noise`).
Everything is drawn from a seeded RNG so a held-out set is reproducible and was never looked
at while writing the decoder.
"""

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
import zxingcpp

FRAME_SIZE = (1280, 720)
# Bar height over the printed code's width (quiet zones included), as on the lab's tickets and
# in the dev corpus: short bars leave a tilted row little room to cross every bar, which is
# what defeats row scanners such as ZBar on tilted tickets.
BAR_HEIGHT = 0.3
INK = 35  # grey level of printed black: thermal print is not black
PAPER = 245
MODULE = 2  # ticket pixels per Code 128 module
MATRIX_MODULE = 1.1  # DataMatrix module over Code 128 module, as the ticket layout prints them


class Level(StrEnum):
    L0 = "L0"
    L1 = "L1"
    L2 = "L2"
    L3 = "L3"  # hard: the ranges of `HARD`


@dataclass(frozen=True)
class HardRanges:
    """What makes an L3 frame hard, each drawn uniformly from its range per frame."""

    module_px: tuple[float, float] = (1.2, 1.8)  # Code 128 module in frame pixels (mean)
    ink: tuple[float, float] = (95.0, 150.0)  # grey level of the print on 245 paper
    exposure: tuple[float, float] = (0.35, 0.6)  # dim: the whole frame's brightness scale
    glare: tuple[float, float] = (100.0, 200.0)  # added at the glare spot's centre
    glare_radius: tuple[float, float] = (80.0, 220.0)  # px, Gaussian sigma of the spot
    motion_px: tuple[float, float] = (7.0, 13.0)  # motion blur length
    motion_turn: float = 15.0  # degrees the motion may turn away from the bars' direction
    jpeg_quality: tuple[int, int] = (40, 70)
    # Sensor noise σ. Every hard dev frame has 16 (15.8–16.5 measured after JPEG); 6–12, as
    # drawn before that was measured, read 90.8 % of 3,974 hard frames against 80.4 % at 16.
    noise: tuple[float, float] = (16.0, 16.0)


HARD = HardRanges()
# Sensor noise σ of the other levels, as in frames-dev: every frame of a level has about the
# same (after JPEG 8.1–9.0 at L1, 11.8–13.0 at L2; L0's is below the JPEG's quantisation).
NOISE = {Level.L1: (8.5, 8.5), Level.L2: (13.0, 13.0)}


def render_ticket(
    job: str | None,
    rng: np.random.Generator,
    *,
    matrix: bool = False,
    symbology: zxingcpp.BarcodeFormat = zxingcpp.BarcodeFormat.Code128,
    ink: float = INK,
) -> np.ndarray:
    """A flat grayscale ticket; `job=None` gives a ticket with text only (no barcode).

    With `matrix` a DataMatrix of the job stands right of the Code 128, its modules
    `MATRIX_MODULE` times as wide, as on the printed tickets. `ink` is the grey of the print.
    """
    ticket = np.full((300, 520), PAPER, np.uint8)
    if job is None:
        for line in range(int(rng.integers(2, 5))):
            text = f"TRAY {rng.integers(100, 999)}  OD/OS"
            cv2.putText(ticket, text, (40, 70 + 36 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 30, 2)
        return _inked(ticket, ink)
    barcode = zxingcpp.create_barcode(job, symbology)
    bars = np.array(zxingcpp.write_barcode_to_image(barcode, scale=MODULE))
    text = np.array(zxingcpp.write_barcode_to_image(barcode, scale=MODULE, add_hrt=True))
    height = round(BAR_HEIGHT * bars.shape[1])
    bars = cv2.resize(bars, (bars.shape[1], height), interpolation=cv2.INTER_NEAREST)
    code = np.vstack([bars, text[len(text) - 16 :]])  # the human-readable line below
    code = code[: min(code.shape[0], 230), : min(code.shape[1], 480)]
    code = (INK + (PAPER - INK) / 255 * code.astype(np.float32)).astype(np.uint8)  # on paper
    top, left = 30, 30
    ticket[top : top + code.shape[0], left : left + code.shape[1]] = code
    if matrix:
        square = zxingcpp.create_barcode(job, zxingcpp.BarcodeFormat.DataMatrix)
        modules = np.array(zxingcpp.write_barcode_to_image(square, scale=1, add_quiet_zones=False))
        size = round(modules.shape[1] * MODULE * MATRIX_MODULE)
        cell = cv2.resize(modules, (size, size), interpolation=cv2.INTER_AREA)
        cell = (INK + (PAPER - INK) / 255 * cell.astype(np.float32)).astype(np.uint8)
        cell = cell[: 300 - 40, :]
        quiet = round(4 * MODULE * MATRIX_MODULE)
        ticket = np.hstack([ticket, np.full((300, cell.shape[1] + 2 * quiet), PAPER, np.uint8)])
        ticket[40 : 40 + cell.shape[0], 520 + quiet : 520 + quiet + cell.shape[1]] = cell
    return _inked(ticket, ink)


def _inked(ticket: np.ndarray, ink: float) -> np.ndarray:
    """The ticket printed with `ink` as its darkest grey (it is drawn with INK)."""
    if ink == INK:
        return ticket
    scaled = PAPER - (PAPER - ticket.astype(np.float32)) * (PAPER - ink) / (PAPER - INK)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def frame(
    job: str | None,
    level: Level,
    rng: np.random.Generator,
    *,
    matrix: bool = False,
    symbology: zxingcpp.BarcodeFormat = zxingcpp.BarcodeFormat.Code128,
    hard: HardRanges = HARD,
) -> np.ndarray:
    """A BGR camera frame of one ticket (or of a barcode-less ticket for `job=None`); `hard`
    is what makes L3 hard."""
    ink = rng.uniform(*hard.ink) if level is Level.L3 else INK
    ticket = render_ticket(job, rng, matrix=matrix, symbology=symbology, ink=ink)
    return camera_frame(ticket, MODULE, level, rng, hard=hard)


def camera_frame(
    ticket: np.ndarray,
    module: float,
    level: Level,
    rng: np.random.Generator,
    *,
    inside: np.ndarray | None = None,
    hard: HardRanges = HARD,
) -> np.ndarray:
    """A BGR 1280×720 camera frame of a flat grayscale `ticket` whose Code 128 modules are
    `module` px wide, at `level`: placed at a random spot, turned, tilted, lit and degraded.

    Modules come out at 1.9–2.7 frame px (L3: 1.2–1.8). The ticket is kept inside the frame
    where it fits; `inside` (N×2 ticket px, e.g. a code's corners) is kept inside in any case.
    """
    ticket = ticket.astype(np.float32)
    width, height = FRAME_SIZE
    background = float(rng.uniform(60, 200))
    h, w = ticket.shape
    module_px = rng.uniform(*hard.module_px) if level is Level.L3 else rng.uniform(1.9, 2.7)
    scale = module_px / module
    if scale < 0.8:  # the camera's optics blur what its pixels cannot resolve (no aliasing)
        ticket = cv2.GaussianBlur(ticket, (0, 0), 0.5 / scale)
    # (Both random turns are drawn whatever the level, which keeps older seeds' frames.)
    turns = {Level.L0: 0.0, Level.L1: rng.uniform(-25, 25), Level.L2: rng.uniform(0, 360)}
    angle = turns[Level.L2 if level is Level.L3 else level]
    source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    centre = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height])
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    target = cv2.transform(source[None], rotation)[0]
    target += centre - target.mean(axis=0)
    if level is not Level.L0:  # perspective: move each corner by up to 10 % of the ticket
        target += rng.uniform(-0.1, 0.1, (4, 2)).astype(np.float32) * w * scale
    shift = _shift_in(target, width, height)
    if inside is not None:  # a ticket too large for the frame is cut, these points are not
        warp = cv2.getPerspectiveTransform(source, target.astype(np.float32))
        points = cv2.perspectiveTransform(np.float32(inside)[None], warp)[0] + shift
        shift += _shift_in(points, width, height)
    target += shift
    warp = cv2.getPerspectiveTransform(source, target.astype(np.float32))
    image = cv2.warpPerspective(ticket, warp, FRAME_SIZE, borderValue=-1.0)
    image = np.where(image < 0, background, image)
    if level is Level.L3:
        image = _degrade_hard(image, target.mean(axis=0), angle, rng, hard)
        quality = int(rng.integers(hard.jpeg_quality[0], hard.jpeg_quality[1] + 1))
    else:
        image = _degrade(image, level, rng)
        quality = int(rng.uniform(70, 92))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


NORMAL_LEVELS = (Level.L0, Level.L1, Level.L2)


def dataset(
    count: int,
    seed: int,
    *,
    blank_share: float = 0.1,
    levels: tuple[Level, ...] = NORMAL_LEVELS,
    matrix: bool = False,
) -> list[tuple[str, str, np.ndarray]]:
    """`count` frames as (name like `g0001_L2.jpg`, job or "" for no barcode, BGR image).

    Levels cycle through `levels` (L0, L1, L2 like the dev corpus); `blank_share` of the frames
    have no barcode (named `_N`). With `matrix` every ticket carries a DataMatrix of the job
    beside its Code 128, as the printed tickets do. Job numbers look like the lab's: eight
    digits, half of them with a `J` prefix.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        if rng.random() < blank_share:
            level = levels[int(rng.integers(0, len(levels)))]
            frames.append((f"g{index:04d}_N.jpg", "", frame(None, level, rng)))
            continue
        level = levels[index % len(levels)]
        job = ("J" if rng.random() < 0.5 else "") + f"{rng.integers(10**7, 10**8)}"
        image = frame(job, level, rng, matrix=matrix)
        frames.append((f"g{index:04d}_{level}.jpg", job, image))
    return frames


def _shift_in(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """The shift that brings `points` into the frame, 10 px from its edges, where they fit
    (a cut-off code is a different test)."""
    low, high = points.min(axis=0), points.max(axis=0)
    return np.maximum(0, -low + 10) - np.maximum(0, high - np.array([width, height]) + 10)


def _degrade(image: np.ndarray, level: Level, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape
    if level is not Level.L0:  # uneven light: a linear gradient across the frame
        gx, gy = rng.uniform(-0.25, 0.25, 2)
        xs, ys = np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))
        image = image * (1 + gx * xs + gy * ys).astype(np.float32)
    if level is Level.L1:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    if level is Level.L2:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 1.4))
        image = cv2.filter2D(image, -1, _motion_kernel(rng.uniform(2, 8), rng.uniform(0, 180)))
        if rng.random() < 0.5:  # glare: a bright soft spot somewhere
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            radius = rng.uniform(60, 200)
            xs, ys = np.meshgrid(np.arange(width), np.arange(height))
            spot = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius**2))
            image = image + (spot * rng.uniform(80, 200)).astype(np.float32)
    sigma = {  # (both draws are made whatever the level, which keeps older seeds' frames)
        Level.L0: 1.5,
        Level.L1: rng.uniform(*NOISE[Level.L1]),
        Level.L2: rng.uniform(*NOISE[Level.L2]),
    }[level]
    image = image + rng.normal(0, sigma, image.shape).astype(np.float32)
    gray = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _degrade_hard(
    image: np.ndarray,
    ticket: np.ndarray,
    angle: float,
    rng: np.random.Generator,
    hard: HardRanges,
) -> np.ndarray:
    """L3: uneven light, slight defocus, 7–13 px motion blur, a dim exposure, a strong glare
    spot near the ticket (`ticket`: its centre, `angle`: its turn), noise.

    The motion runs along the bars give or take `hard.motion_turn` degrees, as in the hard dev
    corpus: across 1.2–1.8 px modules a 7–13 px smear leaves nothing of a 1D code to read.
    """
    height, width = image.shape
    gx, gy = rng.uniform(-0.25, 0.25, 2)
    xs, ys = np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))
    image = image * (1 + gx * xs + gy * ys).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.0))
    turn = rng.uniform(-hard.motion_turn, hard.motion_turn)
    kernel = _motion_kernel(rng.uniform(*hard.motion_px), angle + 90 + turn)
    image = cv2.filter2D(image, -1, kernel) * rng.uniform(*hard.exposure)
    cx, cy = ticket + rng.uniform([-300, -200], [300, 200])
    radius = rng.uniform(*hard.glare_radius)
    px, py = np.meshgrid(np.arange(width), np.arange(height))
    spot = np.exp(-((px - cx) ** 2 + (py - cy) ** 2) / (2 * radius**2))
    image = image + (spot * rng.uniform(*hard.glare)).astype(np.float32)
    image = image + rng.normal(0, rng.uniform(*hard.noise), image.shape).astype(np.float32)
    gray = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (size, size))
    return kernel / kernel.sum()
