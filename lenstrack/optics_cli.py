"""`lenstrack check-lens`: judge measured lenses against the ordered Rx, one JSON line each.

Input lines: {"profile"?, "design", "ordered": {"R", "L", "pd"}, "measured": {…}}.
Output lines: {"pass", "checks": [...]} or {"error": "..."}; one per non-blank input line.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.optics import (
    DEFAULT_PROFILES_PATH,
    CheckRequest,
    ProfileError,
    ToleranceFile,
    check_pair,
    load_profiles,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-lens",
        help="check measured lenses against the ordered Rx (JSON lines on stdin)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--profiles",
        type=Path,
        default=DEFAULT_PROFILES_PATH,
        help=f"tolerance profile file (default: {DEFAULT_PROFILES_PATH})",
    )
    parser.set_defaults(handler=run_check_lens)


def run_check_lens(args: argparse.Namespace) -> int:
    """Exit 0 when every line was judged, 1 when any got an error line, 2 on a bad profile file."""
    try:
        tolerances = load_profiles(args.profiles)
    except (OSError, ValueError) as error:
        print(f"check-lens: cannot use {args.profiles}: {error}", file=sys.stderr)
        return 2
    status = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        output = judge_line(line, tolerances)
        status = 1 if "error" in output else status
        sys.stdout.write(json.dumps(output) + "\n")
        sys.stdout.flush()  # a station reading the pipe gets each verdict as it is made
    return status


def judge_line(line: str, tolerances: ToleranceFile) -> dict[str, Any]:
    try:
        request = CheckRequest.model_validate_json(line)
        profile = tolerances.profile(request.profile)
    except ValidationError as error:
        return {"error": _describe(error)}
    except ProfileError as error:
        return {"error": str(error)}
    return check_pair(request.ordered, request.measured, request.design, profile).as_json()


def _describe(error: ValidationError) -> str:
    """One line per problem, e.g. `ordered.R.axis: Input should be less than or equal to 180`."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'input'}: {problem['msg']}"
        for problem in error.errors()
    )
