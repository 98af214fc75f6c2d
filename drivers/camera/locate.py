"""Find 1D barcode regions at any angle and cut them out with the bars upright.

ZBar scans only rows and columns and zxing-cpp's linear readers only rows (and, with
`try_rotate`, columns), so a Code 128 at 30° is invisible to both. A barcode is a patch where
the image gradient is strong and points the same way everywhere (across the bars); the
structure tensor measures exactly that, and its angle says how to rotate the patch upright.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from itertools import combinations

import cv2
import numpy as np
from numba import njit

# Work on a half-size image: bars of 2+ px modules at 1280×720 survive, and it is 4× cheaper.
SCALE = 0.5
WINDOW = 9  # structure tensor averaging window at work scale: a few modules wide
MIN_COHERENCE = 0.5  # 1 = one gradient direction only; text and noise sit below
# (0.75, then 0.65 before: at this scale a code of 1.2–1.8 px modules keeps only its wide
# elements, and dim light and noise left parts of it, or all, below; lower than 0.5 lets text
# and ticket edges crowd codes out of the strongest regions)
# Bars alternate: over a few modules their gradients cancel, where an object's border (a
# ticket edge against the desk: strong and coherent too) has one sign only. Share of the mean
# squared gradient that survives averaging over ALTERNATION_WINDOW, at most:
ALTERNATION_WINDOW = 7  # on the alternation grid: 15 px of the work scale
MAX_ONE_SIGN = 0.15
MAX_TURN = np.radians(20)  # a pixel's bars may turn this far from the region's (perspective)
MIN_AREA = 250  # px² at work scale; a ticket's Code 128 covers thousands
MAX_EDGE_SLOPE = np.tan(np.radians(25))  # edges slant this far at most (perspective)
EDGE_SLICES = 6  # slices across the code in which its top and bottom reach are measured
MERGE_TURN = np.radians(10)  # parts of one code (`_merge_collinear`) turn this far apart at most
MAX_PART_ONE_SIGN = 0.45  # `_one_sided` of a part that holds bars, at most
MERGE_GAP = 1.5  # bar heights between two parts of one code, at most
# Sensor noise adds its energy to every pixel's structure tensor, alike in all directions, and
# so takes coherence from a faint code: at the hard corpus' noise (σ 16) the bars of a dim, grey
# code of small modules showed a median coherence of 0.28-0.41, and a third of the hard frames
# missed had no region on their code. `find_regions(..., noise_share=...)` takes that share of
# the frame's median energy (mostly background, so its noise) off each pixel's before the
# coherence test, on frames whose median is at least `NOISY_ENERGY` only: those of the normal
# levels (σ 13 at most) showed 0-1,090, the hard ones 1,400-1,660, and the normal ones' codes
# are not noise-bound (the correction read no more of 542). Never below `NOISE_KEPT` of a
# pixel's own energy: pure noise must not pass for bars.
NOISY_ENERGY = 1200.0
NOISE_KEPT = 0.25


@dataclass(frozen=True)
class Region:
    """A candidate barcode: `crop` has the bars vertical; `corners` are in image coordinates."""

    crop: np.ndarray
    # 3×3 homography from crop to image pixels, exact at the crop's corners: where codes are
    # and which way they turn. The pixels inside are sampled bilinearly between the corners
    # (`_sample`), which a homography cannot say.
    to_image: np.ndarray
    strength: float

    @property
    def corners(self) -> np.ndarray:
        """4×2 float32 image points, clockwise from the crop's top-left."""
        height, width = self.crop.shape[:2]
        return to_image_points([(0, 0), (width, 0), (width, height), (0, height)], self.to_image)


def to_image_points(points: list[tuple[float, float]], homography: np.ndarray) -> np.ndarray:
    """Crop points mapped to image pixels, as N×2 float32."""
    return cv2.perspectiveTransform(np.float32(points)[None], homography)[0]


