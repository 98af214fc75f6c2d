"""Serial barcode scanners: framing, the device interface, a pyserial device and its twin."""

from .device import BarcodeScanner, Debouncer, ScannerConfig, SerialBarcodeScanner
from .framing import ScanFramer, ScannedCode, Terminator, symbology_name
from .simulation import SimulatedSerialScanner

__all__ = [
    "BarcodeScanner",
    "Debouncer",
    "ScanFramer",
    "ScannedCode",
    "ScannerConfig",
    "SerialBarcodeScanner",
    "SimulatedSerialScanner",
    "Terminator",
    "symbology_name",
]
