"""Decode job-ticket barcodes from camera frames without ever reporting a misread.

Stages, cheapest first, each run only while the frame has no confirmed code (a ticket carries
one job number, in a Code 128 and a DataMatrix: one confirmed read of either is the answer):

1. zxing-cpp's linear readers on the whole frame, rows and columns, then its DataMatrix (2D)
   detector on the whole frame without its rotated passes, which finds a symbol at one
   quarter turn of the frame only, here the unturned one;
2. the strongest 1D region `locate` finds, cut out with its bars upright, by zxing-cpp and
   ZBar;
3. the 2D detector on the frame turned by each other quarter turn, likeliest to hold the
   ticket's DataMatrix that way up first (`_turns_to_try`);
4. the other regions `locate` finds, cut out and decoded as in 2;
5. the two strongest regions still unread, the more bar-like first (`locate.bar_likeness`),
   each cut out again over its bars' whole height and length with each bar in one column
   (`locate.upright`), as column-averaged scanline profiles, one over the full bar
   height, one per horizontal third, half and fifth, one of its even and one of its odd rows —
   averaging along the bars removes sensor noise without touching the bars, which is what blur
   and noise leave of an L2 frame. Code 128 profiles are fitted with a blurred model of the code
   (`profile.fit_profiles`; a profile the fit does not explain down to its sensor noise, which
   alternate pairs of rows' difference measures, reads as nothing), then given to zxing-cpp and
   ZBar; the first of the two is fitted once more, cut out again (`locate.straighten`) where
   its bars turn out slanted or run on past its ends;
6. the 2D detector on the turns 1 and 3 did not try (where nothing was located, or with no 1D
   format, the three turned ones; with `all_codes`, its rotated passes);
7. the first region's profiles of 5 fitted for heavy motion blur (`profile.HEAVY_BLURS`): only
   a frame where the fit of 5 decoded a code whole and nothing was read pays for it;
8. on a noisy frame (`locate.NOISY_ENERGY`), the regions of 5 cut out upright again over
   fewer rows (`TIGHT_GROW_SHARE`), their profiles decoded as in 5 and, where that decoded a
   code whole, for heavy blur as in 7; then that cut narrowed to the located code's columns
   (`NARROW_MARGIN`), decoded as in 5;
9. on a noisy frame, regions located again with the coherence test discounting the sensor
   noise (`NOISE_SHARES`), each cut that 5 did not already try decoded as 5 and 7 do.

zxing-cpp runs restricted to the configured formats, without its inverted (light on dark) and
downscaled passes. With `all_codes` every stage runs, for images that may hold several codes.

Every decode is a vote; `BarcodeDecoder.decode` returns the confirmed codes and, separately,
the unconfirmed candidates a stream can confirm over several frames (`StreamConfirmer`).
"""

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import combinations, islice

import cv2
import numpy as np
import zxingcpp
from pydantic import BaseModel, ConfigDict
from pyzbar import pyzbar

from .locate import (
    Region,
    Structure,
    bar_likeness,
    find_regions,
    straighten,
    to_image_points,
    upright,
)
from .profile import SLID_MIN_COUNT, ProfileFit


class Symbology(StrEnum):
    CODE128 = "code128"
    CODE39 = "code39"
    QR = "qr"
    DATAMATRIX = "datamatrix"


ALL_SYMBOLOGIES = tuple(Symbology)
# What the lab's job tickets carry, and so what a station's camera looks for by default: a
# Code 128 of the job number for wand scanners and a DataMatrix of it for cameras at any angle.
TICKET_SYMBOLOGIES = (Symbology.CODE128, Symbology.DATAMATRIX)
LINEAR = frozenset({Symbology.CODE128, Symbology.CODE39})
# Display names as the serial scanners report them (see scanner.framing.AIM_FAMILY).
SYMBOLOGY_NAMES = {
    Symbology.CODE128: "Code 128",
    Symbology.CODE39: "Code 39",
    Symbology.QR: "QR Code",
    Symbology.DATAMATRIX: "DataMatrix",
}
_ZXING = {
    Symbology.CODE128: zxingcpp.BarcodeFormat.Code128,
    Symbology.CODE39: zxingcpp.BarcodeFormat.Code39,
    Symbology.QR: zxingcpp.BarcodeFormat.QRCode,
    Symbology.DATAMATRIX: zxingcpp.BarcodeFormat.DataMatrix,
}
_FROM_ZXING = {fmt: symbology for symbology, fmt in _ZXING.items()}
_ZBAR = {
    Symbology.CODE128: pyzbar.ZBarSymbol.CODE128,
    Symbology.CODE39: pyzbar.ZBarSymbol.CODE39,
    Symbology.QR: pyzbar.ZBarSymbol.QRCODE,
}
_FROM_ZBAR = {"CODE128": Symbology.CODE128, "CODE39": Symbology.CODE39, "QRCODE": Symbology.QR}

