"""Decode benchmark: our pipeline against plain pyzbar and plain zxing-cpp, on one core.

    .venv/bin/python -m benchmarks.decode [--synthetic N] [--hard N] [--tickets N] [--blanks N]
                                          [--seed S]

Sets, each printed as a table: the dev corpus (../shared/corpus/frames-dev), the hard dev corpus
(../shared/corpus/frames-hard-dev), a seeded synthetic normal set (L0–L2) and a seeded
synthetic hard set (L3: codes at 1.2–1.8 px per module, grey ink, dim, strong glare, 7–13 px
motion blur, JPEG 40–70), both of ticket-shaped frames carrying a Code 128 and a DataMatrix of
the job number (`drivers.camera.synth`); with `--tickets N` N tickets drawn by the real ticket
layout (`server.tickets`, rasterised by PDFium) placed in camera frames at L1–L3, and with
`--blanks N` N tickets of text without a code at L0–L3 (like the corpora's `_N` frames, whose
lines of print a fit may take for bars), for false reads. Every synthetic frame carries the
sensor noise measured in the corpora at its level. A corpus directory holds JPEG frames and
`truth.json`, file name → job number ("" for `_N` frames without a barcode); the level is the
`_L0`…`_L3` suffix. The synthetic sets were never looked at while tuning the pipeline.

Columns: ours with the station default (the ticket's formats, Code 128 + DataMatrix), ours
with all formats, plain zxing-cpp (`zxingcpp.read_barcodes(gray)`, default options, every
format) and plain pyzbar (`pyzbar.decode(gray)`).

What counts: a frame with a barcode is read when any code the decoder reports has the job
number as its text (whatever its symbology: a ticket carries a 1D and a 2D code); a misread
is a reported text that is not the job number on such a frame; any code on an `_N` frame is a
false read. Times are per frame, decode only (the JPEG is decompressed before the clock starts):
wall clock, and the process's CPU time, which other load on a shared machine inflates less.
Where a set mixes L3 frames with others (the hard dev corpus, the real-layout tickets), the
frames named at L0–L2 are also timed apart (`<L3`): those are the everyday levels of the dev
corpus, and hard frames have a read-rate target of their own.
"""

import os

# One core, set before numpy/OpenCV load their thread pools.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import zxingcpp  # noqa: E402
from pyzbar import pyzbar  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from drivers.camera import ALL_SYMBOLOGIES, TICKET_SYMBOLOGIES, BarcodeDecoder  # noqa: E402
from drivers.camera.synth import Level, camera_frame, dataset  # noqa: E402
from drivers.camera.warm import warm_up  # noqa: E402

cv2.setNumThreads(1)

SHARED = ROOT.parent / "shared/corpus"
LEVELS = ("L0", "L1", "L2", "L3")
Frame = tuple[str, str, np.ndarray]  # name, truth, grayscale image
Decode = Callable[[np.ndarray], list[str]]


@dataclass
class Score:
    read: dict[str, list[bool]] = field(default_factory=lambda: {lv: [] for lv in LEVELS})
    misreads: list[str] = field(default_factory=list)
    false_reads: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    normal_ms: list[float] = field(default_factory=list)  # frames named at L0–L2

    def add(self, name: str, truth: str, texts: list[str], ms: float, cpu_ms: float) -> None:
        self.ms.append(ms)
        self.cpu_ms.append(cpu_ms)
        if stated_level(name) in EVERYDAY:
            self.normal_ms.append(ms)
        if not truth:
            self.false_reads += [f"{name}: {text!r}" for text in texts]
            return
        self.read[level_of(name)].append(truth in texts)
        if truth not in texts:
            self.missed.append(name)
        self.misreads += [f"{name}: {text!r} (truth {truth!r})" for text in texts if text != truth]

    def rows(self, levels: list[str], mixed: bool) -> list[str]:
        def rate(results: list[bool]) -> str:
            share = 100 * sum(results) / len(results) if results else 0.0
            return f"{share:5.1f}% {sum(results):3d}/{len(results):<3d}"

        everything = [r for results in self.read.values() for r in results]
        return [
            *(rate(self.read[level]) for level in levels),
            rate(everything),
            str(len(self.misreads)),
            str(len(self.false_reads)),
            f"{np.median(self.ms):.1f}",
            f"{np.percentile(self.ms, 95):.1f}",
            f"{np.median(self.cpu_ms):.1f}",
            f"{np.percentile(self.cpu_ms, 95):.1f}",
            *(
                (f"{np.median(self.normal_ms):.1f}", f"{np.percentile(self.normal_ms, 95):.1f}")
                if mixed
                else ()
            ),
        ]


