"""`lenstrack parse-lensmeter`, and what every drivers subcommand (offline tools that need no
server or station; `decode` is in decode_cli.py) shares: one JSON object per output line, and
the exit codes 0 success, 1 the input had errors, 2 usage or I/O error.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, get_args

from .lensmeter import CODECS, LensmeterFormat, LensmeterReading

EXIT_OK, EXIT_INPUT_ERRORS, EXIT_USAGE = 0, 1, 2


class InputUnreadable(Exception):
    """The input could not be read; the message is shown to the user."""


def read_input(path: str) -> bytes:
    """The bytes of FILE, or of stdin for `-`."""
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        raise InputUnreadable(f"cannot read {path}: {error.strerror or error}") from None


def print_json(value: dict[str, Any]) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "parse-lensmeter",
        help="decode a lensmeter transcript to JSON lines",
        description="Decode lensmeter output (as received on the serial line) into one JSON "
        'line per reading, {"R": {...}, "L": {...}} plus "pd"/"job" when given, and an '
        '{"error": "..."} line for each rejected frame.',
        epilog="exit status: 0 at least one reading and no errors; 1 any error line (including "
        "no reading at all); 2 usage or I/O error",
    )
    parser.add_argument("--format", required=True, choices=get_args(LensmeterFormat))
    parser.add_argument("file", metavar="FILE", help="transcript file, or - for stdin")
    parser.set_defaults(handler=_parse_lensmeter)


def _parse_lensmeter(args: argparse.Namespace) -> int:
    try:
        data = read_input(args.file)
    except InputUnreadable as error:
        print(f"lenstrack parse-lensmeter: {error}", file=sys.stderr)
        return EXIT_USAGE
    parser = CODECS[args.format].parser()
    results = parser.feed(data) + parser.finish()
    readings = [result for result in results if isinstance(result, LensmeterReading)]
    for result in results:
        if isinstance(result, LensmeterReading):
            print_json(result.to_json_dict())
        else:
            print_json({"error": result.reason})
    if not results:
        print_json({"error": "no lensmeter reading in the input"})
    return EXIT_OK if readings and len(readings) == len(results) else EXIT_INPUT_ERRORS
