"""Tomey CF-2000 text output (RS-232, 9600 8O1).

Only the line tags are known (LR/LL, AR/AL, PR/PL); the field layout below is our definition,
strict so that anything else is rejected with a reason.

    record = line *line blank-line        a blank line ends the record
    line   = tag 1*SP field *(1*SP field) [CR] LF
      "LR" / "LL"  sphere cylinder axis   signed powers [+-]d.dd or [+-]dd.dd, axis 1–3 digits
      "AR" / "AL"  add                    signed power
      "PR" / "PL"  horizontal vertical    signed prism dioptres: + base out / up, - in / down
Each tag at most once per record, at least one of LR/LL. An unknown or malformed line, or
line noise anywhere in it, rejects the whole record.
"""

import re

from .framing import BlockCollector, FrameParser, split_lines
from .reading import FrameError, LensmeterReading, ReadingBuilder, eye_records, number

FORMAT = "tomey"

_POWER = r"[+-]\d{1,2}\.\d\d"
_LINES = {
    "L": re.compile(rf"L(?P<eye>[RL]) +(?P<sph>{_POWER}) +(?P<cyl>{_POWER}) +(?P<axis>\d{{1,3}})"),
    "A": re.compile(rf"A(?P<eye>[RL]) +(?P<add>{_POWER})"),
    "P": re.compile(rf"P(?P<eye>[RL]) +(?P<prism_h>{_POWER}) +(?P<prism_v>{_POWER})"),
}


class TomeyParser(FrameParser):
    format_name = FORMAT

    def __init__(self) -> None:
        super().__init__()
        self._blocks = BlockCollector(self._accept, self._reject, max_block=1024)

    def _feed_byte(self, byte: int) -> None:
        self._blocks.push(byte)

    def _flush(self) -> None:
        if pending := self._blocks.take_pending():
            self._reject("truncated: input ended before the blank line", pending)

    def _decode(self, frame: bytes) -> LensmeterReading:
        builder = ReadingBuilder(FORMAT)
        for line in split_lines(frame):
            pattern = _LINES.get(line[:1])
            match = pattern.fullmatch(line) if pattern else None
            if match is None:
                raise FrameError(f"malformed line {line!r}")
            eye = match["eye"]
            for field, text in match.groupdict().items():
                if field != "eye":
                    value = int(text) if field == "axis" else number(text, f"{eye}.{field}")
                    builder.set(eye, field, value)
        return builder.build(frame)


_LINES_OUT = {
    "power": "L{eye} {0:+.2f} {1:+.2f} {2:d}",
    "add": "A{eye} {0:+.2f}",
    "prism": "P{eye} {0:+.2f} {1:+.2f}",
}


def encode_tomey(reading: LensmeterReading) -> bytes:
    """The record a CF-2000 would send for `reading`, by the grammar above (it has no PD)."""
    lines = [
        _LINES_OUT[kind].format(*values, eye=eye) for kind, eye, values in eye_records(reading)
    ]
    return "".join(line + "\r\n" for line in lines).encode("ascii") + b"\r\n"
