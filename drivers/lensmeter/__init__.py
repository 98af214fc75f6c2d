"""Lensmeters: one reading model, parsers and encoders per format, devices and a twin."""

from .dcs import DcsParser, crc16_xmodem, encode_dcs
from .device import Lensmeter, LensmeterConfig, SerialLensmeter
from .formats import CODECS, Codec, LensmeterFormat
from .framing import FrameParser
from .nidek import NidekParser, encode_nidek
from .reading import EyeReading, FrameError, FrameRejected, LensmeterReading, ParseResult
from .simulation import SimulatedLensmeter
from .tomey import TomeyParser, encode_tomey

__all__ = [
    "CODECS",
    "Codec",
    "DcsParser",
    "EyeReading",
    "FrameError",
    "FrameParser",
    "FrameRejected",
    "Lensmeter",
    "LensmeterConfig",
    "LensmeterFormat",
    "LensmeterReading",
    "NidekParser",
    "ParseResult",
    "SerialLensmeter",
    "SimulatedLensmeter",
    "TomeyParser",
    "crc16_xmodem",
    "encode_dcs",
    "encode_nidek",
    "encode_tomey",
]