Point = tuple[float, float]
# Band profiles: one per third of the bar height, so a slightly slanted (perspective) code
# still gives straight scanlines, and each band is a vote of its own; then one per half,
# which a dim, noisy code that no third reads may still confirm (tried only while unread).
# These and the full height agree on the code's ends (`ProfileFit`'s `ends_from`).
BANDS = (3, 2)
# Then one per fifth, which votes only: its narrower bands read hard frames the others miss
# (13 more of 2,896 synthetic hard frames, none misread), but had they joined the agreement on
# the ends, it would have moved for every profile: that read 12 more hard frames and one hard
# dev frame fewer, and fourths or sixths made misreads.
VOTING_BANDS = (5,)
# Last, the code's even and its odd rows, each a profile over the whole bar height, which only
# confirm what another profile read (`ProfileFit`'s `confirm_from`): their sensor noise is their
# own, but their slant, perspective and glare across the bars are the full height's, as no
# band's are. At the corpora's sensor noise they read 42 more of 3,974 synthetic hard frames
# (3,197 -> 3,239), none misread, and no normal frame fewer; decoded also before any read,
# they read one more and cost a sixth more on the synthetic normal set's p95. Print that is
# no code shows in them as in the full height, so they confirm its fit of a blank ticket's
# text as readily: what stops that is the fit's test of what it leaves unexplained.
ROW_PARITIES = 2
PROFILE_ROWS = 24  # rows a profile is repeated to, for decoders that want an image
# Unsharp masks (Gaussian sigma in px, amount) tried on the profiles, none first.
SHARPEN = ((0.0, 0.0), (1.0, 4.0), (2.0, 2.0), (2.0, 4.0), (3.0, 2.0))


