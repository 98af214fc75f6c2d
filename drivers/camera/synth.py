"""Synthetic camera frames of job tickets, for the virtual camera, tests and the benchmark.

A ticket is a white card with a Code 128 of the job number and its text (optionally a
DataMatrix of the same number and tray lines), seen by a 1280×720 camera at one of three
difficulty levels like the dev corpus: L0 clean, L1 tilt/perspective/uneven light/blur/noise,
L2 any rotation, heavier blur, motion blur, glare. Everything is drawn from a seeded RNG so a
held-out set is reproducible and was never looked at while writing the decoder.
"""

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


class Level(StrEnum):
    L0 = "L0"
    L1 = "L1"
    L2 = "L2"


def render_ticket(
    job: str | None,
    rng: np.random.Generator,
    *,
    matrix: bool = False,
    symbology: zxingcpp.BarcodeFormat = zxingcpp.BarcodeFormat.Code128,
) -> np.ndarray:
    """A flat grayscale ticket; `job=None` gives a ticket with text only (no barcode)."""
    ticket = np.full((300, 520), 245, np.uint8)
    if job is None:
        for line in range(int(rng.integers(2, 5))):
            text = f"TRAY {rng.integers(100, 999)}  OD/OS"
            cv2.putText(ticket, text, (40, 70 + 36 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 30, 2)
        return ticket
    barcode = zxingcpp.create_barcode(job, symbology)
    bars = np.array(zxingcpp.write_barcode_to_image(barcode, scale=2))
    text = np.array(zxingcpp.write_barcode_to_image(barcode, scale=2, add_hrt=True))
    height = round(BAR_HEIGHT * bars.shape[1])
    bars = cv2.resize(bars, (bars.shape[1], height), interpolation=cv2.INTER_NEAREST)
    code = np.vstack([bars, text[len(text) - 16 :]])  # the human-readable line below
    code = code[: min(code.shape[0], 230), : min(code.shape[1], 480)]
    code = (INK + (245 - INK) / 255 * code.astype(np.float32)).astype(np.uint8)  # on paper
    top, left = 30, 30
    ticket[top : top + code.shape[0], left : left + code.shape[1]] = code
    if matrix:
        square = zxingcpp.create_barcode(job, zxingcpp.BarcodeFormat.DataMatrix)
        cell = np.array(zxingcpp.write_barcode_to_image(square, scale=5))
        cell = cell[: 300 - 20, :]
        ticket = np.hstack([ticket, np.full((300, cell.shape[1] + 30), 245, np.uint8)])
        ticket[20 : 20 + cell.shape[0], 520 : 520 + cell.shape[1]] = cell
    return ticket


def frame(
    job: str | None,
    level: Level,
    rng: np.random.Generator,
    *,
    matrix: bool = False,
    symbology: zxingcpp.BarcodeFormat = zxingcpp.BarcodeFormat.Code128,
) -> np.ndarray:
    """A BGR camera frame of one ticket (or of a barcode-less ticket for `job=None`)."""
    ticket = render_ticket(job, rng, matrix=matrix, symbology=symbology).astype(np.float32)
    width, height = FRAME_SIZE
    background = float(rng.uniform(60, 200))
    h, w = ticket.shape
    # Camera scale: 1.0–1.35 px per printed px keeps modules at 2–2.7 px, as on the stations.
    scale = rng.uniform(0.95, 1.35)
    angle = {Level.L0: 0.0, Level.L1: rng.uniform(-25, 25), Level.L2: rng.uniform(0, 360)}[level]
    source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    centre = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height])
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    target = cv2.transform(source[None], rotation)[0]
    target += centre - target.mean(axis=0)
    if level is not Level.L0:  # perspective: move each corner by up to 10 % of the ticket
        target += rng.uniform(-0.1, 0.1, (4, 2)).astype(np.float32) * w * scale
    target = _fit(target, width, height)
    warp = cv2.getPerspectiveTransform(source, target.astype(np.float32))
    image = cv2.warpPerspective(ticket, warp, FRAME_SIZE, borderValue=-1.0)
    image = np.where(image < 0, background, image)
    image = _degrade(image, level, rng)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(70, 92))])
    assert ok
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


def dataset(
    count: int, seed: int, *, blank_share: float = 0.1
) -> list[tuple[str, str, np.ndarray]]:
    """`count` frames as (name like `g0001_L2.jpg`, job or "" for no barcode, BGR image).

    Levels cycle L0, L1, L2 like the dev corpus; `blank_share` of the frames have no barcode.
    Job numbers look like the lab's: eight digits, half of them with a `J` prefix.
    """
    rng = np.random.default_rng(seed)
    frames = []
    levels = list(Level)
    for index in range(count):
        if rng.random() < blank_share:
            level = levels[int(rng.integers(0, 3))]
            frames.append((f"g{index:04d}_N.jpg", "", frame(None, level, rng)))
            continue
        level = levels[index % 3]
        job = ("J" if rng.random() < 0.5 else "") + f"{rng.integers(10**7, 10**8)}"
        frames.append((f"g{index:04d}_{level}.jpg", job, frame(job, level, rng)))
    return frames


def _fit(corners: np.ndarray, width: int, height: int) -> np.ndarray:
    """Shift the ticket fully into the frame (a cut-off code is a different test)."""
    low, high = corners.min(axis=0), corners.max(axis=0)
    shift = np.maximum(0, -low + 10) - np.maximum(0, high - np.array([width, height]) + 10)
    return corners + shift


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
    sigma = {Level.L0: 1.5, Level.L1: rng.uniform(4, 9), Level.L2: rng.uniform(5, 10)}[level]
    image = image + rng.normal(0, sigma, image.shape).astype(np.float32)
    gray = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (size, size))
    return kernel / kernel.sum()
