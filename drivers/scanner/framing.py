"""Sans-I/O framing of serial scanner output: bytes in, complete `ScannedCode`s out.

A message is `[prefix][AIM id]text[suffix]<terminator>`. Only a terminator completes a code, so
a read that timed out half-way never yields a partial code. Control characters and bytes
outside printable ASCII are line noise and dropped, except GS (0x1D), which GS1 codes use as
their field separator.
"""

import logging
import re
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)

GS = 0x1D
AIM_ID = re.compile(r"\]([A-Za-z])([0-9A-Za-z])")
# Identifiers whose modifier changes the meaning; the others are named by symbology letter.
AIM_EXACT = {"C1": "GS1-128", "E4": "EAN-8", "d2": "GS1 DataMatrix", "Q3": "GS1 QR Code"}
AIM_FAMILY = {
    "A": "Code 39",
    "C": "Code 128",
    "E": "EAN-13",
    "I": "Interleaved 2 of 5",
    "d": "DataMatrix",
    "e": "GS1 DataBar",
    "Q": "QR Code",
}


class Terminator(StrEnum):
    CR = "CR"
    LF = "LF"
    CRLF = "CRLF"
    TAB = "TAB"

    @property
    def bytes(self) -> bytes:
        return {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t"}[self.value]


class ScannedCode(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    symbology: str | None  # from the AIM identifier; None when the scanner sent none
    source: str  # the port it came from
    received_at: datetime


def symbology_name(identifier: str) -> str:
    """`C0` -> "Code 128"; an unknown identifier is kept verbatim as `AIM ]Xm`."""
    return AIM_EXACT.get(identifier) or AIM_FAMILY.get(identifier[0]) or f"AIM ]{identifier}"


class ScanFramer:
    """Feed raw bytes, get the codes completed by them. A message of more than `max_length`
    bytes is dropped whole, wherever the reads cut the stream."""

    def __init__(
        self,
        *,
        source: str,
        terminator: Terminator = Terminator.CR,
        prefix: str = "",
        suffix: str = "",
        max_length: int = 256,
    ) -> None:
        self.source = source
        self.terminator = terminator.bytes
        self.prefix = prefix
        self.suffix = suffix
        self.max_length = max_length
        self._buffer = bytearray()
        self._overflowed = False

    def feed(self, data: bytes) -> list[ScannedCode]:
        self._buffer += data
        codes: list[ScannedCode] = []
        while (end := self._buffer.find(self.terminator)) >= 0:
            message = bytes(self._buffer[:end])
            del self._buffer[: end + len(self.terminator)]
            if self._overflowed:  # the tail of an over-long message, already reported
                self._overflowed = False
                continue
            # Over-long whole within one read: dropped as it would be had it come byte by byte.
            if len(message) > self.max_length:
                self._discarded(message)
                continue
            if code := self._decode(message):
                codes.append(code)
        # Unterminated, the buffer may end with all but the last byte of a terminator: past
        # that, the message it holds is over-long whatever comes next.
        if len(self._buffer) > self.max_length + len(self.terminator) - 1:
            if not self._overflowed:
                self._discarded(bytes(self._buffer))
            self._overflowed = True
            # keep a possible half terminator, drop the rest until the next terminator
            del self._buffer[: len(self._buffer) - len(self.terminator) + 1]
        return codes

    def _discarded(self, message: bytes) -> None:
        log.warning(
            "%s: discarded %d bytes without a terminator within %d: %r…",
            self.source,
            len(message),
            self.max_length,
            message[:32],
        )

    def reset(self) -> None:
        """Forget a partial message, e.g. when the port was unplugged mid-code."""
        if self._buffer:
            log.warning("%s: dropped partial code %r", self.source, bytes(self._buffer))
        self._buffer.clear()
        self._overflowed = False

    def _decode(self, message: bytes) -> ScannedCode | None:
        text = bytes(b for b in message if 0x20 <= b <= 0x7E or b == GS).decode("ascii")
        if len(text) != len(message):
            log.debug("%s: dropped line noise from %r", self.source, message)
        text = text.removeprefix(self.prefix)
        symbology = None
        if match := AIM_ID.match(text):
            symbology = symbology_name(match.group(1) + match.group(2))
            text = text[match.end() :]
        text = text.removesuffix(self.suffix)
        if not text:
            log.debug("%s: ignored empty message %r", self.source, message)
            return None
        return ScannedCode(
            text=text, symbology=symbology, source=self.source, received_at=datetime.now(UTC)
        )
