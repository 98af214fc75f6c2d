"""NIDEK lensmeter RS-232 output.

Not checked against a real device: this is the grammar as published in fragments, made strict
so that anything else is rejected with a reason (and a recorded transcript can extend it).

    frame    = SOH "DLM" STX segment *(ETB segment) [ETB] EOT [checksum] CR LF
    checksum = 4 hex digits: sum of all bytes SOH…EOT inclusive, low 16 bits
    segment  = printable ASCII, one of (sign = "+" / "-", each kind at most once):
      "IDNIDEK/" model            device and model
      "DA" yyyy.MM.dd.HH:mm       measurement time (checked, not reported)
      " " eye sign dd.dd sign dd.dd ddd
                                  eye = "R" / "L": sphere, cylinder, axis
      "A" [eye] sign dd.dd        add; without an eye it applies to each measured eye
      "N" [eye] sign dd.dd        near power (checked, not reported: it is sphere + add)
      "P" eye sign dd.dd sign dd.dd
                                  prism (our own definition): horizontal + out / - in,
                                  vertical + up / - down, in prism dioptres
      "PD" dd.d                   pupillary distance, mm
      "IE" / "DE" …               the device reports an error: the frame is rejected with it
A header other than DLM (another NIDEK instrument) and any unknown segment reject the frame.
CR and LF between frames are ignored; other bytes there are reported as garbage.
"""

import re
from datetime import datetime

from .framing import DelimitedFrameParser, GarbageCounter
from .reading import EYES, FrameError, LensmeterReading, ReadingBuilder, eye_records, number

SOH, STX, EOT, ETB = b"\x01", b"\x02", b"\x04", b"\x17"
FORMAT = "nidek"

_FRAME = re.compile(
    rb"\x01(?P<header>[^\x02]*)\x02(?P<body>[^\x04]*)\x04(?P<sum>[0-9A-Fa-f]{4})?\r\n"
)
_POWER = r"[+-]\d\d\.\d\d"
_SEGMENT = re.compile(
    rf"""(?P<tag>ID)NIDEK/[\x20-\x7e]+
    | (?P<tag_da>DA)(?P<date>\d{{4}}\.\d\d\.\d\d\.\d\d:\d\d)
    | (?P<tag_eye>\ (?P<eye>[RL]))(?P<sph>{_POWER})(?P<cyl>{_POWER})(?P<axis>\d{{3}})
    | (?P<tag_add>A(?P<add_eye>[RL]?))(?P<add>{_POWER})
    | (?P<tag_near>N[RL]?){_POWER}
    | (?P<tag_prism>P(?P<prism_eye>[RL]))(?P<prism_h>{_POWER})(?P<prism_v>{_POWER})
    | (?P<tag_pd>PD)(?P<pd>\d\d\.\d)
    | (?P<error>(?:IE|DE)[\x20-\x7e]*)""",
    re.VERBOSE,
)


class NidekParser(DelimitedFrameParser):
    format_name = FORMAT
    START, END = SOH[0], ord("\n")
    max_frame = 1024

    def __init__(self) -> None:
        super().__init__()
        self._garbage = GarbageCounter(self._reject)

    def _outside(self, byte: int) -> None:
        self._garbage.add(byte)

    def _end_outside(self) -> None:
        self._garbage.report()

    def _decode(self, frame: bytes) -> LensmeterReading:
        match = _FRAME.fullmatch(frame)
        if match is None:
            raise FrameError("malformed frame: expected SOH header STX segments EOT [sum] CR LF")
        if match["header"] != b"DLM":
            raise FrameError(f"not a lensmeter frame: header {match['header']!r}")
        if match["sum"] is not None:
            expected = sum(frame[: match.end("body") + 1]) & 0xFFFF
            if int(match["sum"], 16) != expected:
                raise FrameError(f"checksum {match['sum'].decode()} != computed {expected:04X}")
        segments = match["body"].split(ETB)
        if segments[-1] == b"":  # the ETB after the last segment is optional
            segments.pop()
        builder = ReadingBuilder(FORMAT)
        seen: set[str] = set()
        add_both: float | None = None
        for raw_segment in segments:
            if any(not 0x20 <= b <= 0x7E for b in raw_segment):
                raise FrameError(f"non-printable byte in segment {raw_segment!r}")
            segment = raw_segment.decode("ascii")
            parsed = _SEGMENT.fullmatch(segment)
            if parsed is None:
                raise FrameError(f"unknown segment {segment!r}")
            if parsed["error"]:
                raise FrameError(f"device reported error {parsed['error']!r}")
            tag = next(
                value for name, value in parsed.groupdict().items() if "tag" in name and value
            )
            if tag in seen:
                raise FrameError(f"segment {tag.strip()!r} given twice")
            seen.add(tag)
            if parsed["date"]:
                _check_date(parsed["date"])
            elif parsed["eye"]:
                eye = parsed["eye"]
                builder.set(eye, "sph", number(parsed["sph"], f"{eye}.sph"))
                builder.set(eye, "cyl", number(parsed["cyl"], f"{eye}.cyl"))
                builder.set(eye, "axis", int(parsed["axis"]))
            elif parsed["add"]:
                add = number(parsed["add"], "add")
                if parsed["add_eye"]:
                    builder.set(parsed["add_eye"], "add", add)
                else:
                    add_both = add
            elif parsed["prism_eye"]:
                eye = parsed["prism_eye"]
                builder.set(eye, "prism_h", number(parsed["prism_h"], f"{eye}.prism_h"))
                builder.set(eye, "prism_v", number(parsed["prism_v"], f"{eye}.prism_v"))
            elif parsed["pd"]:
                builder.set_extra("pd", number(parsed["pd"], "pd"))
        if add_both is not None:
            for eye in EYES:
                if "sph" in builder.eyes[eye]:
                    builder.set(eye, "add", add_both)
        return builder.build(frame)


def _check_date(text: str) -> None:
    try:
        datetime.strptime(text, "%Y.%m.%d.%H:%M")
    except ValueError:
        raise FrameError(f"bad date {text!r}") from None


_SEGMENTS = {
    "power": " {eye}{0:+06.2f}{1:+06.2f}{2:03d}",
    "add": "A{eye}{0:+06.2f}",
    "prism": "P{eye}{0:+06.2f}{1:+06.2f}",
}


def encode_nidek(
    reading: LensmeterReading,
    *,
    model: str = "LM-1800P",
    measured_at: datetime | None = None,
    checksum: bool = True,
) -> bytes:
    """The frame a NIDEK lensmeter would send for `reading`, by the grammar above."""
    segments = [f"IDNIDEK/{model}"]
    if measured_at is not None:
        segments.append(f"DA{measured_at:%Y.%m.%d.%H:%M}")
    segments += [
        _SEGMENTS[kind].format(*values, eye=eye) for kind, eye, values in eye_records(reading)
    ]
    if reading.pd is not None:
        segments.append(f"PD{reading.pd:04.1f}")
    body = SOH + b"DLM" + STX + b"".join(s.encode("ascii") + ETB for s in segments) + EOT
    trailer = f"{sum(body) & 0xFFFF:04X}".encode() if checksum else b""
    return body + trailer + b"\r\n"
