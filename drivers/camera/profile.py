"""Code 128 from a 1D intensity profile across the bars (dark bars on a light ground).

Blur across the bars merges narrow elements into grey ripples that no binarisation (and no
edge detector) separates, but the ripples still carry the code: the profile is modelled as
the module pattern blurred by a Gaussian, read character by character on a grid pinned to the
outer edges of the code (next to the quiet zones they stay findable). Each character is the
symbol whose rendering, with the decoded left neighbour as context and free gain and offset,
correlates best with the samples; a small beam of partial decodes lets a wrong character be
caught by its right neighbour's fit.

Where no start and stop fit at the outer edges found (glare that clips the paper over an end,
a dim or smeared end bar), or the code decodes whole under none of those that fit, the start
and stop characters are looked for themselves, by sliding their renderings along the profile.

Perspective narrows the modules along a tilted code; the profile is resampled to even them
out under a few such hypotheses. Only the best-fitting complete decode of all grid, blur and
perspective hypotheses counts, and only if it has a start character, fits the stop where the
drifting grid ends, passes the mod-103 check and no other checked decode fits nearly as well;
the caller still confirms it with a second decode (another profile or decoder).

The check also works over the whole code: a Viterbi search over the characters' runner-up
symbols, with the running checksum as its state, finds the checked codes that fit best, and
each is then fitted whole, with one paper level and one contrast for the entire code. One that
explains the profile clearly best settles a decode a hidden character made fail the check, and
one that explains it better than a checked decode makes that ambiguous.

Where neither reads a profile, the whole-code model reads it once more: the level and contrast
fitted to the best decode are held fixed, and each character is the symbol whose rendering
under them leaves the least squared error, the model refitted to what was read and read again.
A code that passes the check that way vouches for itself; one the check settled is vouched
for again when the refit reads it too. A refit that fails the check is settled by it as a
best decode is, over the checked codes of its own squared errors.
"""

import re
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from itertools import pairwise

import cv2
import numpy as np
from numba import njit

from .locate import percentiles

# Element widths (bar, space, …) of the 107 Code 128 symbols; 106 is the stop, whose seventh
# element is the final bar.
PATTERNS = (
    "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212",
    "221213", "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221",
    "223211", "221132", "221231", "213212", "223112", "312131", "311222", "321122", "321221",
    "312212", "322112", "322211", "212123", "212321", "232121", "111323", "131123", "131321",
    "112313", "132113", "132311", "211313", "231113", "231311", "112133", "112331", "132131",
    "113123", "113321", "133121", "313121", "211331", "231131", "213113", "213311", "213131",
    "311123", "311321", "331121", "312113", "312311", "332111", "314111", "221411", "431111",
    "111224", "111422", "121124", "121421", "141122", "141221", "112214", "112412", "122114",
    "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111", "111242",
    "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
    "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311",
    "113141", "114131", "311141", "411131", "211412", "211214", "211232", "2331112",
)  # fmt: skip
START_A, START_B, START_C, STOP = 103, 104, 105, 106
SHIFT, CODE_C, CODE_B, CODE_A, FNC1 = 98, 99, 100, 101, 102


# Point spread hypotheses across the bars, in modules: (Gaussian sigma, motion blur length).
# Focus blur is near Gaussian; motion across the bars is a box, whose hard ends a Gaussian
# of the same width fits badly.
Blur = tuple[float, float]
FIT_BLURS: tuple[Blur, ...] = (
    *((sigma, 0.0) for sigma in (0.5, 0.7, 0.9, 1.1, 1.3)),
    *((sigma, motion) for sigma in (0.4, 0.8) for motion in (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)),
)
# Motion blur of 7–13 px across 1.2–1.8 px modules is 4–11 modules, and past 2 modules it moves
# the outer edges found out beyond the outer bars (`_spread`): these blurs are fitted on a grid
# placed for that. Tried only on the strongest located code that the usual fit decoded whole
# but left unread (`ProfileFit(..., heavy=True)`), so that only such frames pay for it; longer
# blurs (6 and 7 modules) read no more hard dev frames.
HEAVY_BLURS: tuple[Blur, ...] = tuple((0.6, motion) for motion in (3.0, 4.0, 5.0))
Shape = tuple[int, float, Blur]  # a grid hypothesis: characters, module gradient, blur
# A complete decode: mean correlation, symbols, each data and check slot's correlations.
Fit = tuple[float, list[int], np.ndarray]
Grid = tuple[np.ndarray, float, float, Blur]  # evened profile, left outer edge, module, blur
FIT_RESOLUTION = 16  # rendering samples per module
# Relative change of the module width from a code's left end to its right: a ticket tilted away
# from the camera shows its far end smaller (by up to a third on hard frames: at ±0.24 the start
# and stop of missed hard frames still fitted better the steeper the gradient).
FIT_GRADIENTS = (0.0, -0.08, 0.08, -0.16, 0.16, -0.24, 0.24, -0.32, 0.32)
# Modules the grid may drift by per character under perspective: three shifts read as many
# corpus frames as five, at 60 % of the cost.
FIT_SHIFTS = np.linspace(-0.4, 0.4, 3)
MIN_FIT = 0.8  # correlation every character's rendering must reach
# Start-and-stop fit of a grid hypothesis worth decoding: less than MIN_FIT, as glare that clips
# the paper over one end of a code leaves the bars there shallow while the rest still reads (by
# the refit, or in a band of the code further from the glare).
SHAPE_FIT = 0.7
# A direction whose start and stop fit below MIN_FIT by this much at a middling blur and even
# modules is not tried further (read backwards, a code's stop is no start).
HOPELESS = 0.25
AMBIGUITY = 0.03  # mean correlation by which the best decode must beat other checked ones
# A best decode that fails the check is settled by it (`_check_settled`): of the checked
# decodes (`_checked_decodes`) made of each slot's `CHECK_CANDIDATES` best symbols that reach
# `CHECK_FLOOR`, the `CHECK_RIVALS` best are fitted whole (`_code_fit`); the best of those
# counts if its code fit is at least `MIN_CODE_FIT`, within `CHECK_LOSS` of the failed decode's,
# `CHECK_MARGIN` above the next one's, and its text a job number's (letters, digits and
# hyphens, as `core.contract` scans them): most wrong settlements on hard frames are not.
# A checked best decode counts only if no other checked decode has a better code fit.
# Measured on synthetic hard frames (seeds 20240602, 5151, 6161), the hard dev corpus and 58
# blank frames: the blank frames' text fitted whole at most 1.6, true codes mostly 2–5.
CHECK_CANDIDATES = 4
CHECK_FLOOR = 0.6
CHECK_RIVALS = 4
MIN_CODE_FIT = 2.0
CHECK_LOSS = 0.3
CHECK_MARGIN = 0.3
# Where neither reads a profile, the whole-code model reads it again (`_refitted`): one paper
# level and contrast, fitted to the best decode (or to the best shape's decode with no floor,
# where none was whole), then each character the symbol of least squared error under them, in
# a beam of `REFIT_BEAM`, the model refitted to what was read, `REFIT_ROUNDS` times. With the
# true code's model, the true symbol ranked first in 249 of 288 slots of missed hard frames,
# against 199 by the free-gain correlation. A refit that fails the check is settled by it as a
# best decode is (`_settled`), its checked rivals made of each slot's `CHECK_CANDIDATES` least
# squared errors: 3 more of 3,974 hard frames and 1 of the hard dev corpus' 36 L3 frames, none
# misread; where the grid was right, the refit got one or two characters of a hard code wrong
# that the check put right. The characters the check changes may cost at most
# `REFIT_SETTLE_LOSS` in squared error over the noise variance (`_slot_loss`): on blurred
# generated profiles, 95 of 103 right settlements cost less, the 3 wrong ones 29–44, and a
# code printed with a wrong check character 18–42 (changing only that one).
REFIT_BEAM = 4
REFIT_ROUNDS = 3
REFIT_SETTLE_LOSS = 15.0
# A decode whose code fit is below this (less than 63 % of the profile explained) is text or
# noise, not a code the refit would mend. Skipping those, and fitting rough decodes for the
# full height only, brought the synthetic normal set's p95 from 342 ms back to 182 (160 without
# any refit), one core, at no read lost there and 2 of 184 on the synthetic hard set.
REFIT_FLOOR = 1.0
# Every text a profile yields needs its best whole decode to explain the profile (`_explains`):
# to leave unexplained at most `NOISE_ALLOWANCE` times the variance of the profile's sensor noise
# (which the caller estimates) and `MAX_MISMATCH` of the profile's variance. Print that is no
# code, such as a blank ticket's lines of text, fits checked codes now and then: on clean frames
# those left 25–29 % of the profile unexplained, where 99 % of the decodes of true codes left
# less than 26 % beyond twice the noise, and no blank frame in 1,200 was read. (Measured with
# the noise taken from the even and odd rows, which on hard frames showed a third of what
# alternate pairs of rows show; with those, as now, 10 more of 3,974 hard frames read, and
# still none of those blanks.)
NOISE_ALLOWANCE = 2.0
MAX_MISMATCH = 0.2
# What a settled decode must read as: core.contract.ScanCode's job number (drivers do not
# import core, so the pattern is repeated here; change both together).
JOB_NUMBER = re.compile(r"[A-Za-z0-9-]{1,32}")
# Module widths (px) the fit considers: wider ones zxing-cpp reads; hard frames show codes at
# 1.2 px per module on average, narrower still at a tilted code's far end.
MODULE_PX = (1.0, 4.5)
FIT_COUNTS = 2  # character counts whose blurs are tried
# Characters of the shortest code fitted: start, two data characters, check, stop. A code of
# one data character is 46 modules whose check follows from its start and data alone: a piece
# of a longer code cut short by glare fits one (seen on synthetic hard frames), and no job
# number is that short.
MIN_COUNT = 5
NEIGHBOURS = (-1, 0, 1)  # counts next to the best on even modules, tried with perspective
FIT_TRIES = 2  # grid hypotheses decoded in full, best start-and-stop fits first
FIT_BEAM = 2  # partial decodes kept per character
EDGE_SHARE = 0.25  # of the strong edges: weaker gradient extrema are noise or narrow ripples
OUTER_SHARE = 0.5  # of the strong edges, at least, for the code's outer edges
QUIET_GAP = 5.0  # edge gaps this many times the median one end the code (elements are ≤ 4)
# Gaps (times the median) that bridged outer edges span inside a code: where glare clips the
# paper or the light is dim, a stretch of bars can lack edges of `EDGE_SHARE`, which cuts the
# run like a quiet zone (in half of the hard frames missed, one end was found 5–60 modules
# inside the code, most often so).
BRIDGE_GAP = 10.0
UPSAMPLE = 4  # cubic upsampling before edge finding: sub-pixel edges from a parabola fit
# Where the edges miss a code's end (glare that clips the paper over it, a dim or smeared end
# bar), its start and stop characters may still fit: `_slid_ends` slides their renderings
# along the full height's profile, each way, at modules `SLID_MODULES` 8 % apart and positions
# `SLIDE_STEP` modules apart (the grid shifts cover what lies between), at the middling focus
# blur the counts are chosen at. That read 33 more of 3,974 hard frames (none lost, none
# misread) and no blank one; modules 4 % apart and positions 0.8 modules apart, 6 more again,
# at 10 ms more on the hard frames' p95. Slid also where start and stop fit at the edges' ends
# but the full height decoded whole at none of them (one end found a few modules off, the
# count then wrong), as about half the missed hard frames did: 29 more (86.1 → 86.8 %), none
# lost; a blank ticket's text, which decodes whole rarely, pays for it (+7 % median, +8 %
# mean on 200 blank tickets beside the old code at the same time; the dev corpus's blank
# frames +2 %), frames that read do not. What is read at slid ends must read as a job number:
# a 5-character '2)VRD' was read there in a hard frame of 'J91545036'.
# A start and a stop that each fit `MIN_FIT` at their best position (for their module), at
# modules within `SLIDE_MATCH` of the module a whole count of characters between them gives,
# with quiet paper beyond each (`_quiet_beyond`), are outer edges to try like the edges' own:
# the `SLID_ENDS` best such pairs each way, by the worse of the two fits.
SLID_MODULES = np.geomspace(*MODULE_PX, 20)
SLIDE_STEP = 1.0
SLIDE_MATCH = 0.06
SLID_ENDS = 2
# Characters of the shortest code read at slid ends: start, four data characters, check and
# stop, as the lab's job numbers of eight digits make in code set C. The slide tries some 10⁴
# places, and a code's one check character lets a chance decode through 1 time in 103: while
# this was tuned on the hard sets, each of the four misreads at slid ends was a code of 5 or 6
# characters read in a longer one or in print; with this floor none was misread.
SLID_MIN_COUNT = 7
# Paper beyond a code's ends, from `QUIET_SPAN[0]` to `QUIET_SPAN[1]` modules out: what is left
# of it, less a straight line (a glare's slope), varies by at most `QUIET_SHARE` of what the
# code's samples do. A start and stop found inside a code's bars or a line of print are not.
QUIET_SPAN = (1.0, 7.0)
QUIET_SHARE = 0.3


