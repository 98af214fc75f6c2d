"""Camera barcode scanning: the decode pipeline, camera devices and a virtual camera."""

from .decode import (
    ALL_SYMBOLOGIES,
    SYMBOLOGY_NAMES,
    TICKET_SYMBOLOGIES,
    BarcodeDecoder,
    DecodedCode,
    DecodeResult,
    Symbology,
)
from .device import (
    CameraCode,
    CameraScanner,
    CameraSettings,
    ConfirmRule,
    FrameSource,
    OpenCVCamera,
    StreamConfirmer,
    VideoCaptureSource,
)
from .simulation import VirtualCamera
from .synth import Level

__all__ = [
    "ALL_SYMBOLOGIES",
    "SYMBOLOGY_NAMES",
    "TICKET_SYMBOLOGIES",
    "BarcodeDecoder",
    "CameraCode",
    "CameraScanner",
    "CameraSettings",
    "ConfirmRule",
    "DecodeResult",
    "DecodedCode",
    "FrameSource",
    "Level",
    "OpenCVCamera",
    "StreamConfirmer",
    "Symbology",
    "VideoCaptureSource",
    "VirtualCamera",
]
