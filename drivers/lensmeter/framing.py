"""Incremental, sans-I/O framing shared by the lensmeter formats.

Parsers take bytes as they arrive and return readings and rejections in stream order. They
work byte by byte so that any split of the input gives the same result as one feed. A frame is
decoded only once complete, and decoded whole: one bad field rejects the frame.
"""

import abc
import logging
from collections.abc import Callable
from typing import ClassVar

from .reading import FrameError, FrameRejected, LensmeterReading, ParseResult

log = logging.getLogger(__name__)

CR, LF = 0x0D, 0x0A


class FrameParser(abc.ABC):
    format_name: ClassVar[str]

    def __init__(self) -> None:
        self._results: list[ParseResult] = []

    def feed(self, data: bytes) -> list[ParseResult]:
        for byte in data:
            self._feed_byte(byte)
        return self._take()

    def finish(self) -> list[ParseResult]:
        """End of input (EOF or unplug): whatever is pending is decoded or rejected."""
        self._flush()
        return self._take()

    @abc.abstractmethod
    def _feed_byte(self, byte: int) -> None: ...

    @abc.abstractmethod
    def _flush(self) -> None: ...

    @abc.abstractmethod
    def _decode(self, frame: bytes) -> LensmeterReading:
        """Decode one complete frame; raise `FrameError` with the reason to reject it."""

    def _accept(self, frame: bytes) -> None:
        try:
            self._results.append(self._decode(frame))
        except FrameError as error:
            self._reject(str(error), frame)

    def _reject(self, reason: str, raw: bytes) -> None:
        log.warning("%s frame rejected: %s: %r", self.format_name, reason, raw[:200])
        self._results.append(FrameRejected(reason=reason, raw=raw, source_format=self.format_name))

    def _take(self) -> list[ParseResult]:
        results, self._results = self._results, []
        return results


class DelimitedFrameParser(FrameParser):
    """Frames that run from a START byte to an END byte; what lies between frames goes to
    `_outside`. A START inside a frame means the frame was cut short; a frame longer than
    `max_frame` is rejected and the rest of it skipped up to its END or the next START."""

    START: ClassVar[int]
    END: ClassVar[int]
    max_frame: ClassVar[int] = 4096

    def __init__(self) -> None:
        super().__init__()
        self._frame: bytearray | None = None
        self._skipping = False

    @abc.abstractmethod
    def _outside(self, byte: int) -> None:
        """A byte between frames."""

    @abc.abstractmethod
    def _end_outside(self) -> None:
        """A frame starts or input ends: settle what was collected between frames."""

    def _feed_byte(self, byte: int) -> None:
        if byte == self.START:
            if self._frame is not None:
                self._reject("truncated: a new frame started before its end", bytes(self._frame))
            else:
                self._end_outside()
            self._frame, self._skipping = bytearray([byte]), False
        elif self._frame is not None:
            self._frame.append(byte)
            if byte == self.END:
                frame, self._frame = bytes(self._frame), None
                self._accept(frame)
            elif len(self._frame) > self.max_frame:
                self._reject(f"no frame end within {self.max_frame} bytes", bytes(self._frame))
                self._frame, self._skipping = None, True
        elif self._skipping:
            self._skipping = byte != self.END
        else:
            self._outside(byte)

    def _flush(self) -> None:
        if self._frame is not None:
            self._reject("truncated: input ended inside a frame", bytes(self._frame))
            self._frame = None
        self._skipping = False
        self._end_outside()


class GarbageCounter:
    """Bytes between frames that should not be there, reported as one rejection per run;
    CR and LF are tolerated since some devices end a transmission with an extra line end."""

    def __init__(self, reject: Callable[[str, bytes], None]) -> None:
        self._reject = reject
        self._bytes = bytearray()

    def add(self, byte: int) -> None:
        if byte not in (CR, LF):
            self._bytes.append(byte)

    def report(self) -> None:
        if self._bytes:
            self._reject(f"{len(self._bytes)} bytes of garbage between frames", bytes(self._bytes))
            self._bytes.clear()


class BlockCollector:
    """Lines grouped into blocks that end at a blank line (LF or CR LF line ends); each block
    goes to `accept`. A block longer than `max_block` is rejected and skipped to its blank line."""

    def __init__(
        self,
        accept: Callable[[bytes], None],
        reject: Callable[[str, bytes], None],
        max_block: int = 4096,
    ) -> None:
        self._accept = accept
        self._reject = reject
        self.max_block = max_block
        self._block = bytearray()
        self._line_blank = True  # nothing but CR on the current line so far
        self._overflowed = False

    def push(self, byte: int) -> None:
        if byte == LF:
            if self._line_blank:
                self.flush()
            self._line_blank = True
        elif byte != CR:
            self._line_blank = False
        if self._overflowed:
            return
        self._block.append(byte)
        if len(self._block) > self.max_block:
            self._reject(f"no blank line within {self.max_block} bytes", bytes(self._block))
            self._overflowed = True
            self._block.clear()

    def flush(self) -> None:
        """End the current block: at a blank line, a frame start or the end of input."""
        if block := self.take_pending():
            self._accept(block)

    def take_pending(self) -> bytes:
        """Remove and return the unfinished block (empty if none or being skipped)."""
        block = b"" if self._overflowed else bytes(self._block).strip(b"\r\n")
        self._block.clear()
        self._overflowed = False
        return block


def split_lines(block: bytes) -> list[str]:
    """Printable-ASCII lines of a block; anything else means line noise and rejects it."""
    lines = [line.removesuffix(b"\r") for line in block.split(b"\n")]
    for line in lines:
        if any(not 0x20 <= b <= 0x7E for b in line):
            raise FrameError(f"non-printable bytes in line {line!r}")
    return [line.decode("ascii") for line in lines]
