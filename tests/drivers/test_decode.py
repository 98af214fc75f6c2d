"""The decode pipeline and `lenstrack decode` on generated frames and a few corpus frames."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp

from drivers.camera import BarcodeDecoder, Symbology, decode, profile
from drivers.camera.locate import (
    SHEAR_UPSAMPLE,
    Region,
    _detail,
    _kept_detail,
    _sample,
    straighten,
    upright,
)
from drivers.camera.synth import Level, _motion_kernel, frame, render_ticket
from lenstrack.cli import main

CORPUS = Path(__file__).resolve().parents[3] / "shared/corpus/frames-dev"
HARD_CORPUS = CORPUS.with_name("frames-hard-dev")
CODE128 = BarcodeDecoder([Symbology.CODE128])


def texts(image: np.ndarray, decoder: BarcodeDecoder = CODE128) -> list[str]:
    return [code.text for code in decoder.decode(image).codes]


def rotated_ticket(
    job: str, angle: float, *, blur: float = 0.0, motion: float = 0.0, seed: int = 0
) -> np.ndarray:
    """A ticket turned by `angle` degrees on a grey desk, noisy, optionally blurred and moved
    by `motion` px across its bars (give or take 30°)."""
    rng = np.random.default_rng(seed)
    ticket = render_ticket(job, rng)
    desk = np.full((720, 1280), 110, np.uint8)
    h, w = ticket.shape
    desk[210 : 210 + h, 380 : 380 + w] = ticket
    turn = cv2.getRotationMatrix2D((380 + w / 2, 210 + h / 2), angle, 1.0)
    image = cv2.warpAffine(desk, turn, (1280, 720), borderValue=110).astype(np.float32)
    if blur:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    if motion:
        image = cv2.filter2D(image, -1, _motion_kernel(motion, angle + rng.uniform(-30, 30)))
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("level", [Level.L0, Level.L1])
@pytest.mark.parametrize("seed", range(4))
def test_reads_generated_tickets(level: Level, seed: int) -> None:
    job = f"J{4711000 + seed:08d}"
    assert texts(frame(job, level, np.random.default_rng(seed))) == [job]


@pytest.mark.parametrize("angle", [30, 90, 135, 200, 290])
def test_reads_tickets_at_any_angle(angle: float) -> None:
    # ZBar and zxing-cpp alone read only near 0/90/180/270°: this needs the rectification.
    result = CODE128.decode(rotated_ticket("J20240117", angle, blur=1.0))
    assert [code.text for code in result.codes] == ["J20240117"]
    (code,) = result.codes
    centre = np.mean(code.corners, axis=0)
    assert abs(centre[0] - 640) < 250 and abs(centre[1] - 360) < 200  # boxed where it is


def test_l2_frames_are_read_or_left_alone() -> None:
    # Heavy blur may defeat the decoder; what it reports must still be right.
    reads = 0
    for seed in range(6):
        job = f"{50000000 + seed}"
        found = texts(frame(job, Level.L2, np.random.default_rng(100 + seed)))
        assert found in ([], [job])
        reads += bool(found)
    assert reads >= 2


def test_datamatrix_and_code128_on_one_ticket() -> None:
    # L0: the DataMatrix modules are as small as the Code 128's (as printed), which blur hides.
    image = frame("J31415926", Level.L0, np.random.default_rng(7), matrix=True)
    # Every code of the frame (the station's default stops at the first confirmed one).
    decoder = BarcodeDecoder([Symbology.CODE128, Symbology.DATAMATRIX], all_codes=True)
    found = {(code.symbology, code.text) for code in decoder.decode(image).codes}
    assert found == {(Symbology.CODE128, "J31415926"), (Symbology.DATAMATRIX, "J31415926")}


def test_code39_tray_number() -> None:
    image = frame("4711", Level.L1, np.random.default_rng(3), symbology=zxingcpp.Code39)
    assert texts(image, BarcodeDecoder([Symbology.CODE39])) == ["4711"]
    assert texts(image) == []  # Code 39 not configured: not looked for


def random_stripes(rng: np.random.Generator) -> np.ndarray:
    """Barcode-like bars of random widths, turned and blurred: the worst case for misreads."""
    widths = rng.integers(1, 9, 120)
    row = np.repeat(np.arange(len(widths)) % 2 * 255, widths).astype(np.uint8)
    stripes = np.repeat(row[None, :], 160, axis=0)
    desk = np.full((720, 1280), 200, np.uint8)
    desk[280 : 280 + 160, 300 : 300 + stripes.shape[1]] = stripes[:, : 1280 - 300]
    turn = cv2.getRotationMatrix2D((640, 360), float(rng.uniform(0, 180)), 1.0)
    image = cv2.warpAffine(desk, turn, (1280, 720), borderValue=200)
    return cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.3, 2.0)))


def test_no_false_reads() -> None:
    rng = np.random.default_rng(42)
    all_formats = BarcodeDecoder()
    images = [
        np.zeros((720, 1280), np.uint8),
        np.full((720, 1280), 255, np.uint8),
        rng.integers(0, 256, (720, 1280), dtype=np.uint8),
        *(frame(None, level, rng) for level in Level),
        *(random_stripes(rng) for _ in range(25)),
    ]
    for image in images:
        result = all_formats.decode(image)
        assert result.codes == []


# Blank tickets whose lines of text ("TRAY 787  OD/OS", as in the dev corpus' frames without a
# code) the profile fits read as checked codes, confirmed by two profiles: the text's strokes
# line up from line to line. Found among the first 200 seeds at L0.
@pytest.mark.parametrize("seed", [63, 162])
def test_a_blank_tickets_text_is_not_read_as_a_code(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = frame(None, Level.L0, np.random.default_rng(seed))
    assert BarcodeDecoder().decode(image).codes == []
    # What stops it: their best decodes leave a quarter of the text's profile unexplained.
    monkeypatch.setattr(profile, "MAX_MISMATCH", 1.0)
    assert BarcodeDecoder().decode(image).codes != []


def test_wrong_check_character_is_not_reported() -> None:
    # Splice the check character of J1234568 into J1234567: every bar is valid Code 128,
    # only the check disagrees — a misprint or a misread scanline looks like this.
    right, other = (
        np.array(zxingcpp.write_barcode_to_image(zxingcpp.create_barcode(text, zxingcpp.Code128)))
        for text in ("J1234567", "J1234568")
    )
    assert right.shape == other.shape
    bars = np.nonzero(right[0] == 0)[0]
    stop = bars[-1] + 1 - 13  # the stop pattern is 13 modules, the check the 11 before it
    forged = right.copy()
    forged[:, stop - 11 : stop] = other[:, stop - 11 : stop]
    assert not np.array_equal(forged, right)

    def printed(code: np.ndarray) -> np.ndarray:
        image = cv2.resize(code, None, fx=3, fy=60, interpolation=cv2.INTER_NEAREST)
        return cv2.copyMakeBorder(image, 200, 200, 200, 200, cv2.BORDER_CONSTANT, value=255)

    assert texts(printed(right)) == ["J1234567"]
    result = CODE128.decode(printed(forged))
    assert result.codes == [] and result.candidates == []


def write_frames(tmp_path: Path) -> dict[str, str]:
    rng = np.random.default_rng(11)
    jobs = {"a_ticket.png": "J55501234", "b_ticket.jpg": "66601234", "c_blank.jpg": ""}
    for name, job in jobs.items():
        cv2.imwrite(str(tmp_path / name), frame(job or None, Level.L1, rng))
    return jobs


def test_cli_decodes_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = write_frames(tmp_path)
    (tmp_path / "notes.txt").write_text("not an image")  # not an image suffix: skipped
    assert main(["decode", "--formats", "code128,datamatrix", str(tmp_path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(line["path"]).name for line in lines] == sorted(jobs)
    for line in lines:
        expected = jobs[Path(line["path"]).name]
        assert line["codes"] == ([{"text": expected, "format": "code128"}] if expected else [])
        assert 0 < line["ms"] < 5000


def test_cli_reports_unreadable_files_and_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_frames(tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    paths = [str(broken), str(tmp_path / "missing.png"), str(tmp_path / "a_ticket.png")]
    assert main(["decode", *paths]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [sorted(line) for line in lines] == [["error", "path"]] * 2 + [["codes", "ms", "path"]]
    assert lines[2]["codes"] == [{"text": "J55501234", "format": "code128"}]


def test_cli_rejects_unknown_formats(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["decode", "--formats", "code128,ean13", "x.png"])
    assert exit_info.value.code == 2
    assert "ean13" in capsys.readouterr().err


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"dev corpus not found at {CORPUS}")
def test_corpus_frames() -> None:
    truth: dict[str, str] = json.loads((CORPUS / "truth.json").read_text())
    # The first frames of each kind: clean, tilted, and two without a barcode.
    for name in ("f0000_L0.jpg", "f0001_L1.jpg", "f0004_L1.jpg", "f0009_N.jpg", "f0019_N.jpg"):
        image = cv2.imread(str(CORPUS / name), cv2.IMREAD_GRAYSCALE)
        assert texts(image) == ([truth[name]] if truth[name] else []), name


def slanted_bars(slant: float) -> tuple[np.ndarray, Region]:
    """Random bars of 1.5 px modules, drifting `slant` px to the right per row, and the region a
    locator that took them for upright would cut out (the middle 40 rows)."""
    modules = np.random.default_rng(3).integers(0, 2, 120).repeat(3)  # half-px steps
    row = np.concatenate([np.zeros(60), modules, np.zeros(60)]) * -150.0 + 220.0
    fine = np.stack([np.roll(row, round(2 * slant * (y - 30))) for y in range(60)])
    size = (fine.shape[1] // 2, 60)
    image = cv2.resize(fine.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    to_image = np.float32([[1, 0, 0], [0, 1, 10], [0, 0, 1]])
    crop = image[10:50].astype(np.uint8)
    return image.astype(np.uint8), Region(crop=crop, to_image=to_image, strength=1.0)


def bar_detail(crop: np.ndarray) -> float:
    """How much of the bars survives averaging along them."""
    return float(np.square(np.diff(crop.astype(np.float32).mean(axis=0))).sum())


def test_straighten_sets_slanted_bars_upright() -> None:
    image, region = slanted_bars(0.1)  # 4 px, near three modules, over the crop's 40 rows
    straight = straighten(image, region)
    assert straight is not None and straight.crop.shape == region.crop.shape
    assert bar_detail(straight.crop) > 2 * bar_detail(region.crop)
    # Most of what upright bars keep (resampling between pixels smooths a little).
    assert bar_detail(straight.crop) > 0.5 * bar_detail(slanted_bars(0.0)[1].crop)
    # Bars that are upright already are left as they are.
    assert straighten(*slanted_bars(0.0)) is None


def test_straighten_widens_a_region_that_cuts_the_code_short() -> None:
    image, _ = slanted_bars(0.0)
    # The locator's crop starts 40 px into the bars (which start at 30 px).
    to_image = np.float32([[1, 0, 70], [0, 1, 10], [0, 0, 1]])
    region = Region(crop=image[10:50, 70:].copy(), to_image=to_image, strength=1.0)
    wider = straighten(image, region)
    assert wider is not None and wider.crop.shape[1] > region.crop.shape[1]
    assert wider.corners[:, 0].min() < 30  # its left end now reaches the first bar
    # The crop is the image where its homography says.
    left = round(wider.corners[0, 0])
    assert np.array_equal(wider.crop[:, 30 - left : 120 - left], image[10:50, 30:120])


def bars_on_paper(slant: float, lean: float = 0.0) -> tuple[np.ndarray, Region]:
    """Random bars of 1.5 px modules over rows 30–90 of paper 120 rows tall, drifting `slant` px
    to the right per row from their middle (plus `lean` per row from their left end to their
    right), under sensor noise; and the region a locator that saw only their strongest middle
    and took them for upright would cut out (rows 50–70)."""
    modules = np.random.default_rng(5).integers(0, 2, 120).repeat(3)  # half-px steps
    row = np.concatenate([np.zeros(60), modules, np.zeros(60)]) * -150.0 + 220.0
    across = np.arange(len(row)) / len(row) - 0.5
    fine = np.full((120, len(row)), 220.0)
    for y in range(30, 90):
        shift = 2 * (slant + lean * across) * (y - 59.5)  # half-px steps
        fine[y] = np.interp(np.arange(len(row)) - shift, np.arange(len(row)), row)
    image = cv2.resize(fine.astype(np.float32), (len(row) // 2, 120), interpolation=cv2.INTER_AREA)
    image += np.random.default_rng(6).normal(0, 12, image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    to_image = np.float32([[1, 0, 0], [0, 1, 50], [0, 0, 1]])
    return image, Region(crop=image[50:70].copy(), to_image=to_image, strength=1.0)


def thirds_alike(crop: np.ndarray) -> float:
    """How alike the top and bottom third of a crop's column means are: near 1 where its bars
    stand upright in it (resampling smooths both thirds alike)."""
    third = crop.shape[0] // 3
    top, bottom = (
        _detail(rows.astype(np.float32).mean(axis=0)) for rows in (crop[:third], crop[-third:])
    )
    return float(top @ bottom / (np.linalg.norm(top) * np.linalg.norm(bottom)))


@pytest.mark.parametrize(("slant", "lean"), [(0.06, 0.08), (-0.1, 0.1)])
def test_upright_takes_the_bars_whole_height_and_sets_them_upright(
    slant: float, lean: float
) -> None:
    image, region = bars_on_paper(slant, lean)  # drifting 3–9 px over the bars' 60 rows
    tall = upright(image, region)
    top, bottom = tall.corners[0, 1], tall.corners[3, 1]
    assert 25 <= top <= 33 and 87 <= bottom <= 95  # the bars' rows, not the paper's
    assert thirds_alike(tall.crop) > 0.95
    assert thirds_alike(image[30:90]) < 0.5 and thirds_alike(region.crop) < 0.5


def test_compiled_shear_measure_counts_detail_between_blocks_not_neighbours() -> None:
    # The compiled measure against its definition: blocks sampled with each row slid by the
    # slant and lean, the steps between neighbouring columns, and their products summed over
    # every pair of blocks at least two apart.
    rng = np.random.default_rng(11)
    for _ in range(20):
        count, width = int(rng.integers(3, 20)), int(rng.integers(40, 200))
        margin = int(rng.integers(0, 15))
        fine = rng.normal(0, 30, (count, width * SHEAR_UPSAMPLE)).astype(np.float32)
        rows = (np.arange(count) + 0.5) * 3 - count * 3 / 2
        slants, leans = rng.uniform(-0.3, 0.3, 5), rng.uniform(-0.4, 0.4, 5)
        kept = _kept_detail(fine, rows, slants, leans, width, margin)
        cols = np.arange(width)
        for slant, lean, measured in zip(slants, leans, kept, strict=True):
            slid = cols[None, :] + (slant + lean * (cols / width - 0.5))[None, :] * rows[:, None]
            index = np.clip(np.rint(slid * SHEAR_UPSAMPLE), 0, width * SHEAR_UPSAMPLE - 1)
            sampled = np.take_along_axis(fine.astype(np.float64), index.astype(int), axis=1)
            steps = np.diff(sampled[:, margin : width - margin], axis=1)
            products = steps @ steps.T
            apart = np.abs(np.subtract.outer(np.arange(count), np.arange(count))) >= 2
            assert measured == pytest.approx(products[apart].sum(), rel=1e-9, abs=1e-6)


def test_upright_leaves_upright_bars_upright() -> None:
    image, region = bars_on_paper(0.0)
    tall = upright(image, region)
    # Each column is the image's: no row slid along the bars.
    left = round(tall.corners[0, 0])
    top = round(tall.corners[0, 1])
    assert np.array_equal(
        tall.crop, image[top : top + tall.crop.shape[0], left:][:, : tall.crop.shape[1]]
    )


def test_upright_follows_the_bars_past_a_crop_that_cut_them_short() -> None:
    # The bars span columns 30–210 of the paper, which ends 30 px past them, on a dark desk.
    paper, _ = bars_on_paper(0.0)
    desk = np.random.default_rng(7).normal(90, 12, (120, 40))
    image = np.clip(np.hstack([desk, paper, desk]), 0, 255).astype(np.uint8)

    # A locator that saw only the middle half of the bars (paper columns 75–165).
    def seen(left: int, right: int) -> Region:
        to_image = np.float32([[1, 0, left], [0, 1, 50], [0, 0, 1]])
        return Region(crop=image[50:70, left:right].copy(), to_image=to_image, strength=1.0)

    tall = upright(image, seen(40 + 75, 40 + 165))
    left, right = tall.corners[0, 0], tall.corners[1, 0]
    # The bars and a quiet margin, short of the desk (at 40 and 280).
    assert 40 + 5 < left <= 40 + 30 - 5 and 40 + 210 + 5 <= right < 280 - 5
    # Bars that end inside the crop leave it as wide as it was, the desk's edge past its margin
    # of paper notwithstanding.
    assert upright(image, seen(40 + 15, 280 - 15)).crop.shape[1] == 210


def test_a_crop_spaces_the_bars_evenly_where_its_quad_converges() -> None:
    """The locator's top and bottom edges are the reach of a blurred code's pixels, and may
    converge where the code's do not: the crop still spaces its columns evenly along the code
    (the homography through the same corners would narrow the bars towards the converging end
    by half and more, past what the profile fit considers)."""
    row = np.where(np.arange(640) % 8 < 4, 40.0, 220.0).astype(np.float32)  # 4 px bars, 8 px apart
    image = np.repeat(row[None, :], 200, axis=0)
    quad = np.float32([[36, 40], [596, 80], [596, 120], [36, 160]])  # left side 120 px, right 40
    width, height = 560, 40
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    profile = _sample(image, quad, (width, height), xs, ys).astype(np.float32).mean(axis=0)
    falling = np.nonzero((profile[:-1] >= 130) & (profile[1:] < 130))[0]  # each bar's left edge
    assert len(falling) == 70
    assert np.ptp(np.diff(falling)) <= 1  # 8 px apart all along, give or take a pixel's rounding


def test_profile_fits_the_check_settled_do_not_confirm_each_other() -> None:
    """A fit the check settled used the check character to choose its code: two such fits of
    one code's profiles (settled alike where glare cut the code short) confirm nothing; one
    fit that needed no settling, or two of them, do."""
    corners = np.zeros((4, 2), np.float32)

    def vote(decoder: str, *, settled: bool) -> decode._Vote:
        return decode._Vote("J1", Symbology.CODE128, corners, decoder, False, settled)

    settled = [vote("fit/band1of3", settled=True), vote("fit/band3of3", settled=True)]
    assert not decode._is_confirmed(settled)
    assert decode._is_confirmed([settled[0], vote("fit/full", settled=False)])
    assert decode._is_confirmed([vote(name, settled=False) for name in ("fit/full", "zbar/full")])


def test_row_noise_is_what_a_mean_of_many_rows_shows_where_rows_share_pixels() -> None:
    # Upright bars plus sensor noise of variance 100 per pixel, sampled halfway between pixel
    # rows, as a turned code's crop is: each row averages two, its neighbours share one.
    rng = np.random.default_rng(8)
    bars = np.where(rng.integers(0, 2, 300).astype(bool), 60.0, 200.0)
    pixels = bars + rng.normal(0, 10, (81, 300))
    crop = (pixels[:-1] + pixels[1:]) / 2
    # The mean of the crop's 80 rows holds the noise of 81 pixel rows, as if each row's were
    # 100: alternate pairs of rows show half of that (each pair's inner rows share a pixel row),
    # the even and odd rows next to nothing (their difference cancels pixel row by pixel row).
    assert 40 <= decode._row_noise(crop) <= 65
    even_odd = crop[0::2].mean(axis=0) - crop[1::2].mean(axis=0)
    assert np.var(even_odd) * 80 / 4 < 5
    # Rows that share no pixels show it whole.
    assert 85 <= decode._row_noise(pixels[:80]) <= 115


def test_a_fifths_fit_does_not_confirm_fits_the_check_settled() -> None:
    """A fifth of the bar height is the noisiest profile and lies among the other bands' rows:
    its fit does not confirm the code two bands' fits settled alike; a third's fit does."""
    corners = np.zeros((4, 2), np.float32)

    def vote(decoder: str, rows: tuple[float, float], *, settled: bool) -> decode._Vote:
        return decode._Vote("J1", Symbology.CODE128, corners, decoder, False, settled, rows)

    settled = [
        vote("fit/band2of3", (1 / 3, 2 / 3), settled=True),
        vote("fit/band1of2", (0.0, 0.5), settled=True),
    ]
    assert not decode._is_confirmed([*settled, vote("fit/band3of5", (0.4, 0.6), settled=False)])
    assert decode._is_confirmed([*settled, vote("fit/band1of3", (0.0, 1 / 3), settled=False)])


def test_settled_fits_confirm_in_numbers_over_rows_apart() -> None:
    """Fits the check settled alike confirm a code when `SETTLED_QUORUM` (4) profiles agree and
    two of them average no row in common: fewer, or four that all share rows, do not."""
    corners = np.zeros((4, 2), np.float32)
    spans = {"full": (0.0, 1.0), "band1of2": (0.0, 0.5), "band1of3": (0.0, 1 / 3)}
    spans |= {"band1of5": (0.0, 0.2), "band3of3": (2 / 3, 1.0), "band5of5": (0.8, 1.0)}

    def settled(*names: str) -> list[decode._Vote]:
        return [
            decode._Vote("J1", Symbology.CODE128, corners, f"fit/{name}", False, True, spans[name])
            for name in names
        ]

    assert decode.SETTLED_QUORUM == 4
    assert not decode._is_confirmed(settled("full", "band1of3", "band3of3"))
    assert not decode._is_confirmed(settled("full", "band1of2", "band1of3", "band1of5"))
    assert decode._is_confirmed(settled("full", "band1of2", "band1of3", "band3of3"))
    assert decode._is_confirmed(settled("full", "band1of5", "band3of3", "band5of5"))


@pytest.mark.skipif(not HARD_CORPUS.is_dir(), reason=f"hard dev corpus not found at {HARD_CORPUS}")
def test_a_hard_frame_read_by_settled_fits_in_numbers() -> None:
    # Fitted for heavy motion blur, four of its profiles settle on the truth, none unsettled.
    truth: dict[str, str] = json.loads((HARD_CORPUS / "truth.json").read_text())
    image = cv2.imread(str(HARD_CORPUS / "f0087_L3.jpg"), cv2.IMREAD_GRAYSCALE)
    result = BarcodeDecoder().decode(image)
    assert [code.text for code in result.codes] == [truth["f0087_L3.jpg"]]
    assert all(name.startswith("fit/") for name in result.codes[0].decoders)
