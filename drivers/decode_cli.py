"""`lenstrack decode`: read the barcodes in still images, one JSON line per image."""

import argparse
from pathlib import Path

import cv2

from .camera import ALL_SYMBOLOGIES, BarcodeDecoder, Symbology
from .cli import EXIT_INPUT_ERRORS, EXIT_OK, print_json

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


def parse_symbologies(value: str) -> list[Symbology]:
    """`code128,qr` -> [Symbology.CODE128, Symbology.QR], for argparse `type=`."""
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    if not names or any(name not in ALL_SYMBOLOGIES for name in names):
        choices = ",".join(ALL_SYMBOLOGIES)
        raise argparse.ArgumentTypeError(f"bad format list {value!r}; choose from {choices}")
    return [Symbology(name) for name in names]


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "decode",
        help="decode barcodes in still images to JSON lines",
        description='Print one JSON line per image: {"path", "codes": [{"text", "format"}], '
        '"ms"}, where ms is the decode time of that image in milliseconds, excluding reading '
        'and decompressing the file. An unreadable file gives {"path", "error"} and the '
        "others continue. Only confirmed codes are printed: a code that fails its check, or a "
        "1D code no second decode agrees with, is left out rather than risk a misread.",
        epilog="exit status: 0 all images read (with or without codes); 1 any error line",
    )
    parser.add_argument(
        "--formats",
        type=parse_symbologies,
        default=list(ALL_SYMBOLOGIES),
        metavar="LIST",
        help=f"comma-separated symbologies to look for (default: {','.join(ALL_SYMBOLOGIES)})",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="image file, or directory of .jpg/.png images"
    )
    parser.set_defaults(handler=_decode)


def expand_paths(paths: list[str]) -> list[Path]:
    """Files as given; a directory becomes its images, sorted by name."""
    expanded: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            expanded += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            expanded.append(path)
    return expanded


def _decode(args: argparse.Namespace) -> int:
    decoder = BarcodeDecoder(args.formats, all_codes=True)  # an image may hold several codes
    errors = 0
    for path in expand_paths(args.paths):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
        if image is None:
            errors += 1
            reason = "not an image file" if path.is_file() else "no such file"
            print_json({"path": str(path), "error": f"cannot read {path}: {reason}"})
            continue
        result = decoder.decode(image)
        codes = [{"text": c.text, "format": c.symbology.value} for c in result.codes]
        print_json({"path": str(path), "codes": codes, "ms": round(result.ms, 1)})
    return EXIT_INPUT_ERRORS if errors else EXIT_OK
