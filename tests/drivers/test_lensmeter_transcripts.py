"""Recorded transcripts through the parsers and `lenstrack parse-lensmeter`."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lenstrack.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "lensmeter"
PAIR = {
    "R": {"sph": -2.25, "cyl": -0.75, "axis": 180, "add": 2.0},
    "L": {"sph": -2.0, "cyl": -1.0, "axis": 5, "add": 2.0},
}
RIGHT = {"R": {"sph": 1.5, "cyl": 0.0, "axis": 0, "prism_h": -1.0, "prism_v": 0.5}, "L": None}
ERROR = "error"  # stands for any {"error": ...} line

CASES: list[tuple[str, str, list[Any], int]] = [
    ("nidek", "nidek_good.bin", [PAIR | {"pd": 63.5}, RIGHT], 0),
    ("nidek", "nidek_bad_checksum.bin", ["checksum 147A != computed"], 1),
    ("nidek", "nidek_truncated.bin", ["truncated", RIGHT, "truncated"], 1),
    ("nidek", "nidek_garbage.bin", [ERROR, PAIR | {"pd": 63.5}, ERROR, RIGHT], 1),
    ("nidek", "nidek_axis_181.bin", ["R.axis: Input should be less than or equal to 180"], 1),
    ("nidek", "nidek_sphere_40.bin", ["R.sph: Input should be less than or equal to 30"], 1),
    ("tomey", "tomey_good.txt", [PAIR, RIGHT], 0),
    ("tomey", "tomey_garbage.txt", [PAIR, "non-printable", RIGHT], 1),
    ("tomey", "tomey_axis_181.txt", ["L.axis: Input should be less than or equal to 180"], 1),
    ("dcs", "dcs_framed.bin", [PAIR | {"job": "J104233"}, RIGHT | {"job": "J104234"}], 0),
    ("dcs", "dcs_unframed.dcs", [PAIR | {"job": "J104233"}, RIGHT], 0),
    ("dcs", "dcs_bad_crc.bin", ["CRC 64406 != computed"], 1),
    ("dcs", "dcs_sphere_40.bin", ["R.sph: Input should be less than or equal to 30 (got 40.0)"], 1),
    ("dcs", "dcs_unpadded_crc.bin", [RIGHT | {"job": "J100044"}], 0),
]


def matches(line: dict[str, Any], expected: Any) -> bool:
    if expected == ERROR:
        return set(line) == {"error"}
    if isinstance(expected, str):
        return expected in line.get("error", "")
    return line == expected


@pytest.mark.parametrize(("format", "name", "expected", "exit_code"), CASES)
def test_cli_on_transcripts(
    format: str, name: str, expected: list[Any], exit_code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["parse-lensmeter", "--format", format, str(FIXTURES / name)]) == exit_code
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(expected), lines
    for line, wanted in zip(lines, expected, strict=True):
        assert matches(line, wanted), (line, wanted)


def test_cli_empty_input_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert main(["parse-lensmeter", "--format", "nidek", str(empty)]) == 1
    assert json.loads(capsys.readouterr().out) == {"error": "no lensmeter reading in the input"}


def test_cli_unreadable_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse-lensmeter", "--format", "dcs", str(tmp_path / "missing")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "cannot read" in captured.err


def test_cli_bad_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["parse-lensmeter", "--format", "topcon", "-"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cli_reads_stdin_in_a_real_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lenstrack.cli", "parse-lensmeter", "--format", "tomey", "-"],
        input=(FIXTURES / "tomey_garbage.txt").read_bytes(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line == PAIR for line in lines] == [True, False, False]
    assert lines[2] == RIGHT
