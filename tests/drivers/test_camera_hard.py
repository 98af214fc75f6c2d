"""Hard camera frames (issue #13): codes cut in two by glare, smeared by heavy motion blur or
faint in heavy sensor noise, and what must still be refused (a motion-blurred code with a
forged check, a piece of a code that fits one character, a forged check under heavy motion
blur, a wrong code fitted alike in a cut located with the noise discounted)."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from drivers.camera import TICKET_SYMBOLOGIES, BarcodeDecoder, DecodedCode, Symbology
from drivers.camera.decode import (
    NARROW_MARGIN,
    NOISE_SHARES,
    TIGHT_GROW_SHARE,
    _banded,
    _cross_checked,
    _long_enough,
    _Vote,
)
from drivers.camera.locate import (
    MERGE_GAP,
    Candidate,
    Region,
    _merge_collinear,
    find_regions,
    percentiles,
    upright,
)
from drivers.camera.profile import ProfileFit, fit_profile
from drivers.camera.synth import HARD, HardRanges, Level, dataset, frame
from tests.drivers.test_decode import rotated_ticket
from tests.drivers.test_decode_profile import code_modules, render, with_check_of

DESK = 90.0
# The hard frames' sensor noise as drawn before it was measured in the hard dev corpus (16).
MILD_NOISE = replace(HARD, noise=(6.0, 12.0))


def code_on_desk(
    row: np.ndarray, *, module_px: float, paper: float, ink: float, desk: float, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """A float frame of the code modules `row` (1 a bar, 0 a space, between them a bar washed
    out) printed `ink` grey levels below `paper`, 20 modules of ticket around it, at `module_px`
    per module, centred on a `desk` and turned by `angle`; and the image points of its ends."""
    fine = 8  # ticket samples per module
    height = int(0.3 * (len(row) + 20) * fine)
    ticket = np.zeros((height + 40 * fine, (len(row) + 40) * fine), np.float32)
    ticket[20 * fine : 20 * fine + height, 20 * fine : 20 * fine + len(row) * fine] = np.repeat(
        row, fine
    )
    scale = module_px / fine
    small = cv2.resize(paper - ink * ticket, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    image = np.full((720, 1280), desk, np.float32)
    h, w = small.shape
    top, left = 360 - h // 2, 640 - w // 2
    image[top : top + h, left : left + w] = small
    turn = cv2.getRotationMatrix2D((640, 360), angle, 1.0)
    image = cv2.warpAffine(image, turn, (1280, 720), borderValue=desk)
    first = left + 20 * module_px
    ends = np.float32([[first, 360], [first + len(row) * module_px, 360]])
    return image, cv2.transform(ends[None], turn)[0]


def washed_code(job: str, washed_modules: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """A frame of a Code 128 at 1.5 px per module, turned by `angle`, whose middle
    `washed_modules` glare has washed out to paper; and the image points of its two ends."""
    row = code_modules(job)
    wash = np.zeros(len(row), np.float32)
    middle = len(row) // 2
    wash[middle - washed_modules // 2 : middle + washed_modules // 2] = 1
    image, ends = code_on_desk(
        row * (1 - wash), module_px=1.5, paper=235, ink=150, desk=DESK, angle=angle
    )
    noise = np.random.default_rng(0).normal(0, 4, image.shape)
    image = cv2.GaussianBlur(image, (0, 0), 0.7) * 0.7 + noise
    return np.clip(image, 0, 255).astype(np.uint8), ends


@pytest.mark.parametrize("angle", [0, 30])
def test_a_code_cut_in_two_by_glare_is_one_region(angle: float) -> None:
    # 26 washed modules split the locator's mask in two halves, each too short to read.
    image, ends = washed_code("J40017106", 26, angle)
    regions = list(find_regions(image))
    box = regions[0].corners.reshape(-1, 1, 2)
    for x, y in ends:
        assert cv2.pointPolygonTest(box, (float(x), float(y)), False) >= 0
    assert len(regions) == 1


@pytest.mark.parametrize("size", [1, 2, 7, 250, 4001])
def test_the_locators_percentiles_are_numpys_to_the_last_bit(size: int) -> None:
    # The region edges depend on them: a faster percentile must not move a crop by a bit.
    values = np.random.default_rng(size).normal(0, 100, size)
    for percents in ((1, 99), (2, 98), (3, 97), (5, 95), (50,)):
        expected = np.percentile(values, percents)
        assert np.array_equal(percentiles(values, percents), expected), percents


def part(x0: int, x1: int, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[y0:y1, x0:x1]
    return xs.ravel(), ys.ravel()


def test_parts_of_one_code_join_and_a_border_on_their_line_does_not() -> None:
    # Gap 20 px against a bar height of ~19 px: within MERGE_GAP bar heights.
    assert MERGE_GAP * 19 >= 20
    groups = _groups(strip_alternates=False)
    assert {50, 110} in groups
    assert {170} in groups and {111} in groups and {300} in groups
    # Had the border's strip held bars, it would have joined the code: the sign decides.
    assert {50, 110, 170} in _groups(strip_alternates=True)


def _groups(*, strip_alternates: bool) -> list[set[int]]:
    """Which of five parts `_merge_collinear` joins, each group as the set of its parts' x0: two
    halves of a code with a gap between them (at 50 and 110), a ticket border's strip on their
    line past a quiet zone (170), text below the code (111) and a part on the line far off
    (300). Gradients across the bars alternate in sign (bars) except, unless
    `strip_alternates`, on the border's strip (a step)."""
    starts = (50, 110, 170, 111, 300)
    gx = np.where(np.arange(400) % 2 == 0, 1.0, -1.0)[None, :].repeat(100, axis=0)
    boxes = [(50, 90, 40, 60), (110, 150, 40, 60), (170, 178, 40, 60)]
    boxes += [(111, 150, 75, 90), (300, 340, 40, 60)]
    if not strip_alternates:
        x0, x1, y0, y1 = boxes[2]
        gx[y0:y1, x0:x1] = 1.0  # a step: its gradient has one sign
    gx = gx.astype(np.float32)
    gy = np.zeros_like(gx)
    candidates: list[Candidate] = [(1.0, 0.0, *part(*box)) for box in boxes]
    merged = _merge_collinear(candidates, (gx * gx, gy, gy), (gx, gy))
    groups = []
    for _, _, xs, ys in merged:
        pixels = set(zip(xs.tolist(), ys.tolist(), strict=True))
        groups.append(
            {s for s, box in zip(starts, boxes, strict=True) if (box[0], box[2]) in pixels}
        )
    return groups