class Structure:
    """A frame's structure tensor at work scale and the tests of `find_regions` that do not
    depend on the noise it discounts: each computed when first asked for (a frame the first
    pass reads needs none), and once for both of a frame's searches."""

    def __init__(self, gray: np.ndarray) -> None:
        self.gray = gray

    @cached_property
    def gx(self) -> np.ndarray:
        return cv2.Sobel(self._small, cv2.CV_32F, 1, 0, ksize=3)

    @cached_property
    def gy(self) -> np.ndarray:
        return cv2.Sobel(self._small, cv2.CV_32F, 0, 1, ksize=3)

    @cached_property
    def jxx(self) -> np.ndarray:
        return cv2.boxFilter(self._gxx, -1, (WINDOW, WINDOW))

    @cached_property
    def jyy(self) -> np.ndarray:
        return cv2.boxFilter(self._gyy, -1, (WINDOW, WINDOW))

    @cached_property
    def jxy(self) -> np.ndarray:
        return cv2.boxFilter(self.gx * self.gy, -1, (WINDOW, WINDOW))

    @cached_property
    def energy(self) -> np.ndarray:
        return self.jxx + self.jyy

    @cached_property
    def anisotropy_sq(self) -> np.ndarray:
        """coherence = sqrt((jxx - jyy)² + 4·jxy²) / energy, compared squared: no root or
        division over the whole frame (the root is taken for the regions' pixels only)."""
        return (self.jxx - self.jyy) ** 2 + 4 * self.jxy * self.jxy

    @cached_property
    def noise_energy(self) -> float:
        """The median energy: mostly background, so its sensor noise. (Every 4th pixel each
        way gives the same percentiles at a 16th of the cost.)"""
        return float(np.median(self.energy[::4, ::4]))

    @property
    def noisy(self) -> bool:
        """Whether sensor noise bounds what the frame's codes show (`NOISY_ENERGY`)."""
        return self.noise_energy >= NOISY_ENERGY

    @cached_property
    def strong(self) -> np.ndarray:
        """Strong relative to the frame: sensor noise is everywhere, bars the strongest
        texture."""
        return self.energy > max(float(np.percentile(self.energy[::4, ::4], 90)), 400.0)

    @cached_property
    def alternating(self) -> np.ndarray:
        """The alternation test, coarse by nature: on a grid half as fine again (INTER_AREA
        halving is a 2×2 average), at a quarter of the cost."""

        def coarse(values: np.ndarray) -> np.ndarray:
            return cv2.resize(values, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)

        gx, gy = self.gx, self.gy
        alternation = (ALTERNATION_WINDOW, ALTERNATION_WINDOW)
        mean_gx = cv2.boxFilter(coarse(gx), -1, alternation)
        mean_gy = cv2.boxFilter(coarse(gy), -1, alternation)
        squared = cv2.boxFilter(coarse(self._gxx + self._gyy), -1, alternation)
        alternating = mean_gx**2 + mean_gy**2 < MAX_ONE_SIGN * (squared + 1e-3)
        return cv2.resize(
            alternating.astype(np.uint8), gx.shape[::-1], interpolation=cv2.INTER_NEAREST
        ).astype(bool)

    @cached_property
    def _gxx(self) -> np.ndarray:
        return self.gx * self.gx

    @cached_property
    def _gyy(self) -> np.ndarray:
        return self.gy * self.gy

    @cached_property
    def _small(self) -> np.ndarray:
        small = cv2.resize(self.gray, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_AREA)
        return small.astype(np.float32)


def find_regions(
    gray: np.ndarray,
    *,
    max_regions: int = 4,
    noise_share: float = 0.0,
    structure: Structure | None = None,
) -> Iterator[Region]:
    """The likeliest barcode regions of `gray`, strongest first; each is cut out only when
    asked for (a caller that reads the first needs no more). With `noise_share` the coherence
    test discounts that share of the frame's sensor noise, and a frame too clean for that to
    matter (`NOISY_ENERGY`) gives none. `structure`: `gray`'s, where the caller has it."""
    structure = structure or Structure(gray)
    energy = structure.energy
    if noise_share:
        if not structure.noisy:
            return
        floor = noise_share * structure.noise_energy
        energy = np.maximum(energy - floor, NOISE_KEPT * energy)
    coherent = structure.anisotropy_sq > (MIN_COHERENCE * (energy + 1e-3)) ** 2
    strong, alternating = structure.strong, structure.alternating
    jxx, jyy, jxy = structure.jxx, structure.jyy, structure.jxy
    gx, gy, anisotropy_sq = structure.gx, structure.gy, structure.anisotropy_sq
    mask = (coherent & strong & alternating).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    # 16-bit labels: 3× faster than 32-bit, and enough: after the 3×3 opening every component
    # holds 9 pixels or more, so a 640×360 mask has at most 25,600 of them.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask, connectivity=8, ltype=cv2.CV_16U
    )
    candidates = []
    for label in range(1, count):
        if stats[label, cv2.CC_STAT_AREA] < MIN_AREA:
            continue
        x, y, w, h = stats[label, :4]
        ys, xs = np.nonzero(labels[y : y + h, x : x + w] == label)
        ys, xs = ys + y, xs + x
        theta = _orientation(jxx, jyy, jxy, ys, xs)
        # Drop pixels turned away from the bars: where the code meets a ticket border, the
        # component runs on along it, which would stretch and tilt the crop.
        local = 0.5 * np.arctan2(2 * jxy[ys, xs], jxx[ys, xs] - jyy[ys, xs])
        along = np.abs((local - theta + np.pi / 2) % np.pi - np.pi / 2) < MAX_TURN
        ys, xs = ys[along], xs[along]
        if len(xs) < MIN_AREA:
            continue
        theta = _orientation(jxx, jyy, jxy, ys, xs)
        weight = float(np.sqrt(anisotropy_sq[ys, xs]).sum())
        candidates.append((weight, theta, xs, ys))
    candidates = _merge_collinear(candidates, (jxx, jyy, jxy), (gx, gy))
    candidates.sort(key=lambda c: -c[0])
    for weight, theta, xs, ys in candidates[:max_regions]:
        yield _rectify(gray, (jxx, jyy, jxy), theta, xs / SCALE, ys / SCALE, weight)


