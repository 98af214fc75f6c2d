"""The lensmeter formats by name: how to parse them and how a device would encode a reading."""

from collections.abc import Callable
from typing import Literal, NamedTuple

from .dcs import DcsParser, encode_dcs
from .framing import FrameParser
from .nidek import NidekParser, encode_nidek
from .reading import LensmeterReading
from .tomey import TomeyParser, encode_tomey

LensmeterFormat = Literal["nidek", "tomey", "dcs"]


class Codec(NamedTuple):
    parser: Callable[[], FrameParser]
    encode: Callable[[LensmeterReading], bytes]
    resync: bytes  # what a sender must add after line noise for the parser to find its feet


CODECS: dict[LensmeterFormat, Codec] = {
    "nidek": Codec(NidekParser, encode_nidek, b""),  # the next SOH resynchronises
    "tomey": Codec(TomeyParser, encode_tomey, b"\r\n\r\n"),
    "dcs": Codec(DcsParser, encode_dcs, b""),  # the next FS resynchronises
}