def test_motion_blurred_code_with_a_wrong_check_is_refused() -> None:
    forged = with_check_of("J40017106", "J40017107")
    for seed in range(4):
        profile = render(forged, 5 / 3, blur=0.6 * 5 / 3, noise=2.0, seed=seed)
        profile = cv2.blur(profile[None, :], (5, 1), borderType=cv2.BORDER_REPLICATE)[0]
        assert list(fit_profile(profile)) == []


def test_a_code_of_one_character_is_not_fitted() -> None:
    # A piece of a longer code cut short by glare fits a one-character code (a synthetic hard
    # frame read "+" so); two characters still read.
    assert list(fit_profile(render(code_modules("+")))) == []
    assert list(fit_profile(render(code_modules("J8")))) == ["J8"]


def test_heavy_motion_blur_is_read() -> None:
    # 8 px of motion across 2 px modules: before the heavy blur fit, 1 of these 6 read.
    decoder = BarcodeDecoder([Symbology.CODE128])
    reads = 0
    for seed in range(6):
        job = f"J{31000000 + 7919 * seed}"
        image = rotated_ticket(job, 25 + 50 * seed, blur=0.5, motion=8.0, seed=seed)
        found = [code.text for code in decoder.decode(image).codes]
        assert found in ([], [job])
        reads += found == [job]
    assert reads >= 3


def test_a_forged_check_under_heavy_motion_is_not_confirmed_by_the_heavy_fit() -> None:
    # The heavy blur fit packs codes close: a code whose check character is another code's must
    # still not read the same in two profiles, which is what the decoder needs to report it.
    forged = with_check_of("J40017106", "J40017107")
    for seed in range(3):
        # Four profiles across one code, as the decoder takes them: the full height, then bands.
        profiles = [
            render(forged, 2.0, blur=1.2, noise=3.5 if band else 2.0, seed=10 * seed + band)
            for band in range(4)
        ]
        profiles = [
            cv2.blur(p[None, :], (8, 1), borderType=cv2.BORDER_REPLICATE)[0] for p in profiles
        ]
        fit = ProfileFit(profiles, heavy=True)
        reads = list(fit)
        texts = [text for _, text in reads]
        assert fit.whole  # the fit got through the code: its settling is what is tested
        assert all(texts.count(text) < 2 for text in texts)
        # And each read is flagged as the check's choice, which the decoder's votes need
        # another, unsettled decode to confirm.
        assert {index for index, _ in reads} <= fit.settled