Candidate = tuple[float, float, np.ndarray, np.ndarray]  # weight, theta, xs, ys (work scale)


def _merge_collinear(
    candidates: list[Candidate],
    tensor: tuple[np.ndarray, np.ndarray, np.ndarray],
    gradient: tuple[np.ndarray, np.ndarray],
) -> list[Candidate]:
    """Candidates that are pieces of one code joined: glare, a dim stretch or blur across the
    bars leaves a gap in the mask that splits a code of small modules into parts side by side
    across the bars, each too short to read. Two parts join when their bars turn the same way
    (`MERGE_TURN`), both hold bars (not a one-sided edge, `MAX_PART_ONE_SIGN`), they lie on one
    line across the bars (centres apart by less than half their bar height) and the gap between
    them is at most `MERGE_GAP` bar heights: text below a code sits off the line, a ticket's
    border beyond the quiet zone, the nearest thing on it, is one-sided (seen on the hard
    frames, where it would otherwise join: pieces of it outlast the alternation test), and a
    ticket's DataMatrix sits off the line (printed tickets) or some 2.5 bar heights along it
    (`synth`).
    """
    gx, gy = gradient
    barred = [
        _one_sided(gx[ys, xs] * np.cos(theta) + gy[ys, xs] * np.sin(theta)) <= MAX_PART_ONE_SIGN
        for _, theta, xs, ys in candidates
    ]
    group = list(range(len(candidates)))

    def root(index: int) -> int:
        while group[index] != index:
            index = group[index]
        return index

    @cache
    def extent(index: int, along: int) -> tuple[float, float, float, float]:
        """Candidate `index`'s extent along candidate `along`'s bars: each part's own is
        needed for every pair it starts."""
        return _extent(candidates[index], candidates[along][1])

    for i, j in combinations(range(len(candidates)), 2):
        if not (barred[i] and barred[j]):
            continue
        (_, theta_i, *_), (_, theta_j, *_) = candidates[i], candidates[j]
        if abs((theta_i - theta_j + np.pi / 2) % np.pi - np.pi / 2) > MERGE_TURN:
            continue
        (u0_i, u1_i, v_i, h_i), (u0_j, u1_j, v_j, h_j) = extent(i, i), extent(j, i)
        height = (h_i + h_j) / 2
        gap = max(u0_i, u0_j) - min(u1_i, u1_j)
        if abs(v_i - v_j) < height / 2 and gap <= MERGE_GAP * height:
            group[root(j)] = root(i)
    joined: dict[int, list[Candidate]] = {}
    for index, candidate in enumerate(candidates):
        joined.setdefault(root(index), []).append(candidate)
    merged = []
    for members in joined.values():
        if len(members) == 1:
            merged.append(members[0])
            continue
        xs = np.concatenate([m[2] for m in members])
        ys = np.concatenate([m[3] for m in members])
        theta = _orientation(*tensor, ys, xs)
        merged.append((sum(m[0] for m in members), theta, xs, ys))
    return merged


def _one_sided(across: np.ndarray) -> float:
    """Share of a part's gradient across the bars that has one sign: 0 for bars (each has a
    falling and a rising edge), near 1 for a single step such as a ticket's border."""
    return float(abs(across.sum()) / (np.abs(across).sum() + 1e-3))


def _extent(candidate: Candidate, theta: float) -> tuple[float, float, float, float]:
    """A candidate's reach across the bars (from, to), its centre and height along them."""
    _, _, xs, ys = candidate
    u = xs * np.cos(theta) + ys * np.sin(theta)
    v = ys * np.cos(theta) - xs * np.sin(theta)
    u0, u1 = percentiles(u, (2, 98))
    v0, v1 = percentiles(v, (5, 95))
    return float(u0), float(u1), float((v0 + v1) / 2), float(v1 - v0)


def percentiles(values: np.ndarray, percents: tuple[float, ...]) -> np.ndarray:
    """`np.percentile(values, q)` of a 1D float array for each scalar `q` of `percents`, to the
    last bit and in the values' own dtype, at half its cost or less: a partition around the
    ranks needed instead of numpy's general machinery, whose overhead dominates on a region's
    few thousand pixels or a profile's few hundred edges."""
    low, high, between = _ranks(np.array(percents, np.float64), len(values))
    part = np.partition(values, np.union1d(low, high))
    return _lerp(part[low], part[high], between)