class DecodedCode(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    symbology: Symbology
    corners: tuple[Point, Point, Point, Point]  # image pixels, around the code
    decoders: tuple[str, ...]  # which decodes agreed, e.g. ("zxing", "zbar/band1of3")


@dataclass(frozen=True)
class DecodeResult:
    codes: list[DecodedCode]  # confirmed: safe to act on
    candidates: list[DecodedCode]  # passed the symbology check but are not yet confirmed
    ms: float


@dataclass(frozen=True)
class _Vote:
    text: str
    symbology: Symbology
    corners: np.ndarray
    decoder: str
    # A decode of the image as captured by zxing-cpp, which itself accepts a linear code only
    # when two scanlines read the same text; synthesised profiles lack that guard.
    self_confirmed: bool
    # A profile fit whose code the check character chose (`ProfileFit.settled`).
    settled: bool = False
    # The share of the code's bar height its profile averaged (from the top): the whole of it
    # for anything but a band's profile, the even or odd rows' included, which `_apart` so
    # takes for sharing rows with every other profile.
    rows: tuple[float, float] = (0.0, 1.0)


THOROUGH_REGIONS = 2  # regions (strongest first) whose profiles are decoded
# Profiles whose fits the check settled alike confirm a Code 128 when at least this many agree,
# two of them over rows apart (`_apart`): at the corpora's sensor noise that read 2 more of
# 3,974 synthetic hard frames and one of the hard dev corpus' 36 L3 frames (fitted for heavy
# motion blur), and settled no wrong code there, in 1,074 normal frames or on a blank one.
SETTLED_QUORUM = 4
QUARTER_TURNS = (0, 90, 180, 270)  # clockwise, degrees
BAR_LIKE = 0.7  # `bar_likeness` of a region taken for a code's bars when turning the 2D pass
# Shares of a noisy frame's sensor noise the last stage's locating discounts, in turn
# (`locate.find_regions`). One share alone (0.6, 0.8 or 1.0) read 63-73 more of 3,974 synthetic
# hard frames, none lost, but not the same ones; these two, with `_cross_checked`, read 77 more
# (86.8 -> 88.7 %, before `_looks` looked again), none misread, and no normal, blank or corpus
# frame more or fewer; a third share (0.75) read 3 more, a third region each 1. A cut that
# stage 5 tried already (corners within `SAME_CUT` of its bar height) is not decoded again.
NOISE_SHARES = (0.6, 0.9)
SAME_CUT = 0.25
# `upright` grows a region's rows along its bars while each block of rows correlates with them
# by `locate.GROW_SHARE` of the region's own rows' median correlation; on a noisy frame that
# often runs on past a dim code's top or bottom into paper, print or the ticket's edge: rows
# that dilute every profile and leave some bands without bars (of 19 missed hard frames that
# read when cut out at their code's true corners, 5 read when their usual cut kept only the
# bars' true rows). A second cut, grown while rows correlate by this share, read 27 more of
# 3,974 synthetic hard frames (89.31 -> 89.98 %), none fewer, none misread, and no normal,
# blank or corpus frame more or fewer; a share of 0.5 read as many, 0.7 misread one.
TIGHT_GROW_SHARE = 0.6
# The same cut is also decoded with its columns kept within this share of the region's margin
# past the locator's mask (`locate.upright`'s `margin_kept`): its own margin and `_bar_columns`
# run 20-60 modules past a hard frame's code, onto the ticket's edge or print that the fit takes
# for the code's ends (of 19 missed hard frames that read when cut out at their code's true
# corners, 3 read when their usual cut kept only the code's columns and 6 modules more).
NARROW_MARGIN = 0.5


class BarcodeDecoder:
    """Decodes still images or frames; stateless apart from its configuration, thread-safe.

    By default (`all_codes=False`) decoding stops at the first stage that confirms a code: a
    frame shows one ticket, whose codes all carry its job number, and the later stages are the
    costly ones. With `all_codes=True` every stage runs, for images that may hold several
    different codes (`lenstrack decode`).
    """

    def __init__(
        self,
        symbologies: Iterable[Symbology] = TICKET_SYMBOLOGIES,
        *,
        max_regions: int = 4,
        all_codes: bool = False,
    ) -> None:
        self.symbologies = frozenset(symbologies)
        if not self.symbologies:
            raise ValueError("no symbology to decode")
        self.max_regions = max_regions
        self.all_codes = all_codes
        self._linear = self.symbologies & LINEAR
        self._zxing_linear = tuple(_ZXING[s] for s in sorted(self._linear))
        self._zxing_matrix = tuple(_ZXING[s] for s in sorted(self.symbologies - LINEAR))
        self._zbar_linear = [_ZBAR[s] for s in sorted(self._linear)]

    def decode(self, image: np.ndarray) -> DecodeResult:
        started = time.perf_counter()
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        votes: list[_Vote] = []
        if self._linear:  # rows, and columns for a ticket turned by 90°
            votes += self._zxing(gray, "zxing", np.eye(3), self._zxing_linear, try_rotate=True)
        # A ticket's DataMatrix has modules as small as its Code 128's (0.55 mm against 0.5 mm),
        # so it is searched at full size. zxing-cpp's detector finds a symbol at most angles by
        # itself; with `try_rotate` at every angle, but at three times the cost. Without it, it
        # finds a DataMatrix from one side only, so at one of four quarter turns of the image,
        # each an upright pass on the turned image. Tickets are mostly shown about upright: the
        # unturned pass (some 3.5 ms) comes before locating (some 7 ms), and reads three in five
        # of the everyday real-layout tickets the whole-frame 1D pass missed.
        turns: tuple[int, ...] = ()
        if self._zxing_matrix and not self.all_codes and not _has_confirmed(votes):
            turns = (0,)
            self._read_turned(gray, turns, votes)
        unread: list[Region] = []
        structure = Structure(gray) if self._linear else None  # computed when first needed
        regions = (
            find_regions(gray, max_regions=self.max_regions, structure=structure)
            if structure
            else iter(())
        )
        self._read_crops(islice(regions, 1), votes, unread)
        # The other turns before the weaker regions' crops: those read almost nothing (one
        # real-layout ticket in 60, no corpus frame), and cutting out and decoding three of them
        # costs more than these passes. The turns that set the strongest region's bars upright
        # or upside down (a ticket's DataMatrix is printed square to its Code 128; which of the
        # two is unknown) go first. All come before any profile fit: the strongest region is
        # not always the Code 128, and three passes cost a fifth of the fit.
        if turns and unread and not _has_confirmed(votes):
            others = tuple(turn for turn in _turns_to_try(unread[0]) if turn not in turns)
            turns += others
            self._read_turned(gray, others, votes)
        self._read_crops(regions, votes, unread)
        # The profile fits are the costly part; the regions past the strongest few are mostly
        # text and ticket edges (it bounds the time a frame without a readable code costs).
        # The more bar-like of those goes first: on a real ticket the strongest region is as
        # often the large job number printed at its top, whose fit and refit read nothing.
        thorough = unread[:THOROUGH_REGIONS]
        if len(thorough) > 1 and not _has_confirmed(votes):
            thorough.sort(key=bar_likeness, reverse=True)  # stable: ties stay strongest first
        fitted = False  # whether the first region's fit decoded a profile whole
        for index, region in enumerate(thorough):
            if _has_confirmed(votes):  # a ticket carries one code: the rest is text and edges
                break
            # Over the bars' whole height and upright. On the second region, mostly print, that
            # doubled the profile stage's cost on tickets' p95 until the fit's loops were
            # compiled; now it costs little, and read 8 more of 3,974 hard frames (9 gained, 1
            # lost), none misread, and no blank or normal frame more or fewer.
            found, whole = self._decode_profiles(upright(gray, region))
            votes += found
            fitted |= not index and whole
            if not index and not _has_confirmed(votes) and (straight := straighten(gray, region)):
                # Its decodes stand alone: a fit of the same bars resampled can repeat a wrong
                # fit of the crop's, so only what confirms itself within the new cut counts.
                found, whole = self._decode_profiles(straight, retry=True)
                votes += _standalone(found)
                fitted |= whole
        if self._zxing_matrix and not self._done(votes):
            if turns:  # the rotated pass reads what the four turns do, at the cost of four
                others = [turn for turn in QUARTER_TURNS if turn not in turns]
                self._read_turned(gray, others, votes)
            else:
                votes += self._zxing(gray, "zxing", np.eye(3), self._zxing_matrix, try_rotate=True)
        if fitted and not _has_confirmed(votes):
            # A code the usual fits decoded whole but could not settle is most often blurred
            # past what they model: only such frames pay for the heavy motion blur fit.
            votes += _standalone(self._decode_profiles(thorough[0], heavy=True)[0])
        if structure and structure.noisy and not _has_confirmed(votes):
            self._read_tight(gray, thorough, votes)
        if structure and not _has_confirmed(votes):
            self._read_noisy(gray, structure, [region.corners for region in thorough], votes)
        codes, candidates = _tally(votes)
        return DecodeResult(codes, candidates, (time.perf_counter() - started) * 1000)

    def _done(self, votes: Sequence[_Vote]) -> bool:
        return not self.all_codes and _has_confirmed(votes)

    def _read_crops(
        self, regions: Iterator[Region], votes: list[_Vote], unread: list[Region]
    ) -> None:
        """Decode the crops of `regions` into `votes` until a code is confirmed (each region is
        located only when asked for); a region whose crop confirms nothing goes to `unread`."""
        while not self._done(votes) and (region := next(regions, None)) is not None:
            covered = [v.corners for v in votes if _is_confirmed([v])]
            if any(_contains(box, region.corners.mean(axis=0)) for box in covered):
                continue
            found = self._decode_crop(region)
            votes.extend(found)
            if not _has_confirmed(found):
                unread.append(region)

    def _read_tight(self, gray: np.ndarray, regions: list[Region], votes: list[_Vote]) -> None:
        """Decode the profiles of `regions` cut out upright over fewer rows (`TIGHT_GROW_SHARE`)
        into `votes` until a code is confirmed, then, where that decoded a code whole, fitted
        for heavy motion blur, then cut out narrower too (`NARROW_MARGIN`). Each look stands
        alone (`_standalone`), and what it confirms counts only with a band's fit among it
        (`_banded`): on a blank hard ticket's print the full height and its odd rows fitted one
        code alike. The heavy fit (4 of the 27 frames the first two looks read) counts only as
        the noisy search's cuts do (`_cross_checked`): it settled one wrong code in seven
        profiles of a hard frame. The narrow look read 12 more of 3,974 synthetic hard frames
        (89.98 -> 90.29 %), none fewer, none misread once what it reads is as long as a job
        number (`_long_enough`)."""
        for region in regions:
            if _has_confirmed(votes):
                return
            cut = upright(gray, region, grow_share=TIGHT_GROW_SHARE)
            found, whole = self._decode_profiles(cut)
            votes += _banded(_standalone(found))
            if whole and not _has_confirmed(votes):
                votes += _cross_checked(_standalone(self._decode_profiles(cut, heavy=True)[0]))
            if not _has_confirmed(votes):
                narrow = upright(
                    gray, region, grow_share=TIGHT_GROW_SHARE, margin_kept=NARROW_MARGIN
                )
                found = _banded(_standalone(self._decode_profiles(narrow)[0]))
                votes += [vote for vote in found if _long_enough(vote.text)]

    def _read_noisy(
        self, gray: np.ndarray, structure: Structure, tried: list[np.ndarray], votes: list[_Vote]
    ) -> None:
        """Decode the profiles of the regions located with the sensor noise discounted into
        `votes` until a code is confirmed; `tried`: the corners of the cuts already decoded."""
        for share in NOISE_SHARES:
            regions = find_regions(
                gray, max_regions=THOROUGH_REGIONS, noise_share=share, structure=structure
            )
            for region in regions:
                corners = region.corners
                height = float(np.linalg.norm(corners[3] - corners[0]))
                if any(np.abs(corners - other).max() < SAME_CUT * height for other in tried):
                    continue
                tried.append(corners)
                for found in self._looks(gray, region):
                    votes += _cross_checked(found)
                    if _has_confirmed(votes):
                        return

    def _looks(self, gray: np.ndarray, region: Region) -> Iterator[list[_Vote]]:
        """The votes of a region's profiles, cut out upright, then as stages 5 and 7 look again
        (each look standing alone): cut out straightened, and fitted for heavy motion blur where
        the first look decoded a code whole. Those two read 23 more of 3,974 synthetic hard
        frames in the last stage (88.7 -> 89.3 %), none misread."""
        cut = upright(gray, region)
        found, whole = self._decode_profiles(cut)
        yield found
        if straight := straighten(gray, region):
            yield _standalone(self._decode_profiles(straight, retry=True)[0])
        if whole:
            yield _standalone(self._decode_profiles(cut, heavy=True)[0])

    def _decode_crop(self, region: Region) -> list[_Vote]:
        votes = self._zxing(region.crop, "zxing/crop", region.to_image, self._zxing_linear)
        return votes + self._zbar(region.crop, "zbar/crop", region)

    def _decode_profiles(
        self, region: Region, *, retry: bool = False, heavy: bool = False
    ) -> tuple[list[_Vote], bool]:
        """Column-averaged scanline profiles of the upright crop: fitted with the Code 128
        model, and given to zxing-cpp and ZBar (which also read Code 39 there). A `retry` of a
        region only fits; a `heavy` one fits heavy motion blur only (`profile.HEAVY_BLURS`).
        With the votes, whether the fit decoded a profile whole (`ProfileFit.whole`)."""
        votes: list[_Vote] = []
        crop = region.crop.astype(np.float32)
        profiles, names, spans, rows = [crop.mean(axis=0)], ["full"], [(0.0, 1.0)], [len(crop)]
        for count in (*BANDS, *VOTING_BANDS):
            for band, band_rows in enumerate(np.array_split(crop, count, axis=0), 1):
                profiles.append(band_rows.mean(axis=0))
                names.append(f"band{band}of{count}")
                spans.append(((band - 1) / count, band / count))
                rows.append(len(band_rows))
        for parity in range(ROW_PARITIES):
            parity_rows = crop[parity::ROW_PARITIES]
            profiles.append(parity_rows.mean(axis=0))
            names.append(f"rows{parity + 1}of{ROW_PARITIES}")
            spans.append((0.0, 1.0))
            rows.append(len(parity_rows))
        noise = _row_noise(crop)
        ends_from = 1 + sum(BANDS)
        confirm_from = len(profiles) - ROW_PARITIES
        fitted = profiles if Symbology.CODE128 in self._linear else []
        fit = ProfileFit(
            fitted,
            heavy=heavy,
            ends_from=ends_from,
            confirm_from=confirm_from,
            noise=[noise / count for count in rows],
        )
        for index, text in fit:
            name = f"fit/{names[index]}"
            settled = index in fit.settled
            votes.append(
                _Vote(text, Symbology.CODE128, region.corners, name, False, settled, spans[index])
            )
            if _has_confirmed(votes):
                return votes, fit.whole
        if retry or heavy:
            return votes, fit.whole
        # Plain, then (only to confirm a candidate: a Code 39 has no check character to lean
        # on) sharpened with unsharp masks, mildest first: blur across the bars merges narrow
        # bars and spaces into grey ripples that sharpening separates.
        for sigma, amount in SHARPEN:
            if amount and not votes:
                break
            for profile_name, profile in zip(names, profiles, strict=True):
                image = _profile_image(_sharpen(profile, sigma, amount))
                name = profile_name + (f"/sharpen{sigma:g}x{amount:g}" if amount else "")
                votes += self._zxing(
                    image, f"zxing/{name}", None, self._zxing_linear, region=region
                )
                votes += self._zbar(image, f"zbar/{name}", region)
                if _has_confirmed(votes):
                    return votes, fit.whole
        return votes, fit.whole

    def _zxing(
        self,
        image: np.ndarray,
        name: str,
        to_image: np.ndarray | None,
        formats: tuple[zxingcpp.BarcodeFormat, ...],
        *,
        try_rotate: bool = False,
        region: Region | None = None,
    ) -> list[_Vote]:
        """zxing-cpp restricted to `formats`, dark codes on light paper only (no inverted
        pass), at the resolution given (no downscaled passes: they find nothing a 1280×720
        frame of a ticket does not show at full size, and cost a quarter more)."""
        votes = []
        found = zxingcpp.read_barcodes(
            image, formats=formats, try_rotate=try_rotate, try_invert=False, try_downscale=False
        )
        for barcode in found:
            if to_image is None:  # a synthesised profile: the region is all we know
                assert region is not None
                corners = region.corners
            else:
                pos = barcode.position
                points = [pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left]
                corners = to_image_points([(p.x, p.y) for p in points], to_image)
            votes.append(
                _Vote(
                    text=barcode.text,
                    symbology=_FROM_ZXING[barcode.format],
                    corners=corners,
                    decoder=name,
                    self_confirmed=to_image is not None,
                )
            )
        return votes

    def _read_turned(self, gray: np.ndarray, turns: Sequence[int], votes: list[_Vote]) -> None:
        """The upright 2D pass at each of `turns` in order into `votes`, until a code is
        confirmed."""
        for turn in turns:
            if _has_confirmed(votes):
                break
            votes += self._zxing_turned(gray, turn)

    def _zxing_turned(self, gray: np.ndarray, turn: int) -> list[_Vote]:
        """The upright 2D pass on `gray` turned clockwise by `turn` degrees."""
        if not turn:
            return self._zxing(gray, "zxing", np.eye(3), self._zxing_matrix)
        height, width = gray.shape[:2]
        rotation, to_image = {
            90: (cv2.ROTATE_90_CLOCKWISE, [[0, 1, 0], [-1, 0, height - 1], [0, 0, 1]]),
            180: (cv2.ROTATE_180, [[-1, 0, width - 1], [0, -1, height - 1], [0, 0, 1]]),
            270: (cv2.ROTATE_90_COUNTERCLOCKWISE, [[0, -1, width - 1], [1, 0, 0], [0, 0, 1]]),
        }[turn]
        turned = cv2.rotate(gray, rotation)
        return self._zxing(turned, f"zxing/turn{turn}", np.float64(to_image), self._zxing_matrix)

    def _zbar(self, image: np.ndarray, name: str, region: Region) -> list[_Vote]:
        return [
            _Vote(
                text=found.data.decode("latin-1"),
                symbology=_FROM_ZBAR[found.type],
                corners=region.corners,
                decoder=name,
                self_confirmed=False,
            )
            for found in pyzbar.decode(image, symbols=self._zbar_linear)
            if found.type in _FROM_ZBAR
        ]


def _turns_to_try(region: Region) -> tuple[int, ...]:
    """The quarter turns (clockwise, degrees) at which the 2D pass looks for a ticket's
    DataMatrix, likeliest first, given its strongest 1D region. Where that region has bars
    (`BAR_LIKE`), it is most often the Code 128, printed square to the DataMatrix: the two
    turns that bring its bars nearest upright, either way up (unturned first). Otherwise it is
    most often lines of print, which lie across the ticket as often as along it: no turn first,
    as tickets are mostly shown about upright."""
    first: tuple[int, ...] = (0,)
    if bar_likeness(region) >= BAR_LIKE:
        start, end = to_image_points([(0, 0), (1, 0)], region.to_image)
        across = np.degrees(np.arctan2(end[1] - start[1], end[0] - start[0])) % 180
        first = (90, 270) if 45 <= across < 135 else (0, 180)
    return first + tuple(turn for turn in QUARTER_TURNS if turn not in first)


def _standalone(votes: Sequence[_Vote]) -> list[_Vote]:
    """The votes of a second look at a region that confirm themselves: a fit of the same bars
    under other assumptions can repeat a wrong fit of the first look's, so only what confirms
    itself within the new look counts."""
    return [vote for group in _group(votes).values() if _is_confirmed(group) for vote in group]


def _cross_checked(votes: Sequence[_Vote]) -> list[_Vote]:
    """The votes of a cut located with the noise discounted whose text a fit the check did not
    settle confirms, and a band's fit among them: a cut askew over a code's lower half had four
    bands settled alike into a wrong code (the settled quorum), another the full height and
    its odd rows, which share its slant, read alike into one (2 of 3,974 synthetic hard frames;
    these rules cost 10 of the 87 more that the stage read without them)."""
    return [
        vote
        for group in _group(votes).values()
        if any(not v.settled and _confirms(v) for v in group) and _has_band(group)
        for vote in group
    ]


def _long_enough(text: str) -> bool:
    """Whether `text` makes a Code 128 of at least `profile.SLID_MIN_COUNT` symbols, each data
    symbol holding two characters at most (digits in code set C): what a narrowed cut reads
    shorter is as likely a chance decode as what slid ends read (a hard frame's narrowed cut
    read 'hY' in a code of 8 digits)."""
    return 3 + -(-len(text) // 2) >= SLID_MIN_COUNT  # start, check and stop


def _banded(votes: Sequence[_Vote]) -> list[_Vote]:
    """The votes of the texts that a band's fit is among (`_has_band`)."""
    return [vote for group in _group(votes).values() if _has_band(group) for vote in group]


def _has_band(group: Sequence[_Vote]) -> bool:
    """Whether a band's profile is among `group`: its rows are its own, where the full height
    and its even and odd rows share the whole code's slant, glare and the print past its ends."""
    return any(vote.rows != (0.0, 1.0) for vote in group)


def _is_confirmed(votes: Sequence[_Vote]) -> bool:
    """The no-misread rule for votes that all carry the same symbology and text.

    2D codes carry Reed–Solomon error correction: one decode is enough. Code 128 has a
    mandatory check character: one decode that zxing confirmed over two scanlines is enough.
    Code 39 has no mandatory check, and synthesised scanlines can be wrong in a correlated way,
    so otherwise two different decodes (decoder or band) must agree, one of them not settled by
    the check (nor a fifth's fit, `_confirms`): a fit the check settled has used the check to
    choose its code, and two bands of one code cut short by glare were settled alike into a
    wrong code (1 of 1,267 hard frames), two of a blank ticket's text into a code (1 of 58
    blank frames among 600 normal ones).
    Settled fits alone confirm only in numbers (`SETTLED_QUORUM`).
    """
    symbology = votes[0].symbology
    if symbology not in LINEAR:
        return True
    if symbology is Symbology.CODE128 and any(v.self_confirmed for v in votes):
        return True
    decoders = {v.decoder for v in votes}
    if len(decoders) >= 2 and any(not v.settled and _confirms(v) for v in votes):
        return True
    return len(decoders) >= SETTLED_QUORUM and _apart([v.rows for v in votes])


def _confirms(vote: _Vote) -> bool:
    """Whether `vote`, unsettled, confirms another decode of its text: unless it is a fit of a
    band narrower than a third of the bar height (`VOTING_BANDS`), whose rows lie among the
    other bands' and whose noise is the highest of all profiles. At the corpora's sensor noise
    a fifth's fit confirmed the wrong code two overlapping bands' fits had settled alike (1 of
    3,974 synthetic hard frames, once crops were cut out over the bars' whole length)."""
    low, high = vote.rows
    return high - low >= MIN_CONFIRMING_BAND


MIN_CONFIRMING_BAND = 1 / max(BANDS) - 1e-9  # share of the bar height


def _apart(spans: Sequence[tuple[float, float]]) -> bool:
    """Whether two of the bar-height `spans` share no row: their profiles' noise is their own."""
    return any(a[1] <= b[0] or b[1] <= a[0] for a, b in combinations(spans, 2))


def _has_confirmed(votes: Sequence[_Vote]) -> bool:
    return any(_counts(group, votes) for group in _group(votes).values())


def _counts(group: Sequence[_Vote], votes: Sequence[_Vote]) -> bool:
    """Whether `group` (one symbology and text of `votes`) is confirmed (`_is_confirmed`) and
    not contested (`_contested`)."""
    return _is_confirmed(group) and not _contested(group, votes)


# Profile fits of a code confirm it only by at least this many more profiles than fitted other
# codes in the same region: at the corpora's sensor noise two profiles of a hard frame's code
# now and then fitted one wrong code alike while two others fitted others (2 misreads in 3,974
# synthetic hard frames once crops took the bars' whole height); with this margin none did,
# for 2 frames fewer read, none in the corpora or the normal sets.
CONTEST_MARGIN = 2


def _contested(group: Sequence[_Vote], votes: Sequence[_Vote]) -> bool:
    """Whether `group`, read by profile fits alone, has too few profiles for it against those
    of `votes` that fitted another code in the same region (`CONTEST_MARGIN`)."""
    if not all(vote.decoder.startswith("fit/") for vote in group):
        return False
    text, corners = group[0].text, group[0].corners
    rivals = {
        vote.decoder
        for vote in votes
        if vote.decoder.startswith("fit/")
        and vote.text != text
        and np.array_equal(vote.corners, corners)
    }
    return len({vote.decoder for vote in group}) - len(rivals) < CONTEST_MARGIN


def _group(votes: Sequence[_Vote]) -> dict[tuple[Symbology, str], list[_Vote]]:
    groups: dict[tuple[Symbology, str], list[_Vote]] = {}
    for vote in votes:
        groups.setdefault((vote.symbology, vote.text), []).append(vote)
    return groups


def _tally(votes: Sequence[_Vote]) -> tuple[list[DecodedCode], list[DecodedCode]]:
    codes, candidates = [], []
    for (symbology, text), group in _group(votes).items():
        code = DecodedCode(
            text=text,
            symbology=symbology,
            corners=tuple((float(x), float(y)) for x, y in group[0].corners),  # type: ignore[arg-type]
            decoders=tuple(dict.fromkeys(v.decoder for v in group)),
        )
        (codes if _counts(group, votes) else candidates).append(code)
    return codes, candidates


def _row_noise(crop: np.ndarray) -> float:
    """The variance of `crop`'s sensor noise per row, as the mean of many of its rows shows
    it: from the means of alternate pairs of rows (0–1, 4–5, … against 2–3, 6–7, …), which
    differ by noise alone where the bars stand upright. A turned code's crop samples between
    pixels, so neighbouring rows share their noise: where each row averages two pixel rows this
    shows half of it, the even and odd rows' difference next to nothing (on hard frames that
    was 2.2–5.7 times less than this)."""
    quads = len(crop) // 4 * 4
    first = (np.arange(quads) // 2) % 2 == 0
    difference = crop[:quads][first].mean(axis=0) - crop[:quads][~first].mean(axis=0)
    return float(np.var(difference)) * quads / 4  # each mean holds quads / 2 rows


def _sharpen(profile: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    if not amount:
        return profile
    blurred = cv2.GaussianBlur(profile[None, :], (0, 0), sigma)[0]
    return profile + amount * (profile - blurred)


def _profile_image(profile: np.ndarray) -> np.ndarray:
    low, high = np.percentile(profile, [2, 98])
    scaled = np.clip((profile - low) * (255.0 / max(high - low, 1e-6)), 0, 255)
    return np.repeat(scaled.astype(np.uint8)[None, :], PROFILE_ROWS, axis=0)


def _contains(corners: np.ndarray, point: np.ndarray) -> bool:
    """Whether `point` lies in the box grown by half: a code's own text and quiet zone."""
    centre = corners.mean(axis=0)
    contour = (centre + 1.5 * (corners - centre)).reshape(-1, 1, 2).astype(np.float32)
    return cv2.pointPolygonTest(contour, (float(point[0]), float(point[1])), False) >= 0