# A hard frame at the corpora's sensor noise that only the profiles of the code's even and odd
# rows confirm (decode.ROW_PARITIES): 1 of the first 300 seeds, none read only without them.
@pytest.mark.parametrize("seed", [216])
def test_hard_frames_the_even_and_odd_rows_confirm_are_read(seed: int) -> None:
    job, codes = seeded_hard_frame_read(seed, HARD)
    assert [code.text for code in codes] == [job]
    assert any(name.startswith("fit/rows") for name in codes[0].decoders)


@pytest.mark.parametrize(
    ("seed", "hard"),
    [
        # Hard frames that a narrower choice of grid hypotheses missed, found among 600 seeds
        # (in which one other frame read only before the first change, none only before the
        # other two), at the sensor noise drawn before the hard dev corpus' was measured.
        # The right shape's best blur fits start and stop a hair worse than two blurs of another
        # shape: while only the best two were decoded, neither frame read.
        pytest.param(104, MILD_NOISE, id="each-shapes-best-blur-104"),
        pytest.param(203, MILD_NOISE, id="each-shapes-best-blur-203"),
        # Shapes whose start and stop fit under MIN_FIT (0.8) were not decoded: this frame then
        # did not read.
        pytest.param(599, MILD_NOISE, id="start-and-stop-under-the-character-floor"),
        # Without profiles of each fifth of the bar height (decode.VOTING_BANDS) this frame did
        # not read (found among the first 300 seeds, none of which read only without them).
        pytest.param(71, MILD_NOISE, id="fifths-of-the-bar-height"),
        # At the corpora's sensor noise from here on. Module gradients up to ±0.24 (of
        # profile.FIT_GRADIENTS' ±0.32) do not read these: 2 of 600 seeds (one other read only
        # with those). (The two such frames at the milder noise, seeds 10 and 545, read with
        # either since crops are cut out over the bars' whole height, `locate.upright`.)
        pytest.param(203, HARD, id="foreshortened-by-a-third-203"),
        pytest.param(545, HARD, id="foreshortened-by-a-third-545"),
        # Only the regions located with the noise discounted read these (decode.NOISE_SHARES):
        # 4 of the first 240 seeds, none read only without them.
        pytest.param(43, HARD, id="located-with-the-noise-discounted-43"),
        pytest.param(66, HARD, id="located-with-the-noise-discounted-66"),
        # Only the cuts over fewer rows read these (decode.TIGHT_GROW_SHARE): 3 of the first 300
        # seeds, none read only without them.
        pytest.param(51, HARD, id="cut-out-over-fewer-rows-51"),
        pytest.param(182, HARD, id="cut-out-over-fewer-rows-182"),
    ],
)
def test_seeded_hard_frames_are_read(seed: int, hard: HardRanges) -> None:
    job, codes = seeded_hard_frame_read(seed, hard)
    assert [code.text for code in codes] == [job]


def test_a_hard_frame_cut_out_narrower_is_read() -> None:
    # Frame 17 of a seeded hard set (12 of 3,974 read only once the cut over fewer rows is also
    # narrowed, decode.NARROW_MARGIN; none read only without it, none in this test's seeds).
    name, job, image = dataset(18, 1357, levels=(Level.L3,), matrix=True)[17]
    assert name.endswith("_L3.jpg") and job
    codes = BarcodeDecoder(TICKET_SYMBOLOGIES).decode(image).codes
    assert [code.text for code in codes] == [job]


def test_a_narrowed_cut_reads_only_codes_as_long_as_a_job_number() -> None:
    assert _long_enough("31415926") and _long_enough("J100001")  # 7 symbols each
    assert not _long_enough("hY")  # read in a hard frame of an 8-digit code
    assert not _long_enough("123456")  # 6 symbols at best


def seeded_hard_frame_read(seed: int, hard: HardRanges) -> tuple[str, list[DecodedCode]]:
    """The job of the hard frame drawn from `seed`, and the codes the decoder confirms."""
    job = f"{31000000 + 7919 * seed}"
    image = frame(job, Level.L3, np.random.default_rng(seed), hard=hard)
    return job, BarcodeDecoder(TICKET_SYMBOLOGIES).decode(image).codes