def _ranks(
    percents: np.ndarray, sizes: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy's percentile positions among `sizes` ordered values (a size per row, or one):
    the indexes either side and how far between them (for `_lerp`)."""
    ranks = percents / 100 * (sizes - 1)
    low = ranks.astype(np.intp)
    return low, np.minimum(low + 1, sizes - 1), ranks - low


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's percentile interpolation of a scalar q, rounding included: from the nearer end,
    with the weights rounded to the values' dtype (a no-op for float64)."""
    diff = b - a
    weight = t.astype(a.dtype)
    return np.where(t >= 0.5, b - diff * (1 - t).astype(a.dtype), a + diff * weight)


def _orientation(
    jxx: np.ndarray, jyy: np.ndarray, jxy: np.ndarray, ys: np.ndarray, xs: np.ndarray
) -> float:
    """Orientation of the summed tensor: the gradient direction, across the bars."""
    sxx, syy, sxy = jxx[ys, xs].sum(), jyy[ys, xs].sum(), jxy[ys, xs].sum()
    return 0.5 * float(np.arctan2(2 * sxy, sxx - syy))


def _rectify(
    gray: np.ndarray,
    tensor: tuple[np.ndarray, np.ndarray, np.ndarray],
    theta: float,
    xs: np.ndarray,
    ys: np.ndarray,
    weight: float,
) -> Region:
    """Cut the code out with its bars vertical and its ends level, a quiet-zone margin each side.

    Under perspective a code is a quadrilateral: its bars converge and its top and bottom edges
    slant. The crop maps that quadrilateral onto a rectangle (bilinearly, `_sample`), so every
    column holds one bar along its whole height and every row crosses every bar; the region's
    `to_image` is the homography through the same corners. The bar directions
    come from the structure tensor at either end of the code, the edges from how far its pixels
    reach along the bars.
    """
    across = np.array([np.cos(theta), np.sin(theta)])
    along = np.array([-np.sin(theta), np.cos(theta)])
    points = np.stack([xs, ys], axis=1)
    u, v = points @ across, points @ along
    u0, u1 = percentiles(u, (1, 99))
    length = u1 - u0
    margin = _margin(length)  # the mask stops short of the outer bars and the quiet zone
    # Bars' lean (du/dv) at either end, relative to the code's mean direction.
    lean = []
    for end in (u < u0 + 0.3 * length, u > u1 - 0.3 * length):
        if end.sum() < MIN_AREA // 4:
            lean.append(0.0)
            continue
        small_x, small_y = (xs[end] * SCALE).astype(int), (ys[end] * SCALE).astype(int)
        turn = (_orientation(*tensor, small_y, small_x) - theta + np.pi / 2) % np.pi - np.pi / 2
        lean.append(np.tan(np.clip(turn, -MAX_TURN, MAX_TURN)))
    top, bottom = _edge_lines(u, v, u0, u1)

    def corner(end_u: float, end_lean: float, edge: tuple[float, float]) -> tuple[float, float]:
        """Where the bar line through (end_u, the code's mid-height) meets an edge v = a + b·u."""
        a, b = edge
        v_mid = (top[0] + bottom[0] + (top[1] + bottom[1]) * end_u) / 2
        corner_u = (end_u + end_lean * (a - v_mid)) / (1 - end_lean * b)
        return corner_u, a + b * corner_u

    left, right = (u0 - margin, lean[0]), (u1 + margin, lean[1])
    quad_uv = np.array(
        [corner(*left, top), corner(*right, top), corner(*right, bottom), corner(*left, bottom)]
    )
    quad = (quad_uv[:, :1] * across + quad_uv[:, 1:] * along).astype(np.float32)
    sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)  # top, right, bottom, left
    width, height = int((sides[0] + sides[2]) / 2), max(int((sides[1] + sides[3]) / 2), 8)
    rectangle = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    to_image = cv2.getPerspectiveTransform(rectangle, quad)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    crop = _sample(gray, quad, (width, height), xs, ys)
    return Region(crop=crop, to_image=to_image, strength=weight)


# The margin a region's crop has either side of the locator's mask: a share of the mask's length
# and some px.
MARGIN_SHARE = 0.12
MARGIN_PX = 12.0


def _margin(length: float) -> float:
    """The margin either side of a mask `length` px long."""
    return MARGIN_SHARE * length + MARGIN_PX


def _margin_of(width: int) -> float:
    """The margin either side of a region's crop `width` px wide (`_margin`, solved back)."""
    return _margin((width - 2 * MARGIN_PX) / (1 + 2 * MARGIN_SHARE))