# Sub-pixel edge positions (profile px), whether each is rising, and each one's strength.
Edges = tuple[np.ndarray, np.ndarray, np.ndarray]


def _edges(profile: np.ndarray) -> Edges:
    """Sub-pixel edge positions (profile px), whether each is rising (a bar ends there) and
    its strength relative to the strong edges, of the edges of at least `EDGE_SHARE` of that.

    Edges alternate: of two neighbouring extrema of one sign, the stronger stays.
    """
    row = profile.astype(np.float32)[None, :]
    fine = cv2.resize(row, (row.shape[1] * UPSAMPLE, 1), interpolation=cv2.INTER_CUBIC)[0]
    grad = np.gradient(cv2.GaussianBlur(fine[None, :], (0, 0), UPSAMPLE / 2)[0])
    g0, g1, g2 = grad[:-2], grad[1:-1], grad[2:]
    peaks = np.nonzero(((g1 > g0) & (g1 >= g2)) | ((g1 < g0) & (g1 <= g2)))[0] + 1
    strength = np.abs(grad[peaks])
    if not len(peaks):
        return np.zeros(0), np.zeros(0, bool), np.zeros(0)
    reference = float(percentiles(strength, (95,))[0])
    index = _alternating(grad, peaks[strength >= EDGE_SHARE * reference])
    index = index[(index > 0) & (index < len(grad) - 1)]
    before, at, after = grad[index - 1], grad[index], grad[index + 1]
    curvature = before - 2 * at + after
    offset = np.where(curvature != 0, 0.5 * (before - after) / np.where(curvature, curvature, 1), 0)
    return (index + offset + 0.5) / UPSAMPLE - 0.5, at > 0, np.abs(at) / reference


