"""The lensmeter formats by name: how to parse them and how a device would encode a reading."""

from collections.abc import Callable
from typing import Literal, NamedTuple

from .dcs import DcsParser, encode_dcs, reply_dcs
from .framing import FrameParser
from .nidek import NidekParser, encode_nidek
from .reading import LensmeterReading, ParseResult
from .tomey import TomeyParser, encode_tomey

LensmeterFormat = Literal["nidek", "tomey", "dcs"]


class Codec(NamedTuple):
    parser: Callable[[], FrameParser]
    encode: Callable[[LensmeterReading], bytes]
    resync: bytes  # what a sender must add after line noise for the parser to find its feet
    reply: Callable[[ParseResult], bytes]  # the receiver's answer to a frame, if any


def no_reply(_result: ParseResult) -> bytes:
    return b""


CODECS: dict[LensmeterFormat, Codec] = {
    "nidek": Codec(NidekParser, encode_nidek, b"", no_reply),  # the next SOH resynchronises
    "tomey": Codec(TomeyParser, encode_tomey, b"\r\n\r\n", no_reply),
    "dcs": Codec(DcsParser, encode_dcs, b"", reply_dcs),  # the next FS resynchronises
}