def _sample(
    gray: np.ndarray, quad: np.ndarray, size: tuple[int, int], xs: np.ndarray, ys: np.ndarray
) -> np.ndarray:
    """`gray` at the points (`xs`, `ys`) of a crop of `size` whose corners lie at `quad` (4×2,
    clockwise from the top-left), interpolated bilinearly between the corners: each column is
    a straight line from the top edge to the bottom one, and columns are evenly spaced along
    both.

    Not by the homography through the corners: that would also narrow or widen the modules
    along the code as the quad's top and bottom edges converge, and those edges are the reach
    of a blurred code's pixels, too rough to say where it vanishes. On hard frames such a crop
    gained a module gradient of a third and more, beyond what the profile fit considers, where
    the code's own perspective is well within it (`profile.FIT_GRADIENTS`).
    """
    width, height = size
    s, t = xs / width, ys / height
    top_left, top_right, bottom_right, bottom_left = np.float32(quad)

    def image_axis(axis: int) -> np.ndarray:
        """The points' image x (0) or y (1): each axis on its own, as an axis of two after the
        crop's two costs 8 times as much."""
        top = top_left[axis] + s * (top_right[axis] - top_left[axis])
        bottom = bottom_left[axis] + s * (bottom_right[axis] - bottom_left[axis])
        return np.asarray(top + t * (bottom - top), np.float32)

    return cv2.remap(
        gray, image_axis(0), image_axis(1), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _edge_lines(
    u: np.ndarray, v: np.ndarray, u0: float, u1: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Top and bottom edge of the code as lines v = a + b·u, a little inside the bars: their
    ends may carry text. From the reach of the pixels in slices across the code.
    """
    slices = np.linspace(u0, u1, EDGE_SLICES + 1)
    # Each pixel's slice (low <= u < high), then one sort by slice and v for every slice's
    # percentiles at once: a slice at a time cost a fifth of a frame's locating.
    index = np.searchsorted(slices, u, side="right") - 1
    inside = (index >= 0) & (index < EDGE_SLICES)
    index, v_inside = index[inside], v[inside]
    ordered = v_inside[np.lexsort((v_inside, index))]
    counts = np.bincount(index, minlength=EDGE_SLICES)
    filled = np.nonzero(counts >= 10)[0]
    if len(filled) < 2:
        v_top, v_bottom = percentiles(v, (2, 98))
        return (float(v_top), 0.0), (float(v_bottom), 0.0)
    low, high, between = _ranks(np.array([[3.0, 97.0]]), counts[filled, None])
    first = (np.cumsum(counts) - counts)[filled, None]
    v_top, v_bottom = _lerp(ordered[first + low], ordered[first + high], between).T
    pad = 0.1 * (v_bottom - v_top)
    centres = (slices[filled] + slices[filled + 1]) / 2
    tops, bottoms = v_top + pad, v_bottom - pad
    lines = []
    for edge in (tops, bottoms):
        slope = float(np.clip(np.polyfit(centres, edge, 1)[0], -MAX_EDGE_SLOPE, MAX_EDGE_SLOPE))
        lines.append((float(np.mean(edge) - slope * np.mean(centres)), slope))
    return lines[0], lines[1]


MAX_SLANT = 0.25  # px of drift across the bars per row (14°) the straightening considers
SLANT_STEP = 0.05  # px of shift between the top and bottom profiles tried
RUNS_ON = 0.5  # detail in a crop's end over its middle's above which the code runs on past it
EXTEND = 0.25  # of the crop's width added either side where the code runs on
MIN_DRIFT = 0.5  # px the bars drift between the top and bottom third, below which they are upright
MIN_PROFILE = 16  # px of aligned profile `bar_likeness` needs per half of a crop
# `upright`: the locator's mask holds only the strongest middle of a dim, noisy code's bars (on
# hard frames some 45 % of their height where the code went unread), and its crop leans by a
# module and more over that: rows are added along the bars, up to `GROW` crop heights either
# side, while each block of `GROW_BLOCK` rows still correlates with the crop's bars by
# `GROW_SHARE` of its own rows' median correlation; then the bars' slant and lean are measured.
GROW = 1.0
GROW_BLOCK = 3
GROW_SHARE = 0.3
# Slant (px per row, as in `straighten`) and lean (its change from the crop's left end to its
# right) are searched coarse to fine: slant first, then lean at the best slant, then both
# around the best pair, on columns upsampled `SHEAR_UPSAMPLE` times.
UPRIGHT_SLANTS = np.linspace(-0.3, 0.3, 31)
UPRIGHT_LEANS = np.linspace(-0.4, 0.4, 21)
# What is left of them over the bars' whole height, once the crop's own rows set them upright.
RESIDUAL_SHEARS = (np.linspace(-0.1, 0.1, 11), np.linspace(-0.2, 0.2, 11))
SHEAR_UPSAMPLE = 4
# The mask also stops short of a code's ends where they are dim or blurred into the paper (10
# of the 36 codes a seeded hard set missed were cut out narrower than the code): the bars,
# set upright, are followed up to `REACH` crop widths past either end where they reach it,
# while bars go on within `BAR_GAP` columns (a Code 128 space is 4 modules at most: 7 px at
# 1.8 px per module), and `QUIET` columns are kept past the last. A column holds bars where,
# over `BAR_WINDOW` columns, the detail (`BAR_DETAIL`: a ticket's edge then reaches a few px
# into the quiet zone) of the bars' top and bottom half, at the best of `BAR_SHIFTS` between
# them (what is left of a lean measured on a short crop), agrees `BAR_ENERGY` times more than
# the halves differ, by their noise, which halves apart do not share (neighbouring rows do: the
# crop samples between pixels), or by the crop's median column's, where glare left no noise.
REACH = 1.0
BAR_DETAIL = 2.0
BAR_WINDOW = 5
BAR_ENERGY = 3.0
BAR_GAP = 8
QUIET = 10
BAR_SHIFTS = np.arange(-2.0, 2.01, 0.5)


def upright(
    gray: np.ndarray,
    region: Region,
    *,
    grow_share: float = GROW_SHARE,
    margin_kept: float | None = None,
) -> Region:
    """`region` cut out again over its bars' whole height (`_bar_rows`, growing by `grow_share`),
    each bar in one column (`_shear`), and as far as they run on past its ends (`_bar_columns`):
    what column averages need, as they average away sensor noise by the rows they take, and smear
    what leans. With `margin_kept`, no further past the locator's mask than that share of the
    region's margin (`MARGIN_SHARE`) either side.

    The locator's rows are the middle of the bars where a dim, noisy code's gradient is
    strongest; on hard frames it left half of the bars' height out, which the code's profiles
    then lacked, and its crop leant by a module and more, more than `straighten` measures well
    from two thirds of a short crop.
    """
    height, width = region.crop.shape
    if height < 2 * GROW_BLOCK:
        return region
    cols = np.arange(width, dtype=np.float32)
    # The crop's own rows show the bars' shear well enough to grow them along the bars; over the
    # bars' whole height, where a drift shows the most, what is left of it is measured again.
    slant, lean = _shear(region.crop, UPRIGHT_SLANTS, UPRIGHT_LEANS)
    extra = round(GROW * height)
    rows = np.arange(-extra, height + extra, dtype=np.float32)
    around = _sheared(gray, region, rows, cols, slant, lean)
    top, bottom = _bar_rows(around, extra, height, grow_share)
    more_slant, more_lean = _shear(around[top + extra : bottom + extra], *RESIDUAL_SHEARS)
    rows = np.arange(top, bottom, dtype=np.float32)
    reach = round(REACH * width)
    wide = np.arange(-reach, width + reach, dtype=np.float32)
    slant, lean = slant + more_slant, lean + more_lean
    crop = _sheared(gray, region, rows, wide, slant, lean, lean_past_ends=False)
    left, right = _bar_columns(crop, reach, width)
    if margin_kept is not None:
        cut = (1 - margin_kept) * _margin_of(width)
        left, right = max(left, int(reach + cut)), min(right, int(reach + width - cut))
    return _recut(region, crop[:, left:right], left - reach, top)


def _recut(region: Region, crop: np.ndarray, left: float, top: float) -> Region:
    """`region` with `crop`, cut out of the same image with its top-left corner at (`left`,
    `top`) of `region`'s crop and its rows slid only along the bars: the region's homography,
    moved."""
    shift = np.array([[1, 0, left], [0, 1, top], [0, 0, 1]], np.float64)
    return Region(crop=crop, to_image=region.to_image @ shift, strength=region.strength)


def _bar_columns(crop: np.ndarray, reach: int, width: int) -> tuple[int, int]:
    """The columns of `crop` (bars upright; the region's `width` columns with `reach` more
    either side) that its code spans: the region's own, and past either end as far as the bars
    go on (`REACH` to `QUIET`)."""
    half = len(crop) // 2
    image = crop.astype(np.float32)
    halves = np.stack([image[:half].mean(axis=0), image[-half:].mean(axis=0)])
    top, bottom = _detail(halves, BAR_DETAIL)
    x = np.arange(len(top), dtype=np.float32)
    shifted = np.stack([np.interp(x + shift, x, bottom) for shift in BAR_SHIFTS])
    agree = cv2.blur(top * shifted, (BAR_WINDOW, 1)).max(axis=0)
    differ = cv2.blur((0.25 * (top - bottom) ** 2)[None, :], (BAR_WINDOW, 1))[0]
    floor = float(np.median(differ[reach : reach + width]))
    bars = agree > BAR_ENERGY * np.maximum(differ, floor)
    end = reach + width
    before = _run_on(reach - np.nonzero(bars[:reach])[0][::-1], bars[reach : reach + BAR_GAP])
    after = _run_on(np.nonzero(bars[end:])[0] + 1, bars[end - BAR_GAP : end])
    first = max(reach - before - QUIET, 0) if before else reach
    last = min(end + after + QUIET, len(bars)) if after else end
    return first, last


def _run_on(distances: np.ndarray, at_end: np.ndarray) -> int:
    """How far bars run on past a crop's end, given the distances (ascending, from 1) of the
    columns beyond it that hold bars, and whether its last columns do (`at_end`): to the last
    before a gap wider than `BAR_GAP`; nowhere if the bars stop short of the end (a ticket's
    edge past the quiet zone the crop's margin holds is not the code's)."""
    if not at_end.any():
        return 0
    steps = np.diff(distances, prepend=0)
    wide = np.nonzero(steps > BAR_GAP)[0]
    count = int(wide[0]) if len(wide) else len(distances)
    return int(distances[count - 1]) if count else 0


def _bar_rows(around: np.ndarray, extra: int, height: int, share: float) -> tuple[int, int]:
    """The crop rows (from its top, either side of it) the bars run over, given the crop's
    columns continued `extra` rows either side (`around`, set upright): the crop's own `height`
    rows, and blocks of `GROW_BLOCK` rows beyond them as long as each block's detail correlates
    with the crop's column means by `share` of what the crop's own blocks do."""
    bars = _detail(around[extra : extra + height].astype(np.float32).mean(axis=0))
    bars /= np.linalg.norm(bars) + 1e-6
    detail = _detail(_row_blocks(around))
    count = len(detail)
    correlation = detail @ bars / (np.linalg.norm(detail, axis=1) + 1e-6)
    first, end = extra // GROW_BLOCK, (extra + height) // GROW_BLOCK
    floor = share * float(np.median(correlation[first:end]))
    while first > 0 and correlation[first - 1] > floor:
        first -= 1
    while end < count and correlation[end] > floor:
        end += 1
    return min(first * GROW_BLOCK - extra, 0), max(end * GROW_BLOCK - extra, height)


def _shear(crop: np.ndarray, slants: np.ndarray, leans: np.ndarray) -> tuple[float, float]:
    """The slant and lean (`_sheared`) of `slants` and `leans` (then refined between them)
    that set `crop`'s bars upright: those whose column means keep the most detail, counted
    between blocks of `GROW_BLOCK` rows that are not neighbours. Sensor noise shares no such
    pair, so unlike the detail itself, which its noise inflates most where no row is resampled
    between pixels, this measures the bars alone."""
    height, width = crop.shape
    count = height // GROW_BLOCK
    margin = int(0.3 * height) + 2  # columns that shift in from past the crop's ends
    if width <= 2 * margin + 1 or count < 3:
        return 0.0, 0.0
    blocks = _row_blocks(crop)
    fine = cv2.resize(blocks, (width * SHEAR_UPSAMPLE, count), interpolation=cv2.INTER_CUBIC)
    rows = (np.arange(count) + 0.5) * GROW_BLOCK - count * GROW_BLOCK / 2

    def details(slant: np.ndarray, lean: np.ndarray) -> np.ndarray:
        return _kept_detail(fine, rows, slant, lean, width, margin)

    slant = float(slants[np.argmax(details(slants, np.zeros_like(slants)))])
    lean = float(leans[np.argmax(details(np.full_like(leans, slant), leans))])
    slant_step, lean_step = slants[1] - slants[0], leans[1] - leans[0]
    steps = np.array((-1, 0, 1))
    pair_slants = np.repeat(slant + steps * slant_step / 2, 3)
    pair_leans = np.tile(lean + steps * lean_step / 2, 3)
    best = int(np.argmax(details(pair_slants, pair_leans)))
    return float(pair_slants[best]), float(pair_leans[best])


@njit(cache=True, nogil=True)
def _kept_detail(
    fine: np.ndarray,
    rows: np.ndarray,
    slants: np.ndarray,
    leans: np.ndarray,
    width: int,
    margin: int,
) -> np.ndarray:
    """`_shear`'s measure, compiled, for each pair of `slants` and `leans`: the detail of the
    column means of the row blocks `fine` (`SHEAR_UPSAMPLE` samples per column; `rows` their
    offsets from the middle) sheared so, counted between blocks that are not neighbours, over
    the columns `margin` in from either end of `width`."""
    kept = np.zeros(len(slants))
    last = width * SHEAR_UPSAMPLE - 1
    columns = width - 2 * margin - 1  # steps between neighbouring columns
    totals = np.empty(columns)  # per column step: summed over the blocks
    above = np.empty(columns)  # per column step: the previous block's
    drift = np.empty(width)  # per column: the pair's slide per row offset
    for pair in range(len(slants)):
        totals[:] = 0.0
        above[:] = 0.0
        near = 0.0
        for x in range(margin, width - margin):
            drift[x] = slants[pair] + leans[pair] * (x / width - 0.5)
        for row in range(len(rows)):
            offset = rows[row]
            previous = 0.0
            for x in range(margin, width - margin):
                at = int(np.rint((x + drift[x] * offset) * SHEAR_UPSAMPLE))
                value = np.float64(fine[row, min(max(at, 0), last)])
                if x > margin:
                    step = value - previous
                    column = x - margin - 1
                    totals[column] += step
                    near += step * step + 2 * step * above[column]
                    above[column] = step
                previous = value
        kept[pair] = np.sum(totals * totals) - near
    return kept


def _row_blocks(image: np.ndarray) -> np.ndarray:
    """The means of `image`'s consecutive blocks of `GROW_BLOCK` rows (a last, shorter block
    left out), as float32."""
    count = len(image) // GROW_BLOCK
    blocks = image[: count * GROW_BLOCK].astype(np.float32)
    return blocks.reshape(count, GROW_BLOCK, image.shape[1]).mean(axis=1)


def _sheared(
    gray: np.ndarray,
    region: Region,
    rows: np.ndarray,
    cols: np.ndarray,
    slant: float,
    lean: float,
    *,
    lean_past_ends: bool = True,
) -> np.ndarray:
    """`gray` at crop `rows` and `cols` of `region` (either may reach past the crop), each row
    slid along the bars by `slant` px per row from the rows' middle, plus `lean` per row from
    the crop's left end to its right: bars that drift so are set upright. Without
    `lean_past_ends`, columns past the crop's ends are slid as its end columns are: a lean
    measured within a short crop is too rough to carry on a crop's width past it."""
    height, width = region.crop.shape
    centred = (rows - (rows[0] + rows[-1]) / 2)[:, None]
    along = cols[None, :] / width
    if not lean_past_ends:
        along = np.clip(along, 0.0, 1.0)
    xs = cols[None, :] + (slant + lean * (along - 0.5)) * centred
    ys = np.broadcast_to(rows[:, None], xs.shape)
    return _sample(gray, region.corners, (width, height), xs, ys)


def straighten(gray: np.ndarray, region: Region) -> Region | None:
    """`region` cut out again with its bars exactly vertical, and wider where its bars run on
    to its ends; None where neither is needed.

    The half-scale structure tensor gets a code's direction within a few degrees, and blur
    along the bars that turns away from them biases it further; over a 40-row crop a degree
    shifts the top rows against the bottom ones by most of a 1.2 px module, which averaging
    along the bars then smears away. The shift between the top and the bottom third's column
    means, in either half of the code (perspective turns the bars along it), is the bars' slant.
    """
    crop = region.crop.astype(np.float32)
    height, width = crop.shape
    if height < 9:
        return None
    distance, halves = _thirds(crop)
    slants = []
    for top, bottom in halves:
        shifts, shifted, inner_top = _shifted(top, bottom, MAX_SLANT * distance)
        slants.append(float(shifts[int(np.argmax(shifted @ inner_top))]) / distance)
    slanted = max(abs(slant) for slant in slants) * distance >= MIN_DRIFT
    # Bars up to the crop's ends: the locator lost part of the code (to glare or a dim end).
    detail = np.abs(_detail(crop.mean(axis=0)))
    end = max(4, width // 12)
    cut = max(detail[:end].mean(), detail[-end:].mean()) > RUNS_ON * detail[end:-end].mean()
    if not slanted and not cut:
        return None
    slant, lean = (slants[0] + slants[1]) / 2, 2 * (slants[1] - slants[0])
    extra = round(EXTEND * width) if cut else 0
    rows = np.arange(height, dtype=np.float32)
    cols = np.arange(-extra, width + extra, dtype=np.float32)
    return _recut(region, _sheared(gray, region, rows, cols, slant, lean), -extra, 0)


def _detail(profiles: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    """A profile, or each row of a stack of them, less its slow changes (light, glare; over
    `sigma` px): what aligns the bars."""
    rows = np.atleast_2d(profiles)
    slow = cv2.GaussianBlur(rows, (0, 0), sigmaX=sigma, sigmaY=1e-3)
    return profiles - slow.reshape(profiles.shape)


def bar_likeness(region: Region) -> float:
    """How alike the top and the bottom third of `region`'s crop are across it: their detail
    profiles' correlation at the best slant `straighten` considers, the mean of either half's.

    Near 1 for bars, which run the crop's whole height; lower for a line of large print, whose
    glyphs' strokes are as strong and as coherent as bars (a ticket's job number in its heading
    outweighs a blurred Code 128), but differ from their top to their bottom. 0 for a crop too
    small to tell.
    """
    crop = region.crop.astype(np.float32)
    if crop.shape[0] < 9:
        return 0.0
    distance, halves = _thirds(crop)
    likeness = []
    for top, bottom in halves:
        _, shifted, inner_top = _shifted(top, bottom, MAX_SLANT * distance)
        if len(inner_top) < MIN_PROFILE:
            return 0.0
        norms = np.linalg.norm(shifted, axis=1) * np.linalg.norm(inner_top) + 1e-6
        likeness.append(float(np.max(shifted @ inner_top / norms)))
    return float(np.mean(likeness))


def _thirds(crop: np.ndarray) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
    """The distance (rows) between the crop's top and bottom third's centres, and per half of
    its width (perspective turns the bars along a code) their column means' detail."""
    height, width = crop.shape
    third = height // 3
    halves = [
        (
            _detail(crop[:third, columns].mean(axis=0)),
            _detail(crop[height - third :, columns].mean(axis=0)),
        )
        for columns in (slice(0, width // 2), slice(width // 2, width))
    ]
    return float(height - third), halves


def _shifted(
    top: np.ndarray, bottom: np.ndarray, limit: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shifts (px) of `bottom` to the right of `top` within `limit`, `bottom` resampled at each
    (shifts × samples) and the samples of `top` they align with, short of either end."""
    x = np.arange(len(top), dtype=np.float32)
    shifts = np.arange(-limit, limit + SLANT_STEP / 2, SLANT_STEP, dtype=np.float32)
    margin = int(np.ceil(limit)) + 1
    inner = x[margin : len(top) - margin]
    shifted = np.interp(inner[None, :] + shifts[:, None], x, bottom)
    return shifts, shifted, top[margin : len(top) - margin]