@njit(cache=True, nogil=True)
def _alternating(grad: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Of `peaks` (ascending indices of `grad`'s extrema), the strongest of each run of one
    sign (the first of equals), so that rising and falling edges alternate."""
    kept = np.empty(len(peaks), np.intp)
    count = 0
    for peak in peaks:
        if count and (grad[peak] > 0) == (grad[kept[count - 1]] > 0):
            if abs(grad[peak]) > abs(grad[kept[count - 1]]):
                kept[count - 1] = peak
        else:
            kept[count] = peak
            count += 1
    return kept[:count]


def _checked(values: list[int]) -> bool:
    *data, check, _stop = values
    return (data[0] + sum(i * v for i, v in enumerate(data[1:], 1))) % 103 == check


# Code set switches per set; FNC2–4 never occur on tickets and make a decode fail.
_SWITCH = {"A": {CODE_C: "C", CODE_B: "B"}, "B": {CODE_C: "C", CODE_A: "A"}}
_SWITCH["C"] = {CODE_B: "B", CODE_A: "A"}


def _text(values: list[int]) -> str | None:
    """Human-readable text of checked symbol values, as zxing-cpp reports it."""
    out: list[str] = []
    code = {START_A: "A", START_B: "B", START_C: "C"}[values[0]]
    shifted = False
    for value in values[1:-2]:
        current = {"A": "B", "B": "A"}[code] if shifted else code
        shifted = False
        if current == "C" and value < 100:
            out.append(f"{value:02d}")
        elif current != "C" and value < 96:
            out.append(chr(value + 32 if current == "B" or value < 64 else value - 64))
        elif value == FNC1:
            if out:  # a leading FNC1 marks GS1 data and is not part of the text
                out.append("\x1d")
        elif value == SHIFT and current != "C":
            shifted = True
        elif value in _SWITCH[current]:
            code = _SWITCH[current][value]
        else:
            return None
    return "".join(out)


_STARTS = (START_A, START_B, START_C)
_PAD = 2  # modules of context rendered each side of a character
# Context modules (bar coverage): the quiet zone; a character's next neighbour starts with a
# bar of at least one module; before the stop, the unknown neighbour is half covered on average.
_QUIET = np.zeros(_PAD, np.float32)
_NEXT = np.array([1.0, 0.5], np.float32)
_QUIET_THEN_BAR = np.concatenate([_QUIET, _NEXT])
_BEFORE_QUIET = np.array([0.5, 0.0, 0.0, 0.0], np.float32)  # the stop's unknown neighbour


def _modules(value: int) -> np.ndarray:
    """The symbol's modules: 1 for bar, 0 for space."""
    return np.repeat(np.arange(len(PATTERNS[value])) % 2 == 0, [int(w) for w in PATTERNS[value]])


_MODULES = [_modules(value).astype(np.float32) for value in range(len(PATTERNS))]


@cache
def _renderings(
    blurs: tuple[Blur, ...], values: tuple[int, ...], context: tuple[float, ...]
) -> np.ndarray:
    """Each symbol with `context` (bar coverage of `_PAD` modules either side) under each blur,
    `FIT_RESOLUTION` samples per module: (blurs · symbols) × samples, blur-major.
    """
    width = 2 * _PAD + len(_MODULES[values[0]])
    rows = np.zeros((len(values), width), np.float32)
    rows[:, :_PAD], rows[:, width - _PAD :] = context[:_PAD], context[_PAD:]
    for row, value in zip(rows, values, strict=True):
        row[_PAD : width - _PAD] = _MODULES[value]
    return np.vstack([_blur(rows, blur) for blur in blurs])


def _blur(modules: np.ndarray, blur: Blur) -> np.ndarray:
    fine = np.repeat(np.atleast_2d(modules), FIT_RESOLUTION, axis=1)
    sigma, motion = blur
    fine = cv2.GaussianBlur(fine, (0, 0), sigmaX=FIT_RESOLUTION * sigma, sigmaY=1e-3)
    if motion:
        fine = cv2.blur(fine, (round(FIT_RESOLUTION * motion), 1), borderType=cv2.BORDER_CONSTANT)
    return fine


def fit_profile(profile: np.ndarray) -> Iterator[str]:
    """The checked Code 128 text the model fit finds in `profile`, read either way, if any."""
    return (text for _, text in fit_profiles([profile]))


def fit_profiles(
    profiles: Sequence[np.ndarray], *, heavy: bool = False
) -> Iterator[tuple[int, str]]:
    """`ProfileFit` of `profiles`, iterated."""
    return iter(ProfileFit(profiles, heavy=heavy))


Plans = dict[bool, list[tuple[tuple[float, float], list[Shape]]]]  # by flip: ends, shapes


class ProfileFit:
    """(index, text) of the profiles across one code in which the fit finds checked text, as
    they are found (a caller that has its answer stops); and, once iterated, whether any
    profile was decoded whole under some hypothesis (`whole`), checked or not: a code was fitted
    there, which only the fit's doubts kept from being read.

    The first profile, the least noisy (the code's full height), decides the outer edges (by
    its edges, or else by its start and stop: `_slid_ends`), the direction, the character
    count, the perspective and the blur to try; each profile is then decoded with
    those (fitting them once, not per profile, halves the cost of a hard frame). Only the
    best-fitting complete decode of a profile counts: a worse-fitting hypothesis that happens
    to pass the check is how misreads are made. `heavy` fits motion blur on a grid placed for it
    (`HEAVY_BLURS`) instead of the usual blurs, from the first outer edges only. `settled` holds
    the indices of the profiles whose text the check settled (`_check_settled`) and the refit
    did not read: their best decode failed the check, and the check chose the code, so it no
    longer vouches for it. Only the first `ends_from` profiles (all by default) agree on the
    code's outer edges (`_candidate_ends`); the rest are decoded on what those agreed. The
    profiles from `confirm_from` on (none by default) are decoded only once an earlier one has
    read a text: they are there to confirm it. Where the variance of each profile's sensor noise
    is given (`noise`), a profile that its best whole decode does not explain (`_explains`)
    yields nothing.
    """

    def __init__(
        self,
        profiles: Sequence[np.ndarray],
        *,
        heavy: bool = False,
        ends_from: int | None = None,
        confirm_from: int | None = None,
        noise: Sequence[float] | None = None,
    ) -> None:
        self.profiles = profiles
        self.noise = noise
        self.heavy = heavy
        self.ends_from = ends_from
        self.confirm_from = len(profiles) if confirm_from is None else confirm_from
        self.whole = False
        self.settled: set[int] = set()

    def __iter__(self) -> Iterator[tuple[int, str]]:
        profiles, heavy = self.profiles, self.heavy
        blurs = HEAVY_BLURS if heavy else FIT_BLURS
        # Each profile's own outer edges: those agreeing on the code's first, the rest's only as
        # they are decoded (a caller that has its answer stops after two or three profiles).
        edges = [_edges(profile) for profile in profiles[: self.ends_from]]
        own = [_outer_edges(found) for found in edges]
        agreed = _candidate_ends(edges[0], own)
        if heavy:  # the first edges alone: the choice of shapes under each costs most of a fit
            agreed = agreed[:1]
        plans = _plans(profiles[0], agreed, blurs)
        # Where no start and stop fit at the ends the edges gave (or there were none), or the
        # full height decoded whole under none of them: where the start and stop characters
        # themselves fit (`_slid_ends`).
        slid = not heavy and not any(plans.values())
        if slid:
            plans = _plans(profiles[0], _slid_ends(profiles[0]), blurs)
        read = False
        for index, profile in enumerate(profiles):
            if index >= self.confirm_from and not read:
                return
            profile_ends = own[index] if index < len(own) else _outer_edges(_edges(profile))
            for text in self._read(index, profile, profile_ends, plans, slid):
                read = True
                yield index, text
            # The first profile is the full height: nothing decoded whole so far means nothing
            # did under these plans.
            if not index and not read and not self.whole and not heavy and not slid:
                more = _plans(profile, _slid_ends(profile), blurs)
                for text in self._read(index, profile, profile_ends, more, True):
                    read = True
                    yield index, text
                if self.whole:  # the other profiles are decoded where the full height was
                    plans, slid = more, True

    def _read(
        self,
        index: int,
        profile: np.ndarray,
        profile_ends: tuple[float, float] | None,
        plans: Plans,
        slid: bool,
    ) -> Iterator[str]:
        """The texts profile `index` reads under `plans` (its own outer edges, `profile_ends`,
        standing in for those near them), one per reading direction at most, as they are
        found; `whole` is set where it was decoded whole under any of them. Plans at `slid`
        ends read job numbers only (see `SLID_MODULES`)."""
        for flip, direction in plans.items():
            # One contest per reading direction over every plan: two edge pairs that give two
            # different codes are as ambiguous as two blurs that do.
            decodes: list[tuple[Fit, Grid]] = []
            first: tuple[Grid, int] | None = None  # the best shape: the refit's rough seed
            for ends, shapes in direction:
                if profile_ends is not None and _near(profile_ends, ends):
                    ends = profile_ends
                oriented, (left, right) = _oriented(profile, ends, flip)
                for count, gradient, blur in shapes:
                    even = _evened(oriented, left, right, gradient)
                    start, module = _grid(left, right, count, blur)
                    grid = (even, start, module, blur)
                    if first is None:
                        first = (grid, count)
                    decoded = _fit_symbols(even, start, module, count, blur)
                    if decoded is not None:
                        decodes.append((decoded, grid))
            self.whole |= bool(decodes)
            text = _unambiguous(_check_settled(decodes))
            if text is not None:
                best, _ = _best(decodes)
                # A refit that reads the same code without the check's help vouches for it as
                # the check, having chosen it, no longer can.
                if not _checked(best) and _refitted(decodes) != (text, False):
                    self.settled.add(index)
            else:
                # A rough decode costs a whole beam: for the full height only, the least noisy
                # profile.
                decodes = decodes or _rough(None if index else first)
                text, by_check = _refitted(decodes)
                if by_check:
                    self.settled.add(index)
            if text is None or (slid and not JOB_NUMBER.fullmatch(text)):
                continue
            if self._explains(index, decodes):
                yield text

    def _explains(self, index: int, decodes: list[tuple[Fit, Grid]]) -> bool:
        """Whether the best of `decodes`, fitted whole (`_code_model`), leaves no more of
        profile `index` unexplained than its sensor noise (`NOISE_ALLOWANCE`) and a model's
        mismatch (`MAX_MISMATCH`) account for; so where the noise or the fit is unknown."""
        if self.noise is None or not decodes:
            return True
        values, grid = _best(decodes)
        model = _code_model(grid, values)
        if model is None:
            return True
        _, fit, unexplained = model
        variance = unexplained * np.exp(fit)  # the profile's along the code
        return unexplained <= NOISE_ALLOWANCE * self.noise[index] + MAX_MISMATCH * variance


def _plans(
    profile: np.ndarray, agreed: list[tuple[float, float]], blurs: tuple[Blur, ...]
) -> Plans:
    """For each reading direction, the outer edge pairs of `agreed` under which a start and
    a stop fit `profile` (`_hypotheses`), with their shapes."""
    plans: Plans = {False: [], True: []}
    for ends in agreed:
        for flip, direction in plans.items():
            if shapes := _hypotheses(_oriented(profile, ends, flip), blurs):
                direction.append((ends, shapes))
    return plans


def _candidate_ends(
    first: Edges, own: list[tuple[float, float] | None]
) -> list[tuple[float, float]]:
    """The outer edge pairs the fit tries for the code, the full height's own first; `first`
    are the full height's edges (`_edges`), `own` each profile's own outer edges
    (`_outer_edges`). Empty where no profile has any."""
    found = [ends for ends in own if ends is not None]
    if not found:
        return []
    # The full height's own outer edges and the ones the profiles agree on (one profile's may
    # stop at a smear or a glare, and the bands' noise may add an edge in the quiet zone, such
    # as a label's border, that outvotes the full height's). Both, even when they are near: at
    # 1.2 px modules the start and stop fits that choose the shapes turn on a fraction of a
    # pixel, and a second set of shapes reads hard frames that one set misses.
    agreed = [tuple(np.median(found, axis=0).tolist())]
    if own[0] is not None:
        agreed = [own[0], *(ends for ends in agreed if ends != own[0])]
    # And the run's outermost edges, however weak: glare or a dim end leaves a code's end bars
    # too faint to count as strong, which cuts the code short; the start and stop fits decide.
    weak = _outer_edges(first, EDGE_SHARE)
    if weak is not None and not any(_near(weak, ends) for ends in agreed):
        agreed.append(weak)
    # And the run joined to its neighbours across gaps that glare or dim light left in the
    # code (`BRIDGE_GAP`), one end at a time (the other is the weak one's): the start and
    # stop fits decide whether the code goes on there.
    if weak is not None and (bridged := _outer_edges(first, EDGE_SHARE, BRIDGE_GAP)):
        for ends in ((bridged[0], weak[1]), (weak[0], bridged[1])):
            if not any(_near(ends, other) for other in agreed):
                agreed.append(ends)
    return agreed


def _refitted(decodes: list[tuple[Fit, Grid]]) -> tuple[str | None, bool]:
    """The text of the best decode read again by the whole-code model (`_refit`), if that
    fits at least `MIN_CODE_FIT`, no worse than the decode it started from, and passes the
    check: by itself, or settled by it as a failed best decode is (`_settled`, over the checked
    decodes of the refit's own squared errors); and whether the check settled it. What passes by
    itself the check did not choose, so it vouches for it as for any fitted decode; a second
    decode must still confirm it."""
    if not decodes:
        return None, False
    best, grid = _best(decodes)
    refitted = _refit(grid, best)
    if refitted is None:
        return None, False
    values, fit, started, slots = refitted
    if fit < MIN_CODE_FIT or fit < started:
        return None, False
    if _checked(values):
        text = _text(values)
        return (text, False) if JOB_NUMBER.fullmatch(text or "") else (None, False)
    rivals = [
        (_code_fit(grid, checked), checked)
        for checked in _checked_decodes(slots, values[0], _best_symbols)
    ]
    settled = _settled(fit, rivals)  # a job number's, if any
    if settled is None or _slot_loss(slots, values, settled) > REFIT_SETTLE_LOSS:
        return None, False
    return _text(settled), True


def _slot_loss(slots: np.ndarray, values: list[int], other: list[int]) -> float:
    """How much worse `other` scores than `values` over the data and check `slots`."""
    rows = np.arange(len(slots))
    inner = slice(1, len(values) - 1)
    return float(slots[rows, values[inner]].sum() - slots[rows, other[inner]].sum())


def _best(decodes: list[tuple[Fit, Grid]]) -> tuple[list[int], Grid]:
    """The symbols of the best-fitting of `decodes` (by mean correlation), and its grid."""
    (_, values, _), grid = max(decodes, key=lambda decoded: decoded[0][0])
    return values, grid


def _rough(seed: tuple[Grid, int] | None) -> list[tuple[Fit, Grid]]:
    """The decode of `seed` (a grid and its character count) with no floor on the characters'
    fits: where no hypothesis decoded whole, a start for the refit, never read as such."""
    if seed is None:
        return []
    (profile, start, module, blur), count = seed
    decoded = _fit_symbols(profile, start, module, count, blur, -1.0)
    return [] if decoded is None else [(decoded, seed[0])]


def _near(ends: tuple[float, float], other: tuple[float, float]) -> bool:
    """Whether two outer edge pairs are one code's, give or take 5 % of its length."""
    return bool(np.abs(np.subtract(ends, other)).max() <= 0.05 * (other[1] - other[0]))


def _unambiguous(decodes: list[tuple[float, list[int]]]) -> str | None:
    """The text of the best-fitting decode, if it passes the check and no other checked code
    (under another hypothesis) fits nearly as well: heavy blur can make two codes look alike,
    and then the better fit is chance. A close decode that fails the check is no such code:
    it only says the blur hides a character there, which the check character settles.
    """
    if not decodes:
        return None
    best_score, best = max(decodes, key=lambda decoded: decoded[0])
    if not _checked(best):
        return None
    close = (v for score, v in decodes if v != best and best_score - score < AMBIGUITY)
    return None if any(_checked(values) for values in close) else _text(best)


def _check_settled(decodes: list[tuple[Fit, Grid]]) -> list[tuple[float, list[int]]]:
    """The decodes' (mean fit, symbols), the best one settled by the check (`_settled`): if it
    fails the check, blur that hid a character left its right symbol a close second, and the
    check character says which; if it passes, another checked code that explains the profile
    better makes it as ambiguous as another hypothesis's would (`_unambiguous`). No decodes
    then."""
    settled = [(score, values) for (score, values, _), _ in decodes]
    if not decodes:
        return settled
    best = max(range(len(decodes)), key=lambda i: decodes[i][0][0])
    (score, values, slots), grid = decodes[best]
    # The slots' correlations were taken along the best decode's grid and neighbours: the
    # checked candidates are fitted again whole, on their own grid and neighbours.
    rivals = [(_code_fit(grid, checked), checked) for checked in _checked_decodes(slots, values[0])]
    if _checked(values):
        return settled if _clear(_code_fit(grid, values), values, rivals, 0.0) else []
    if (checked := _settled(_code_fit(grid, values), rivals)) is not None:
        settled[best] = (score, checked)
    return settled


def _settled(unchecked: float, rivals: list[tuple[float, list[int]]]) -> list[int] | None:
    """The checked decode of `rivals` (code fit, symbols) with the best code fit, if that is at
    least `MIN_CODE_FIT`, within `CHECK_LOSS` of the best decode's regardless of the check
    (`unchecked`), `CHECK_MARGIN` above every other's (`_clear`) and reads as a job number."""
    if not rivals:
        return None
    fit, values = max(rivals, key=lambda rival: rival[0])
    if fit < MIN_CODE_FIT or unchecked - fit > CHECK_LOSS:
        return None
    if not _clear(fit, values, rivals, CHECK_MARGIN):
        return None
    return values if JOB_NUMBER.fullmatch(_text(values) or "") else None


def _clear(
    fit: float, values: list[int], rivals: list[tuple[float, list[int]]], margin: float
) -> bool:
    """Whether `values`, of code fit `fit`, beats every other checked decode of `rivals` by
    `margin`."""
    return all(fit - other >= margin for other, v in rivals if v != values)


def _code_fit(grid: Grid, values: list[int]) -> float:
    """How well a whole decode explains the profile along the code: minus the log of the share
    of the samples' variance that its rendering leaves unexplained (2 leaves 14 %, 3 leaves 5 %).

    Each symbol sits at its best grid shift, as in the decode, but all share one paper level and
    one contrast, each free to change linearly along the code (a glare's slope). The per-symbol
    correlations let every symbol choose its own gain and offset, so under heavy blur a wrong
    symbol's flat rendering fits a ripple of noise well; across the whole code it cannot,
    which tells apart the checked decodes that differ in a hidden character or two. On hard
    frames the right one led the others by a clear margin where the summed correlations lay
    within a few hundredths.
    """
    model = _code_model(grid, values)
    return -np.inf if model is None else model[1]


# Level and contrast along the code: coefficients of (1, x, coverage, coverage·x) and how
# x is normalised from profile px (mean, std).
Model = tuple[np.ndarray, float, float]


def _code_model(grid: Grid, values: list[int]) -> tuple[Model, float, float] | None:
    """The whole-code fit of `values` (`_code_fit`): its level and contrast model, the code fit
    and the residual variance per sample; None where a symbol falls off the profile."""
    profile, start, module, blur = grid
    found, where, coverage = _code_coverage(
        _symbol_table(blur),
        np.ascontiguousarray(profile, np.float32),
        np.asarray(values, np.intp),
        float(start),
        float(module),
    )
    if not found:
        return None
    samples = profile[where].astype(np.float64)
    bars = coverage.astype(np.float64)
    mean, std = float(where.mean()), max(float(where.std()), 1.0)
    along = (where - mean) / std
    design = np.stack([np.ones_like(along), along, bars, bars * along], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, samples, rcond=None)
    residual = samples - design @ coefficients
    centred = samples - samples.mean()
    unexplained = max(residual @ residual, 1e-12)
    fit = float(-np.log(unexplained / max(centred @ centred, 1e-12)))
    return (coefficients, mean, std), fit, unexplained / len(samples)


@njit(cache=True, nogil=True)
def _code_coverage(
    table: np.ndarray, profile: np.ndarray, values: np.ndarray, start: float, module: float
) -> tuple[bool, np.ndarray, np.ndarray]:
    """`_code_model`'s walk along the code, compiled: each of `values` from `start` px at its
    best grid shift, as the decode placed it (`_beam_decode`), its own pixels, from where it
    starts to where the next would, and its rendering's bar coverage there (`_symbol_table`).
    False where a symbol's window leaves the profile."""
    size = int(len(values) * (14 * module + 2)) + 1
    where = np.empty(size, np.intp)
    coverage = np.empty(size, np.float32)
    score = np.empty(1)
    chosen = np.empty(1, np.intp)
    taken = 0
    for position in range(len(values)):
        value = values[position]
        span = 13 if value == STOP else 11
        first, end = _window_span(len(profile), start, module, span)
        if end < first:
            return False, where[:0], coverage[:0]
        pixels = np.arange(first, end + 1)
        last = position == len(values) - 1
        renderings = table[_table_row(values[position - 1] if position else -1, last)]
        index = _fine_index(pixels, start, module, FIT_SHIFTS, renderings.shape[1])
        _scored_by_correlation(renderings, value, value + 1, index, profile, pixels, score, chosen)
        shifted = FIT_SHIFTS[chosen[0] : chosen[0] + 1]
        shift = shifted[0]
        own_first = max(int(np.ceil(start + shift * module)), 0)
        own_end = min(int(np.ceil(start + (shift + span) * module)), len(profile))
        own = np.arange(own_first, own_end)
        at = _fine_index(own, start, module, shifted, renderings.shape[1])
        for k in range(len(own)):
            where[taken] = own[k]
            coverage[taken] = renderings[value, at[0, k]]
            taken += 1
        start += (11 + shift) * module
    return True, where[:taken], coverage[:taken]


def _refit(grid: Grid, values: list[int]) -> tuple[list[int], float, float, np.ndarray] | None:
    """The decode read under the whole-code model of `values` (`_fixed_beam`), the model fitted
    again to what was read, `REFIT_ROUNDS` times; with its code fit, that of `values`, and its
    data and check slots' scores in the last round (slots × values)."""
    found = _code_model(grid, values)
    if found is None or (started := found[1]) < REFIT_FLOOR:
        return None
    for _ in range(REFIT_ROUNDS):
        model, _, noise = found
        again = _fixed_beam(grid, len(values), model, noise)
        if again is None or (found := _code_model(grid, again[0])) is None:
            return None
    decoded, slots = again
    return decoded, found[1], started, slots


def _fixed_beam(
    grid: Grid, count: int, model: Model, noise: float
) -> tuple[list[int], np.ndarray] | None:
    """The best decode of `count` characters on `grid` with the paper level and contrast fixed
    by `model`, and its data and check slots' scores: each character scored by its squared
    error (over the `noise` variance), negated, in a beam of `REFIT_BEAM` partial decodes. With
    free gain and offset a wrong symbol's flat rendering fits a ripple of noise; with the
    code's own, it cannot."""
    profile, left, module, blur = grid
    found = _beam(profile, left, module, count, blur, REFIT_BEAM, -np.inf, model, noise)
    return None if found is None else found[1:]


@njit(cache=True, nogil=True)
def _scored_by_error(
    renderings: np.ndarray,
    low: int,
    high: int,
    index: np.ndarray,
    profile: np.ndarray,
    pixels: np.ndarray,
    coefficients: np.ndarray,
    mean: float,
    std: float,
    errors: np.ndarray,
    shifts: np.ndarray,
) -> None:
    """Into `errors` and `shifts`: each of the `renderings` from `low` to `high`, sampled at
    `index` (shifts × pixels, `_fine_index`) under the level and contrast `coefficients`
    (`Model`, along `pixels` less `mean` over `std`), its least summed squared error with the
    `profile` at `pixels` over the grid shifts, and that shift's index."""
    level, slope, contrast, contrast_slope = coefficients
    for candidate in range(high - low):
        errors[candidate] = np.inf
        for s in range(len(index)):
            error = 0.0
            for k in range(len(pixels)):
                along = (pixels[k] - mean) / std
                rendered = renderings[low + candidate, index[s, k]]
                predicted = (level + slope * along) + (contrast + contrast_slope * along) * rendered
                error += (predicted - profile[pixels[k]]) ** 2
            if error < errors[candidate]:
                errors[candidate] = error
                shifts[candidate] = s


@njit(cache=True, nogil=True)
def _fine_index(
    pixels: np.ndarray, start: float, module: float, shifts: np.ndarray, length: int
) -> np.ndarray:
    """Where each pixel's centre falls in a rendering of `length` samples (`FIT_RESOLUTION` per
    module, `_PAD` modules of context first) of a character starting at `start` px, under each
    grid shift (modules): shifts × pixels."""
    index = np.empty((len(shifts), len(pixels)), np.intp)
    for s in range(len(shifts)):
        for k in range(len(pixels)):
            u = (pixels[k] - start) / module + _PAD
            at = int(np.rint((u - shifts[s]) * FIT_RESOLUTION - 0.5))
            index[s, k] = min(max(at, 0), length - 1)
    return index


def _context(previous: int | None, last: bool) -> np.ndarray:
    """Bar coverage of the `_PAD` modules either side of a character: the quiet zone before the
    start; otherwise the previous character's last modules, then what follows (`_NEXT`, or the
    quiet zone after the stop)."""
    if previous is None:
        return _QUIET_THEN_BAR
    return np.concatenate([_MODULES[previous][-_PAD:], _QUIET if last else _NEXT])


def _candidates(row: np.ndarray) -> np.ndarray:
    top = _best_symbols(row)
    return top[row[top] >= CHECK_FLOOR]


def _best_symbols(row: np.ndarray) -> np.ndarray:
    """A slot's `CHECK_CANDIDATES` best-scoring symbols, best first."""
    return np.argsort(-row)[:CHECK_CANDIDATES]


def _checked_decodes(
    slots: np.ndarray, start: int, candidates: Callable[[np.ndarray], np.ndarray] = _candidates
) -> list[list[int]]:
    """Up to `CHECK_RIVALS` decodes that pass the mod-103 check, best summed score first, from
    each data and check slot's scores (slots × values, the check slot last) and the start
    symbol; only the symbols of a slot that `candidates` picks (by default `_candidates`: the
    `CHECK_CANDIDATES` best correlations that reach `CHECK_FLOOR`).

    Viterbi over the slots with the running checksum as the state (103 states), keeping the two
    best partial decodes per state: a runner-up checked decode is what makes settling by the
    check risky, so it has to be found too.
    """
    states = np.arange(103)
    best = np.full((103, 2), -np.inf)  # summed score of the two best paths per state
    best[start % 103, 0] = 0.0
    paths = []  # per data slot: its candidates and, per (state, rank), where it came from
    for weight, row in enumerate(slots[:-1], 1):
        top = candidates(row)
        total = (best[None, :, :] + row[top][:, None, None]).ravel()  # candidate × state × rank
        state = np.repeat((states[None, :] + weight * top[:, None]) % 103, 2, axis=1).ravel()
        order = np.lexsort((-total, state))  # by new state, best first
        grouped = state[order]
        index = np.arange(len(order))
        first = np.maximum.accumulate(np.where(np.r_[True, grouped[1:] != grouped[:-1]], index, 0))
        rank = index - first
        kept = order[rank < 2]
        best = np.full((103, 2), -np.inf)
        came = np.zeros((103, 2), np.intp)
        best[state[kept], rank[rank < 2]], came[state[kept], rank[rank < 2]] = total[kept], kept
        paths.append((top, came))
    checks = candidates(slots[-1])
    ends = best[checks] + slots[-1][checks, None]  # a check value's paths: ends with it
    found = []
    for flat in np.argsort(-ends, axis=None)[:CHECK_RIVALS]:
        if not np.isfinite(ends.flat[flat]):
            break
        slot, rank = np.unravel_index(flat, ends.shape)
        state = int(checks[slot])
        values = [state, STOP]
        for top, came in reversed(paths):
            candidate, state, rank = np.unravel_index(came[state, rank], (len(top), 103, 2))
            values.insert(0, int(top[candidate]))
        found.append([start, *values])
    return found


Oriented = tuple[np.ndarray, tuple[float, float]]  # profile read left to right, its outer edges


def _oriented(profile: np.ndarray, ends: tuple[float, float], flip: bool) -> Oriented:
    if not flip:
        return profile, ends
    size = len(profile) - 1
    return profile[::-1], (size - ends[1], size - ends[0])


def _hypotheses(oriented: Oriented, blurs: tuple[Blur, ...]) -> list[Shape]:
    """(characters, module gradient, blur of `blurs`), best start-and-stop fits first."""
    profile, (left, right) = oriented

    def fit(count: int, evened: np.ndarray, tried: tuple[Blur, ...]) -> np.ndarray:
        """How well start and stop fit in each of the `evened` profiles (one per gradient), for
        each blur: the worse of the two (profiles × blurs). Blurs that spread the outer edges
        alike share a grid, and so one batched fit; the gradients share it too, as they leave
        the edges where they are."""
        scores = np.full((len(evened), len(tried)), -1.0)
        for spread in set(map(_spread, tried)):
            index = [i for i, blur in enumerate(tried) if _spread(blur) == spread]
            group = tuple(tried[i] for i in index)
            start, module = _grid(left, right, count, group[0])
            stop = start + 11 * (count - 1) * module
            first = _fits(evened, start, module, group, _QUIET_THEN_BAR, _STARTS)
            last = _fits(evened, stop, module, group, _BEFORE_QUIET, (STOP,))
            if first is not None and last is not None:
                scores[:, index] = np.minimum(first[0].max(axis=2), last[0][:, :, 0])
        return scores

    # 11 modules per character including start, check and stop, plus the final bar. The
    # character count is chosen at a middling focus blur and even modules, the perspective
    # then for the best counts, the blur last.
    low, high = ((right - left) / m for m in MODULE_PX[::-1])
    counts = range(max(MIN_COUNT, int((low - 2) / 11)), int((high - 2) / 11) + 1)
    middle = (blurs[1],)
    count_fits = {count: float(fit(count, profile[None], middle)[0, 0]) for count in counts}
    if not count_fits or max(count_fits.values()) < MIN_FIT - HOPELESS:
        return []  # no start and stop anywhere near: read the other way, or not a code
    evened = np.stack([_evened(profile, left, right, gradient) for gradient in FIT_GRADIENTS])
    ranked = sorted(counts, key=lambda count: -count_fits[count])[:FIT_COUNTS]
    # Modules narrowing along a tilted code make a neighbouring count fit even modules best:
    # the neighbours are tried with every perspective.
    best_counts = sorted({c + step for c in ranked for step in NEIGHBOURS if c + step in counts})
    shape_fits = {count: fit(count, evened, middle)[:, 0] for count in best_counts}
    shapes = [(c, g) for c in best_counts for g in range(len(FIT_GRADIENTS))]
    shapes = sorted(shapes, key=lambda shape: -shape_fits[shape[0]][shape[1]])[:FIT_COUNTS]
    scored = [
        (float(score), c, FIT_GRADIENTS[g], blur)
        for c, g in shapes
        for score, blur in zip(fit(c, evened[g : g + 1], blurs)[0], blurs, strict=True)
    ]
    scored = sorted((s for s in scored if s[0] >= SHAPE_FIT), reverse=True)
    # The best few, and each shape's best blur: a wrong count's blurs can fit a hair better than
    # the right count's best and would otherwise take every try (a tilted code's start and stop
    # fitted 0.91 at 10 characters, 0.90 at the right 7).
    tried = scored[:FIT_TRIES]
    for score in scored:
        if all(score[1:3] != other[1:3] for other in tried):
            tried.append(score)
    return [(c, g, blur) for _, c, g, blur in tried]


def _spread(blur: Blur) -> float:
    """Modules by which `_edges` finds a code's outer edges outside its outer bars under
    `blur`: a box (motion) blur longer than those 2-module bars (every start's first, the stop's
    last) leaves each a ramp as long as the blur, whose steepest part, where the edge is found,
    is its middle, (motion − 2)/2 modules out. A Gaussian keeps the edge where it is. Only
    the heavy blurs are placed so (`HEAVY_BLURS`): for the usual ones the outer edges as
    found fit as well, at one batched fit instead of one per spread."""
    return max(0.0, blur[1] - 2.0) / 2 if blur in HEAVY_BLURS else 0.0


def _grid(left: float, right: float, count: int, blur: Blur) -> tuple[float, float]:
    """Where the first bar starts (px) and the module (px) of a code of `count` characters
    whose outer edges were found at `left` and `right` under `blur` (`_spread`)."""
    spread = _spread(blur)
    module = (right - left) / (11 * count + 2 + 2 * spread)
    return left + spread * module, module


def _evened(profile: np.ndarray, left: float, right: float, gradient: float) -> np.ndarray:
    """`profile` resampled so that modules widening by `gradient` (relative, from the left
    outer edge to the right one, as perspective leaves them) come out even; the edges stay put.
    """
    if not gradient:
        return profile
    length = right - left
    s = (np.arange(len(profile)) - left) / length
    # Position whose derivative, the module width, runs from 1 - g/2 to 1 + g/2 of the mean.
    source = left + length * (s + gradient / 2 * (s * s - s))
    return np.interp(source, np.arange(len(profile)), profile).astype(np.float32)


def _outer_edges(
    edges: Edges, outer_share: float = OUTER_SHARE, bridge: float = 0.0
) -> tuple[float, float] | None:
    """The first bar's leading and the last bar's trailing edge of the code, of a profile's
    `edges` (`_edges`): the densest run of edges, cut where the gap is a quiet zone (a ticket's
    border may sit in the margin), joined to the runs beyond gaps of at most `bridge` times the
    median one, and trimmed to edges of `outer_share` of the strong ones' strength: next to a
    quiet zone the outer bars keep their contrast.
    """
    positions, rising, strength = edges
    if len(positions) < 8:
        return None
    gaps = np.diff(positions)
    cuts = np.concatenate(
        [[0], np.nonzero(gaps > QUIET_GAP * np.median(gaps))[0] + 1, [len(positions)]]
    )
    runs = list(pairwise(cuts))
    low = high = max(range(len(runs)), key=lambda run: runs[run][1] - runs[run][0])
    bridged = bridge * np.median(gaps)
    while low > 0 and gaps[runs[low][0] - 1] <= bridged:
        low -= 1
    while high < len(runs) - 1 and gaps[runs[high][1] - 1] <= bridged:
        high += 1
    first, end = runs[low][0], runs[high][1]
    starts = [i for i in range(first, end) if not rising[i] and strength[i] >= outer_share]
    ends = [i for i in range(first, end) if rising[i] and strength[i] >= outer_share]
    if not starts or not ends or ends[-1] - starts[0] < 8:
        return None
    return float(positions[starts[0]]), float(positions[ends[-1]])


def _fit_symbols(
    profile: np.ndarray, left: float, module: float, count: int, blur: Blur, floor: float = MIN_FIT
) -> Fit | None:
    """Mean fit, symbols and the data and check slots' correlations (slots × values) of the
    best complete decode on one grid hypothesis whose every character fits at least `floor`.

    A beam of the best partial decodes: a wrong character shows in its right neighbour's fit,
    whose rendering takes the wrong one as context.
    """
    found = _beam(profile, left, module, count, blur, FIT_BEAM, floor)
    if found is None:
        return None
    total, values, slots = found
    return total / count, values, slots


def _beam(
    profile: np.ndarray,
    left: float,
    module: float,
    count: int,
    blur: Blur,
    width: int,
    floor: float,
    model: Model | None = None,
    noise: float = 1.0,
) -> tuple[float, list[int], np.ndarray] | None:
    """`_beam_decode` of `count` characters from `left` px on `profile` under `blur`: its best
    decode's score sum, symbols and data and check slots' scores; None where none got through.
    """
    coefficients, mean, std = model if model is not None else (np.zeros(4), 0.0, 1.0)
    found, total, values, slots = _beam_decode(
        _symbol_table(blur),
        np.ascontiguousarray(profile, np.float32),
        float(left),
        float(module),
        count,
        width,
        float(floor),
        model is not None,
        np.asarray(coefficients, np.float64),
        float(mean),
        float(std),
        float(noise),
    )
    return (float(total), values.tolist(), slots) if found else None


# Rows of `_symbol_table`: the start's context, then each symbol's last two modules (bar = 1)
# as a number, times two (next the stop or not).
_CONTEXTS = 1 + 4 * 2
_LAST_MODULES = np.array([2 * m[-2] + m[-1] for m in _MODULES], np.intp)


@cache
def _symbol_table(blur: Blur) -> np.ndarray:
    """Every symbol's rendering under `blur` (`_renderings`) in each context a character can
    have (`_context`), in the rows `_table_row` gives: contexts × symbols × samples; the stop
    is two modules longer than the others, whose rows are padded."""
    short = (len(_MODULES[0]) + 2 * _PAD) * FIT_RESOLUTION
    table = np.zeros((_CONTEXTS, len(PATTERNS), short + 2 * FIT_RESOLUTION), np.float32)
    for row in range(_CONTEXTS):
        context = _context(None, False)
        if row:
            pattern, last = divmod(row - 1, 2)
            ending = np.nonzero(pattern == _LAST_MODULES)[0]
            if not len(ending):  # no symbol ends so (every one ends with a space)
                continue
            context = _context(int(ending[0]), bool(last))
        key = tuple(context.tolist())
        table[row, :STOP, :short] = _renderings((blur,), tuple(range(STOP)), key)
        table[row, STOP] = _renderings((blur,), (STOP,), key)[0]
    return table


@njit(cache=True, nogil=True)
def _table_row(previous: int, last: bool) -> int:
    """The row of `_symbol_table` for the character after `previous` (-1 for none: a start
    follows), the stop if `last`."""
    return 0 if previous < 0 else 1 + 2 * _LAST_MODULES[previous] + last


@njit(cache=True, nogil=True)
def _beam_decode(
    table: np.ndarray,
    profile: np.ndarray,
    left: float,
    module: float,
    count: int,
    width: int,
    floor: float,
    fixed: bool,
    coefficients: np.ndarray,
    mean: float,
    std: float,
    noise: float,
) -> tuple[bool, float, np.ndarray, np.ndarray]:
    """A beam of the `width` best partial decodes of `count` characters from `left` px,
    compiled: a start first, the stop last (it must fit where the drifting grid ends: a check
    of the whole grid), data or check characters between. Each is scored at its best grid
    shift (`FIT_SHIFTS`) by its rendering's correlation with the samples, and must reach
    `floor`; or, `fixed`, by its squared error under the level and contrast `coefficients`
    (`Model`: along the profile less `mean` over `std`) over the `noise` variance, negated.
    Whether a decode got through, the best one's score sum, symbols, and data and check slots'
    scores (slots × 103). The table's padding is never sampled: a character's window
    (`_window_span`) reaches 2.9 modules past its end at most, its rendering 4."""
    totals = np.zeros(width)
    starts = np.full(width, left)
    values = np.zeros((width, count), np.intp)
    slots = np.zeros((width, max(count - 2, 0), START_A), np.float32)
    live = 1
    scores = np.empty(START_A)
    shifts = np.empty(START_A, np.intp)
    grown_totals = np.empty(width * width)
    grown_parents = np.empty(width * width, np.intp)
    grown_values = np.empty(width * width, np.intp)
    grown_starts = np.empty(width * width)
    for step in range(count):
        last = step == count - 1
        low, high = 0, START_A  # a data or check character
        if step == 0:
            low, high = START_A, STOP
        elif last:
            low, high = STOP, STOP + 1
        span = 13 if last else 11
        grown = 0
        for beam in range(live):
            start = starts[beam]
            first, end = _window_span(len(profile), start, module, span)
            if end < first:
                continue
            pixels = np.arange(first, end + 1)
            renderings = table[_table_row(values[beam, step - 1] if step else -1, last)]
            index = _fine_index(pixels, start, module, FIT_SHIFTS, renderings.shape[1])
            candidates = high - low
            if fixed:
                _scored_by_error(
                    renderings,
                    low,
                    high,
                    index,
                    profile,
                    pixels,
                    coefficients,
                    mean,
                    std,
                    scores,
                    shifts,
                )
                for candidate in range(candidates):
                    scores[candidate] /= -noise
            else:
                _scored_by_correlation(
                    renderings, low, high, index, profile, pixels, scores, shifts
                )
            if 0 < step < count - 1:
                slots[beam, step - 1] = scores[:candidates]
            order = np.argsort(-scores[:candidates], kind="mergesort")[:width]
            for candidate in order:
                if fixed or scores[candidate] >= floor:
                    grown_totals[grown] = totals[beam] + scores[candidate]
                    grown_parents[grown] = beam
                    grown_values[grown] = low + candidate
                    grown_starts[grown] = start + (11 + FIT_SHIFTS[shifts[candidate]]) * module
                    grown += 1
        if not grown:
            return False, 0.0, values[0], slots[0]
        kept = np.argsort(-grown_totals[:grown], kind="mergesort")[:width]
        parents = grown_parents[kept]
        values, slots = values[parents].copy(), slots[parents].copy()
        for beam in range(len(kept)):
            values[beam, step] = grown_values[kept[beam]]
            totals[beam] = grown_totals[kept[beam]]
            starts[beam] = grown_starts[kept[beam]]
        live = len(kept)
    return True, totals[0], values[0], slots[0]


def _window(length: int, start: float, module: float, span: int) -> np.ndarray | None:
    """The pixels of a profile of `length` that a character of `span` modules (13 for the stop)
    starting at `start` px is fitted on (`_window_span`); None where they leave the profile."""
    first, end = _window_span(length, float(start), float(module), span)
    return None if end < first else np.arange(first, end + 1)


@njit(cache=True, nogil=True)
def _window_span(length: int, start: float, module: float, span: int) -> tuple[int, int]:
    """The first and last pixel of a profile of `length` that a character of `span` modules
    starting at `start` px is fitted on, half a module more either side; the last before the
    first where they leave the profile."""
    first = int(np.ceil(start - 0.5 * module))
    end = min(int(start + (span + 0.5) * module), length - 1)
    if first < 0 or end - first < span:
        return 0, -1
    return first, end


def _fits(
    profile: np.ndarray,
    start: float,
    module: float,
    blurs: tuple[Blur, ...],
    context: np.ndarray,
    candidates: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray] | None:
    """Correlation of each candidate under each blur with the samples at `start` (px), at its
    best grid shift, and that shift's index: two blurs × candidates arrays. `profile` may be a
    stack of profiles of one length, sampled alike: then two profiles × blurs × candidates.
    """
    pixels = _window(profile.shape[-1], start, module, len(_MODULES[candidates[0]]))
    if pixels is None:
        return None
    fine = _renderings(blurs, candidates, tuple(context.tolist()))
    stack = np.ascontiguousarray(np.atleast_2d(profile), np.float32)
    best, shift = _correlations(fine, stack, int(pixels[0]), len(pixels), start, module)
    best = best.reshape(len(blurs), len(candidates), len(stack))
    shift = shift.reshape(best.shape)
    if profile.ndim == 1:
        return best[..., 0], shift[..., 0]
    return best.transpose(2, 0, 1), shift.transpose(2, 0, 1)


@njit(cache=True, nogil=True)
def _correlations(
    fine: np.ndarray, profiles: np.ndarray, first: int, count: int, start: float, module: float
) -> tuple[np.ndarray, np.ndarray]:
    """`_fits`' loop, compiled (in numpy most of its time went to dispatching small arrays):
    for each rendering of `fine` and each of `profiles` (`count` samples from `first`), the
    best correlation over the grid shifts and that shift's index (`_scored_by_correlation`)."""
    pixels = np.arange(first, first + count)
    index = _fine_index(pixels, start, module, FIT_SHIFTS, fine.shape[1])
    best = np.empty((len(fine), len(profiles)), np.float32)
    best_shift = np.empty((len(fine), len(profiles)), np.intp)
    scores = np.empty(len(fine))
    shifts = np.empty(len(fine), np.intp)
    for p in range(len(profiles)):
        _scored_by_correlation(fine, 0, len(fine), index, profiles[p], pixels, scores, shifts)
        best[:, p] = scores
        best_shift[:, p] = shifts
    return best, best_shift


@njit(cache=True, nogil=True)
def _scored_by_correlation(
    renderings: np.ndarray,
    low: int,
    high: int,
    index: np.ndarray,
    profile: np.ndarray,
    pixels: np.ndarray,
    scores: np.ndarray,
    shifts: np.ndarray,
) -> None:
    """Into `scores` and `shifts`: each of the `renderings` from `low` to `high`, sampled at
    `index` (shifts × pixels, `_fine_index`), its Pearson correlation with the `profile` at
    `pixels`, negated (bars are dark), at the best grid shift (as float32), and that shift's
    index."""
    count = len(pixels)
    mean = 0.0
    for k in range(count):
        mean += profile[pixels[k]]
    mean /= count
    samples = np.empty(count)
    power = 0.0
    for k in range(count):
        samples[k] = profile[pixels[k]] - mean
        power += samples[k] * samples[k]
    norm = np.sqrt(power)
    for candidate in range(high - low):
        best = np.float32(-np.inf)
        for s in range(len(index)):
            total = 0.0
            squares = 0.0
            dot = 0.0
            for k in range(count):
                value = np.float64(renderings[low + candidate, index[s, k]])
                total += value
                squares += value * value
                dot += value * samples[k]
            spread = np.sqrt(max(squares - total * total / count, 0.0))
            score = np.float32(dot / (spread * -norm - 1e-9))
            if s == 0 or score > best:
                best = score
                shifts[candidate] = s
        scores[candidate] = best


def _slid_ends(profile: np.ndarray) -> list[tuple[float, float]]:
    """Outer edge pairs where a start and a stop character fit `profile` (`SLID_MODULES`),
    the best first, read either way; in the profile's own coordinates."""
    blur = FIT_BLURS[1]
    starts_fine = _renderings((blur,), _STARTS, tuple(_QUIET_THEN_BAR.tolist()))
    stop_fine = _renderings((blur,), (STOP,), tuple(_BEFORE_QUIET.tolist()))
    found: list[tuple[float, float]] = []
    for flip in (False, True):
        oriented = np.ascontiguousarray(profile[::-1] if flip else profile, np.float32)
        starts = _slid(starts_fine, oriented, SLID_MODULES, 11)
        stops = _slid(stop_fine, oriented, SLID_MODULES, 13)
        if not len(starts) or not len(stops):
            continue
        start_fit, left, start_module = (column[:, None] for column in starts.T)
        stop_fit, stop, stop_module = (column[None, :] for column in stops.T)
        right = stop + 13 * stop_module
        count = np.rint(((right - left) / start_module - 2) / 11)
        module = (right - left) / (11 * count + 2)
        paired = (
            (count >= SLID_MIN_COUNT)
            & (np.abs(module - start_module) < SLIDE_MATCH * start_module)
            & (np.abs(module - stop_module) < SLIDE_MATCH * stop_module)
        )
        rows, columns = np.nonzero(paired)
        fits = np.minimum(start_fit, stop_fit)[rows, columns]
        order = np.argsort(-fits)
        kept: list[tuple[float, float]] = []
        for i, j in zip(rows[order], columns[order], strict=True):
            if len(kept) == SLID_ENDS:
                break
            ends = float(left[i, 0]), float(right[0, j])
            if any(_near(ends, other) for other in kept):
                continue
            if _quiet_beyond(oriented, ends, float(module[i, j])):
                kept.append(ends)
        size = len(profile) - 1
        found += [(size - b, size - a) for a, b in kept] if flip else kept
    return found


def _quiet_beyond(profile: np.ndarray, ends: tuple[float, float], module: float) -> bool:
    """Whether the paper beyond both `ends` is quiet (`QUIET_SPAN`, `QUIET_SHARE`), and there
    is some: a code cut off by the crop's end is read from its edges."""
    left, right = ends
    spread = float(profile[int(left) : int(right) + 1].std())
    near, far = QUIET_SPAN
    for first, last in (
        (left - far * module, left - near * module),
        (right + near * module, right + far * module),
    ):
        first, last = max(int(first), 0), min(int(last), len(profile) - 1)
        if last - first < 3 * module:
            return False
        paper = profile[first : last + 1].astype(np.float64)
        paper -= paper.mean()
        along = np.arange(len(paper)) - (len(paper) - 1) / 2
        rest = paper - along * (along @ paper) / (along @ along)  # less its least-squares line
        if rest.std() > QUIET_SHARE * spread:
            return False
    return True


@njit(cache=True, nogil=True)
def _slid(fine: np.ndarray, profile: np.ndarray, modules: np.ndarray, span: int) -> np.ndarray:
    """(fit, start px, module) of each local best fit of the `fine` renderings (a character
    of `span` modules with its context, `_renderings`) along `profile` that reaches `MIN_FIT`:
    at each of `modules`, positions `SLIDE_STEP` modules apart, the best rendering at its best
    grid shift (`_correlations`), kept where no neighbouring position fits better."""
    found = []
    stack = profile.reshape(1, -1)
    for module in modules:
        positions = np.arange(0.0, len(profile) - span * module, SLIDE_STEP * module)
        fits = np.full(len(positions), -np.inf)
        for k in range(len(positions)):
            first, end = _window_span(len(profile), positions[k], module, span)
            if end >= first:
                best, _ = _correlations(fine, stack, first, end - first + 1, positions[k], module)
                fits[k] = best.max()
        for k in range(len(positions)):
            if fits[k] < MIN_FIT:
                continue
            if (k and fits[k - 1] > fits[k]) or (k + 1 < len(fits) and fits[k + 1] >= fits[k]):
                continue
            found.append((fits[k], positions[k], module))
    out = np.empty((len(found), 3))
    for k in range(len(found)):
        out[k, 0], out[k, 1], out[k, 2] = found[k]
    return out