def level_of(name: str) -> str:
    return Path(name).stem.rsplit("_", 1)[-1]


EVERYDAY = frozenset(LEVELS[:-1])


def stated_level(name: str) -> str | None:
    """A frame's level, where its name states it: `t0003_L3.jpg`, or `t0009_L3_N.jpg` for a
    real-layout ticket without a code (the corpora's and synthetic sets' `_N` frames do not)."""
    return next((part for part in Path(name).stem.split("_") if part in LEVELS), None)


def load_corpus(directory: Path) -> list[Frame]:
    truth: dict[str, str] = json.loads((directory / "truth.json").read_text())
    frames = []
    for name in sorted(truth):
        image = cv2.imread(str(directory / name), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise SystemExit(f"cannot read {directory / name}")
        frames.append((name, truth[name], image))
    return frames


def synthetic(
    count: int, seed: int, levels: tuple[Level, ...], *, blank_share: float = 0.1
) -> list[Frame]:
    return [
        (name, job, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        for name, job, image in dataset(
            count, seed, levels=levels, matrix=True, blank_share=blank_share
        )
    ]


def tickets(count: int, seed: int) -> list[Frame]:
    """`count` made-up jobs' tickets, drawn by the server's ticket layout and rasterised, in
    camera frames cycling L1, L2, L3; a tenth are blank paper of the same size (`_L3_N` for one
    at L3)."""
    import pypdfium2  # a dev dependency, like the server's reportlab

    from server.ticket_pdf import CODE128_MODULE
    from server.tickets import TicketEye, TicketJob, render_tickets

    dpi = 150
    module = CODE128_MODULE * dpi / 72  # the Code 128 module in rasterised pixels
    rng = np.random.default_rng(seed)
    levels = (Level.L1, Level.L2, Level.L3)
    frames = []
    for index in range(count):
        blank = rng.random() < 0.1
        job_number = ("J" if rng.random() < 0.5 else "") + f"{rng.integers(10**7, 10**8)}"
        job = TicketJob(
            job_number=job_number,
            store_code="N01",
            store_name="Northside Vision",
            due="Thu 05 Dec 14:30",
            tray_number=str(rng.integers(100, 999)),
            patient_ref=f"P{rng.integers(1000, 9999)}",
            rush=bool(rng.random() < 0.2),
            eyes=(
                TicketEye("R", sph=-1.25, cyl=-0.5, axis=90, add=2.0),
                TicketEye("L", sph=-1.5, cyl=-0.75, axis=85, add=2.0),
            ),
            design="Progressive",
            material="Polycarbonate",
            index=1.59,
            treatments=("AR coating",),
            route=("Surfacing", "Polishing", "AR coat", "Edging", "Final QC", "Shipping"),
            special_instructions="Match the old pair's tint." if rng.random() < 0.5 else "",
        )
        pdf = render_tickets([job])
        page = pypdfium2.PdfDocument(pdf)[0].render(scale=dpi / 72, grayscale=True).to_numpy()
        ticket = page if page.ndim == 2 else page[..., 0]
        # The Code 128 is kept inside the frame, as a ticket shown to the camera; the rest of a
        # ticket too large for the frame at that scale may be cut off.
        (code,) = zxingcpp.read_barcodes(ticket, formats=(zxingcpp.BarcodeFormat.Code128,))
        pos = code.position
        corners = [(p.x, p.y) for p in (pos.top_left, pos.top_right, pos.bottom_right)]
        corners.append((pos.bottom_left.x, pos.bottom_left.y))
        if blank:
            ticket = np.full_like(ticket, 255)
        level = levels[index % len(levels)]
        image = camera_frame(ticket, module, level, rng, inside=np.float32(corners))
        name = f"t{index:04d}_{level}_N.jpg" if blank else f"t{index:04d}_{level}.jpg"
        frames.append((name, "" if blank else job_number, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)))
    return frames


def score(frames: Iterable[Frame], decode: Decode) -> Score:
    result = Score()
    for name, truth, image in frames:
        started, cpu_started = time.perf_counter(), time.process_time()
        texts = decode(image)
        cpu_ms = (time.process_time() - cpu_started) * 1000
        result.add(name, truth, texts, (time.perf_counter() - started) * 1000, cpu_ms)
    return result


def report(title: str, frames: list[Frame], decoders: dict[str, Decode]) -> None:
    if not frames:
        print(f"\n## {title}: no frames (skipped)")
        return
    counts = {level: sum(1 for n, t, _ in frames if t and level_of(n) == level) for level in LEVELS}
    levels = [level for level in LEVELS if counts[level]]
    blanks = sum(1 for _, t, _ in frames if not t)
    counted = ", ".join(f"{level} {counts[level]}" for level in levels) or "none"
    print(f"\n## {title}: {len(frames)} frames ({counted} with a barcode, {blanks} without)")
    print(f"load average {_load()}")
    scores = {name: score(frames, decode) for name, decode in decoders.items()}
    labels = [f"read {level}" for level in levels] + ["read all", "misreads", "false reads"]
    labels += ["median ms", "p95 ms", "median CPU ms", "p95 CPU ms"]
    # Where a set mixes hard (L3) frames with everyday ones, the everyday ones are timed apart.
    stated = {stated_level(name) for name, _, _ in frames}
    mixed = "L3" in stated and bool(stated & EVERYDAY)
    labels += ["median ms <L3", "p95 ms <L3"] if mixed else []
    print(f"{'':14}" + "".join(f"{name:>20}" for name in scores))
    columns = [s.rows(levels, mixed) for s in scores.values()]
    for index, label in enumerate(labels):
        print(f"{label:14}" + "".join(f"{column[index]:>20}" for column in columns))
    for name, s in scores.items():
        for problem in s.misreads + s.false_reads:
            print(f"  {name}: {problem}")
    for name in list(scores)[:2]:
        print(f"  {name} did not read: {' '.join(scores[name].missed) or '-'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "frames-dev")
    parser.add_argument("--hard-corpus", type=Path, default=SHARED / "frames-hard-dev")
    parser.add_argument("--synthetic", type=int, default=300, help="normal frames (0: none)")
    parser.add_argument("--hard", type=int, default=200, help="hard frames (0: none)")
    parser.add_argument("--tickets", type=int, default=0, help="real-layout tickets (0: none)")
    parser.add_argument(
        "--blanks", type=int, default=0, help="tickets without a code, L0–L3 (0: none)"
    )
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()

    # As a station's camera does before its first frame: otherwise the first frames to reach
    # each numba kernel pay for loading it from its disk cache (some 0.3 s in all).
    warm_up()
    ticket_default = BarcodeDecoder(TICKET_SYMBOLOGIES)
    every_format = BarcodeDecoder(ALL_SYMBOLOGIES)
    decoders: dict[str, Decode] = {
        "ours (ticket)": lambda image: [code.text for code in ticket_default.decode(image).codes],
        "ours (all)": lambda image: [code.text for code in every_format.decode(image).codes],
        "plain zxing-cpp": lambda image: [code.text for code in zxingcpp.read_barcodes(image)],
        "plain pyzbar": lambda image: [
            found.data.decode("latin-1") for found in pyzbar.decode(image)
        ],
    }
    print(
        "decode benchmark: one core (cv2.setNumThreads(1), OMP/OPENBLAS/MKL_NUM_THREADS=1); "
        f"ours (ticket) = {','.join(TICKET_SYMBOLOGIES)} (the station default); ours (all) = "
        f"{','.join(ALL_SYMBOLOGIES)}; plain zxing-cpp = zxingcpp.read_barcodes(gray), plain "
        "pyzbar = pyzbar.decode(gray), default options; ms = decode only"
    )
    for title, directory in (("dev corpus", args.corpus), ("hard dev corpus", args.hard_corpus)):
        if directory.is_dir():
            report(f"{title} {directory}", load_corpus(directory), decoders)
        else:
            print(f"\n({title} {directory} not found: skipped)")
    if args.synthetic:
        frames = synthetic(args.synthetic, args.seed, (Level.L0, Level.L1, Level.L2))
        report(f"synthetic normal tickets, seed {args.seed}", frames, decoders)
    if args.hard:
        frames = synthetic(args.hard, args.seed + 1, (Level.L3,))
        report(f"synthetic hard tickets, seed {args.seed + 1}", frames, decoders)
    if args.tickets:
        frames = tickets(args.tickets, args.seed + 2)
        report(f"real-layout tickets, seed {args.seed + 2}", frames, decoders)
    if args.blanks:
        frames = synthetic(args.blanks, args.seed + 3, tuple(Level), blank_share=1.0)
        report(f"synthetic blank tickets, seed {args.seed + 3}", frames, decoders)
    print(f"\nload average at the end: {_load()}")
    return 0


def _load() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
