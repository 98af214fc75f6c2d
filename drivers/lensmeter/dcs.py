"""Vision Council DCS inspection records from a lensmeter, framed (serial/TCP) or as a file.

    packet   = FS 1*(record CRLF) RS "CRC=" 1*5DIGIT [CRLF] GS
    crc      = CRC-16/XMODEM (poly 0x1021, init 0) over the bytes FS through RS inclusive,
               in decimal, zero-padded or not
    record   = label "=" value             label = [A-Z_][A-Z0-9_]*; a bare LF also ends one
    file     = blocks of records separated by blank lines, one reading per block (so a file
               holding a single block is one reading); what lies between packets is read
               the same way, so garbage there is rejected as a bad block

Readings come from INSSPH (required), INSCYL, INSAX, INSADD, INSPRPRVH and INSPRPRVV, each
chiral `right;left` with an empty side for an eye not measured, and JOB. The prism sign
convention (+ base out / up) is assumed, not checked against the standard's text. Other
labels (design values, vendor `_` labels) are allowed and ignored; a record we read given
twice, a line that is not `LABEL=value`, or a bad CRC rejects the packet or block.
A receiver answers each packet with ACK or NAK (`reply_dcs`); file blocks get no answer.
"""

import re

from ..dcs.records import LABEL as _LABEL
from .framing import BlockCollector, DelimitedFrameParser, split_lines
from .reading import EYES, FrameError, LensmeterReading, ParseResult, ReadingBuilder, number

FS, GS, RS = b"\x1c", b"\x1d", b"\x1e"
ACK, NAK = b"\x06", b"\x15"
FORMAT = "dcs"

_PACKET = re.compile(rb"\x1c(?P<records>[^\x1e]*\n)\x1eCRC=(?P<crc>\d{1,5})(?:\r\n)?\x1d")
CHIRAL = {
    "INSSPH": "sph",
    "INSCYL": "cyl",
    "INSAX": "axis",
    "INSADD": "add",
    "INSPRPRVH": "prism_h",
    "INSPRPRVV": "prism_v",
}


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


class DcsParser(DelimitedFrameParser):
    format_name = FORMAT
    START, END = FS[0], GS[0]
    max_frame = 16384

    def __init__(self) -> None:
        super().__init__()
        self._blocks = BlockCollector(self._accept, self._reject)

    def _outside(self, byte: int) -> None:
        self._blocks.push(byte)

    def _end_outside(self) -> None:
        self._blocks.flush()

    def _decode(self, frame: bytes) -> LensmeterReading:
        if not frame.startswith(FS):  # an unframed block
            return _reading(split_lines(frame), frame)
        match = _PACKET.fullmatch(frame)
        if match is None:
            raise FrameError("malformed packet: expected FS records RS CRC=n GS")
        expected = crc16_xmodem(frame[: match.end("records") + 1])
        if int(match["crc"]) != expected:
            raise FrameError(f"CRC {int(match['crc'])} != computed {expected}")
        return _reading(split_lines(match["records"].removesuffix(b"\n")), frame)


def reply_dcs(result: ParseResult) -> bytes:
    """ACK a good packet, NAK a bad one so the device sends it again; nothing otherwise."""
    if not result.raw.startswith(FS):
        return b""
    return ACK if isinstance(result, LensmeterReading) else NAK


def _reading(lines: list[str], raw: bytes) -> LensmeterReading:
    values: dict[str, str] = {}
    for line in lines:
        label, separator, value = line.partition("=")
        if not separator or not _LABEL.fullmatch(label):
            raise FrameError(f"not a LABEL=value record: {line!r}")
        if label in CHIRAL or label == "JOB":
            if label in values:
                raise FrameError(f"{label} given twice")
            values[label] = value
    if "INSSPH" not in values:
        raise FrameError("no INSSPH record")
    builder = ReadingBuilder(FORMAT)
    for label, field in CHIRAL.items():
        if label not in values:
            continue
        sides = values[label].split(";")
        if len(sides) != 2:
            raise FrameError(f"{label}: expected 'right;left', got {values[label]!r}")
        for eye, text in zip(EYES, sides, strict=True):
            if text:
                builder.set(eye, field, number(text, f"{eye}.{field} ({label})"))
    if job := values.get("JOB"):
        builder.set_extra("job", job)
    return builder.build(raw)


def encode_dcs(reading: LensmeterReading, *, framed: bool = True) -> bytes:
    """The INS records for `reading`: a packet with a 5-digit CRC, or a file block."""
    records = [f"JOB={reading.job}"] if reading.job else []
    for label, field in CHIRAL.items():
        values = [getattr(getattr(reading, eye), field, None) for eye in EYES]
        if any(value is not None for value in values):
            texts = ["" if v is None else str(v) if field == "axis" else f"{v:.2f}" for v in values]
            records.append(f"{label}={';'.join(texts)}")
    body = "".join(record + "\r\n" for record in records).encode("ascii")
    if not framed:
        return body + b"\r\n"
    packet = FS + body + RS
    return packet + f"CRC={crc16_xmodem(packet):05d}\r\n".encode() + GS