def faint_code(job: str, seed: int, noise: float) -> np.ndarray:
    """A frame of a Code 128 of 1.4 px modules printed 20 grey levels dark on dim paper, turned
    by 20°, under sensor noise of σ `noise`; the code's centre is the frame's."""
    row = code_modules(job)
    image, _ = code_on_desk(row, module_px=1.4, paper=120, ink=20, desk=60.0, angle=20.0)
    image = cv2.GaussianBlur(image, (0, 0), 0.8)
    image += np.random.default_rng(seed).normal(0, noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def holds_the_centre(regions: list[Region]) -> bool:
    return any(np.hypot(*(region.corners.mean(axis=0) - (640, 360))) < 30 for region in regions)


@pytest.mark.parametrize("seed", range(4))
def test_a_faint_code_in_heavy_noise_is_located_with_the_noise_discounted(seed: int) -> None:
    # Noise of σ 16 (the hard corpus') takes the bars' coherence below the test's floor.
    image = faint_code("31415926", seed, noise=16.0)
    assert not holds_the_centre(list(find_regions(image)))
    assert holds_the_centre(list(find_regions(image, noise_share=NOISE_SHARES[0])))


def test_discounting_the_noise_finds_nothing_in_noise_alone_nor_on_a_clean_frame() -> None:
    noise = np.random.default_rng(5).normal(100, 16, (720, 1280))
    assert list(find_regions(np.clip(noise, 0, 255).astype(np.uint8), noise_share=0.9)) == []
    clean = faint_code("31415926", 0, noise=8.0)  # the usual search finds it there
    assert holds_the_centre(list(find_regions(clean)))
    assert list(find_regions(clean, noise_share=0.9)) == []


def fit_vote(text: str, profile: str, rows: tuple[float, float], settled: bool) -> _Vote:
    corners = np.zeros((4, 2), np.float32)
    return _Vote(text, Symbology.CODE128, corners, f"fit/{profile}", False, settled, rows)


def test_a_noise_discounted_cut_counts_a_fit_the_check_did_not_settle_with_a_bands() -> None:
    settled_bands = [
        fit_vote("22424486", name, rows, settled=True)
        for name, rows in [
            ("band2of3", (1 / 3, 2 / 3)),
            ("band1of2", (0.0, 0.5)),
            ("band3of5", (0.4, 0.6)),
            ("band4of5", (0.6, 0.8)),
        ]
    ]
    full_and_rows = [
        fit_vote("421770676908", "full", (0.0, 1.0), settled=False),
        fit_vote("421770676908", "rows1of2", (0.0, 1.0), settled=False),
    ]
    full_and_band = [
        fit_vote("31415926", "full", (0.0, 1.0), settled=False),
        fit_vote("31415926", "band2of3", (1 / 3, 2 / 3), settled=True),
    ]
    # The two wrong codes the rules were made for (synthetic hard frames), and a right one.
    assert _cross_checked(settled_bands + full_and_rows + full_and_band) == full_and_band


def test_a_cut_over_fewer_rows_counts_what_a_bands_fit_is_among() -> None:
    full_and_rows = [  # a blank ticket's print, fitted alike (synthetic hard blank frame)
        fit_vote("5468645075", "full", (0.0, 1.0), settled=False),
        fit_vote("5468645075", "rows1of2", (0.0, 1.0), settled=False),
    ]
    settled_bands = [
        fit_vote("82962045", name, rows, settled=True)
        for name, rows in [
            ("band2of3", (1 / 3, 2 / 3)),
            ("band3of3", (2 / 3, 1.0)),
            ("band2of2", (0.5, 1.0)),
            ("band5of5", (0.8, 1.0)),
        ]
    ]
    assert _banded(full_and_rows + settled_bands) == settled_bands
    # where the heavy fit's and the noise-discounted cuts' rule refuses the settled bands
    assert _cross_checked(settled_bands) == []


def test_a_tight_cut_keeps_fewer_rows_of_the_same_bars() -> None:
    job = f"{31000000 + 7919 * 51}"
    image = frame(job, Level.L3, np.random.default_rng(51), hard=HARD)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    region = next(find_regions(gray))
    usual, tight = upright(gray, region), upright(gray, region, grow_share=TIGHT_GROW_SHARE)
    assert len(region.crop) <= len(tight.crop) < len(usual.crop)
    narrow = upright(gray, region, grow_share=TIGHT_GROW_SHARE, margin_kept=NARROW_MARGIN)
    assert narrow.crop.shape[0] == tight.crop.shape[0]
    assert narrow.crop.shape[1] < tight.crop.shape[1]
