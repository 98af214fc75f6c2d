"""Decode benchmark: our pipeline against plain pyzbar and plain zxing-cpp, on one core.

    .venv/bin/python benchmarks/decode.py [CORPUS_DIR] [--formats code128] [--synthetic N]

CORPUS_DIR (default ../shared/corpus/frames-dev) holds JPEG frames and `truth.json`, file name →
job number ("" for `_N` frames without a barcode); the level is the `_L0`/`_L1`/`_L2` suffix.
The same figures are printed for a seeded synthetic held-out set from `drivers.camera.synth`,
which the pipeline was never tuned on.

What counts: a frame with a barcode is read when any code the decoder reports has the job
number as its text (whatever its symbology: a ticket may carry a 1D and a 2D code); a misread
is a reported text that is not the job number on such a frame; any code on an `_N` frame is a
false read. Times are per frame, decode only (the JPEG is decompressed before the clock starts):
wall clock, and the process's CPU time, which other load on a shared machine inflates less.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from drivers.camera import BarcodeDecoder  # noqa: E402
from drivers.camera.synth import dataset  # noqa: E402
from drivers.decode_cli import parse_symbologies  # noqa: E402

cv2.setNumThreads(1)

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared/corpus/frames-dev"
LEVELS = ("L0", "L1", "L2")
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

    def add(self, name: str, truth: str, texts: list[str], ms: float, cpu_ms: float) -> None:
        self.ms.append(ms)
        self.cpu_ms.append(cpu_ms)
        if not truth:
            self.false_reads += [f"{name}: {text!r}" for text in texts]
            return
        self.read[level_of(name)].append(truth in texts)
        if truth not in texts:
            self.missed.append(name)
        self.misreads += [f"{name}: {text!r} (truth {truth!r})" for text in texts if text != truth]

    def rows(self) -> list[str]:
        def rate(results: list[bool]) -> str:
            share = 100 * sum(results) / len(results) if results else 0.0
            return f"{share:5.1f}% {sum(results):3d}/{len(results):<3d}"

        everything = [r for results in self.read.values() for r in results]
        return [
            *(rate(self.read[level]) for level in LEVELS),
            rate(everything),
            str(len(self.misreads)),
            str(len(self.false_reads)),
            f"{np.median(self.ms):.1f}",
            f"{np.percentile(self.ms, 95):.1f}",
            f"{np.median(self.cpu_ms):.1f}",
            f"{np.percentile(self.cpu_ms, 95):.1f}",
        ]


def level_of(name: str) -> str:
    return Path(name).stem.rsplit("_", 1)[-1]


def load_corpus(directory: Path) -> list[Frame]:
    truth: dict[str, str] = json.loads((directory / "truth.json").read_text())
    frames = []
    for name in sorted(truth):
        image = cv2.imread(str(directory / name), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise SystemExit(f"cannot read {directory / name}")
        frames.append((name, truth[name], image))
    return frames


def synthetic(count: int, seed: int) -> list[Frame]:
    return [
        (name, job, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        for name, job, image in dataset(count, seed)
    ]


def score(frames: Iterable[Frame], decode: Decode) -> Score:
    result = Score()
    for name, truth, image in frames:
        started, cpu_started = time.perf_counter(), time.process_time()
        texts = decode(image)
        cpu_ms = (time.process_time() - cpu_started) * 1000
        result.add(name, truth, texts, (time.perf_counter() - started) * 1000, cpu_ms)
    return result


def report(title: str, frames: list[Frame], decoders: dict[str, Decode]) -> None:
    counts = {level: sum(1 for n, t, _ in frames if t and level_of(n) == level) for level in LEVELS}
    blanks = sum(1 for _, t, _ in frames if not t)
    print(f"\n## {title}: {len(frames)} frames ({counts} with a barcode, {blanks} without)")
    scores = {name: score(frames, decode) for name, decode in decoders.items()}
    labels = ["read L0", "read L1", "read L2", "read all", "misreads", "false reads"]
    labels += ["median ms", "p95 ms", "median CPU ms", "p95 CPU ms"]
    print(f"{'':14}" + "".join(f"{name:>22}" for name in scores))
    columns = [s.rows() for s in scores.values()]
    for index, label in enumerate(labels):
        print(f"{label:14}" + "".join(f"{column[index]:>22}" for column in columns))
    for name, s in scores.items():
        for problem in s.misreads + s.false_reads:
            print(f"  {name}: {problem}")
    print(f"  pipeline did not read: {' '.join(scores['pipeline'].missed) or '-'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--formats",
        type=parse_symbologies,
        default=parse_symbologies("code128"),
        help="symbologies our pipeline looks for (default code128: what the tickets carry)",
    )
    parser.add_argument("--synthetic", type=int, default=450, help="held-out frames (0: none)")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()

    pipeline = BarcodeDecoder(args.formats)
    decoders: dict[str, Decode] = {
        "pipeline": lambda image: [code.text for code in pipeline.decode(image).codes],
        "plain pyzbar": lambda image: [
            found.data.decode("latin-1") for found in pyzbar.decode(image)
        ],
        "plain zxing-cpp": lambda image: [code.text for code in zxingcpp.read_barcodes(image)],
    }
    print(
        "decode benchmark: one core (cv2.setNumThreads(1), OMP/OPENBLAS/MKL_NUM_THREADS=1); "
        f"pipeline formats: {','.join(args.formats)}; plain pyzbar = pyzbar.decode(gray), "
        "plain zxing-cpp = zxingcpp.read_barcodes(gray), default options; ms = decode only; "
        f"load average {_load()}"
    )
    if args.corpus.is_dir():
        report(f"corpus {args.corpus}", load_corpus(args.corpus), decoders)
    else:
        print(f"\n(corpus {args.corpus} not found: skipped)")
    if args.synthetic:
        frames = synthetic(args.synthetic, args.seed)
        report(f"synthetic held-out set, seed {args.seed}", frames, decoders)
    print(f"\nload average at the end: {_load()}")
    return 0


def _load() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
