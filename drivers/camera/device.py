"""Camera barcode scanners: one capture/decode loop, with OpenCV and virtual frame sources.

Two threads per camera, neither on the asyncio loop: the device base's connection thread
captures frames as fast as the source delivers, the decode thread decodes the newest frame
whenever it is free. Events reach the loop that called `start` through the device base.
"""

import abc
import threading
import time
from datetime import UTC, datetime
from typing import Protocol

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..device import Worker
from ..events import Event
from ..scanner import BarcodeScanner, Debouncer, ScannedCode
from .decode import (
    SYMBOLOGY_NAMES,
    TICKET_SYMBOLOGIES,
    BarcodeDecoder,
    DecodedCode,
    DecodeResult,
    Point,
    Symbology,
)
from .warm import warm_up

PREVIEW_WIDTH = 640


class CameraCode(ScannedCode):
    """A `ScannedCode` (symbology as a display name, e.g. "Code 128") plus where it was seen."""

    format: Symbology
    box: tuple[Point, Point, Point, Point]  # frame pixels
    decoders: tuple[str, ...]


class ConfirmRule(BaseModel):
    """When a code read from a stream is reported.

    `single_frame`: a code confirmed within one frame (see `decode._is_confirmed`) counts.
    Besides, a code read in `frames` different frames within `window` seconds counts, even if no
    single frame confirmed it (e.g. a Code 39 one decoder read twice in a row).
    """

    model_config = ConfigDict(frozen=True)

    single_frame: bool = True
    frames: int = Field(2, ge=2)
    window: float = Field(0.5, gt=0)


class CameraSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    # What the lab's tickets carry: each format costs CPU per frame.
    symbologies: tuple[Symbology, ...] = TICKET_SYMBOLOGIES
    confirm: ConfirmRule = ConfirmRule()
    debounce: float = Field(2.0, ge=0, description="seconds in which a repeated code is dropped")
    preview_interval: float = Field(0.2, gt=0, description="seconds between preview events")
    reconnect_interval: float = Field(1.0, gt=0)


class FrameSource(Protocol):
    def read(self) -> np.ndarray | None:
        """The next BGR frame, blocking until there is one; None when the source failed."""

    def close(self) -> None: ...


class StreamConfirmer:
    """Applies a `ConfirmRule` to the decode results of consecutive frames."""

    def __init__(self, rule: ConfirmRule) -> None:
        self.rule = rule
        self._seen: dict[tuple[Symbology, str], list[float]] = {}

    def feed(self, result: DecodeResult, now: float) -> list[DecodedCode]:
        confirmed = []
        for code in result.codes + result.candidates:
            key = (code.symbology, code.text)
            times = [t for t in self._seen.get(key, []) if now - t <= self.rule.window]
            times.append(now)
            self._seen[key] = times
            single = self.rule.single_frame and code in result.codes
            if single or len(times) >= self.rule.frames:
                confirmed.append(code)
        self._seen = {
            k: ts for k, ts in self._seen.items() if ts and now - ts[-1] <= self.rule.window
        }
        return confirmed


class CameraScanner(BarcodeScanner):
    """A `BarcodeScanner` that emits `CameraCode`s, and `preview(bytes)`: a JPEG of the latest
    frame with the codes boxed, at most every `preview_interval`.

    Subclasses only say where frames come from (`_open_source`); a source that fails is
    reopened every `reconnect_interval` seconds until `stop`.
    """

    def __init__(self, settings: CameraSettings, name: str) -> None:
        super().__init__(name, reconnect_interval=settings.reconnect_interval)
        self.settings = settings
        self.preview = Event[[bytes]]()
        self.decoder = BarcodeDecoder(settings.symbologies)
        self._source: FrameSource | None = None
        self._frame_ready = threading.Condition()
        self._frame: np.ndarray | None = None

    @abc.abstractmethod
    def _open_source(self) -> FrameSource:
        """Open the frame source; raise OSError when it is not available (yet)."""

    def _workers(self) -> list[Worker]:
        return [("capture", self._warm_then_capture), ("decode", self._decode)]

    def _warm_then_capture(self) -> None:
        # The decoder's kernels are compiled (after an install) or loaded from their cache
        # before the camera opens, so that the first ticket in view does not wait on them.
        warm_up()
        self._keep_connected()

    async def stop(self) -> None:
        self._stop.set()
        with self._frame_ready:  # the decoder waits for a frame, not for the stop flag
            self._frame_ready.notify_all()
        await super().stop()

    def _open(self) -> None:
        self._source = self._open_source()

    def _read_until_failure(self) -> str | None:
        """Keeps only the latest frame: a live camera's buffer would otherwise fill and every
        read would lag."""
        source = self._source
        assert source is not None
        while not self._stop.is_set():
            frame = source.read()
            if frame is None:
                return "no frame from the source"
            with self._frame_ready:
                self._frame = frame
                self._frame_ready.notify()
        return None

    def _close(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            source.close()

    def _decode(self) -> None:
        confirmer = StreamConfirmer(self.settings.confirm)
        debouncer = Debouncer(self.settings.debounce)
        last_preview = 0.0
        while True:
            with self._frame_ready:
                while self._frame is None and not self._stop.is_set():
                    self._frame_ready.wait(0.5)
                if self._stop.is_set():
                    return
                frame, self._frame = self._frame, None
            assert frame is not None
            result = self.decoder.decode(frame)
            now = time.monotonic()
            for code in confirmer.feed(result, now):
                if debouncer.accept(code.text, now):
                    self._dispatch(self.code_read.emit, self._camera_code(code))
            if now - last_preview >= self.settings.preview_interval:
                last_preview = now
                self._dispatch(self.preview.emit, draw_preview(frame, result))

    def _camera_code(self, code: DecodedCode) -> CameraCode:
        return CameraCode(
            text=code.text,
            symbology=SYMBOLOGY_NAMES[code.symbology],
            source=self.name,
            received_at=datetime.now(UTC),
            format=code.symbology,
            box=code.corners,
            decoders=code.decoders,
        )


def draw_preview(frame: np.ndarray, result: DecodeResult) -> bytes:
    """JPEG of `frame` scaled to PREVIEW_WIDTH: confirmed codes boxed green, candidates amber."""
    scale = PREVIEW_WIDTH / frame.shape[1]
    image = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for codes, colour in ((result.candidates, (0, 170, 255)), (result.codes, (0, 200, 0))):
        for code in codes:
            points = (np.array(code.corners) * scale).astype(np.int32)
            cv2.polylines(image, [points], True, colour, 2)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return jpeg.tobytes()


class Pacer:
    """Sleeps so that successive `wait` calls return at most `fps` times a second."""

    def __init__(self, fps: float | None) -> None:
        self.interval = 1.0 / fps if fps else 0.0
        self._next = time.monotonic()

    def wait(self) -> None:
        if self.interval:
            # Never more than one frame behind: a stall is not made up with a burst.
            self._next = max(self._next + self.interval, time.monotonic() - self.interval)
            time.sleep(max(0.0, self._next - time.monotonic()))


class VideoCaptureSource:
    """Frames from `cv2.VideoCapture`: a device index, a video file or a stream URL.

    With `fps` reads are paced to that rate (a file is otherwise read as fast as it decodes).
    """

    def __init__(self, source: int | str, fps: float | None = None) -> None:
        self.capture = cv2.VideoCapture(source)
        if not self.capture.isOpened():
            self.capture.release()
            raise OSError(f"cannot open video source {source!r}")
        self.pacer = Pacer(fps)

    def read(self) -> np.ndarray | None:
        self.pacer.wait()
        ok, frame = self.capture.read()
        return frame if ok else None

    def close(self) -> None:
        self.capture.release()


class OpenCVCamera(CameraScanner):
    """A USB/IP camera, or a video file (which replays after it ends, as a reconnect)."""

    def __init__(
        self,
        source: int | str,
        settings: CameraSettings | None = None,
        *,
        fps: float | None = None,
    ) -> None:
        super().__init__(settings or CameraSettings(), name=f"camera:{source}")
        self.source = source
        self.fps = fps

    def _open_source(self) -> FrameSource:
        return VideoCaptureSource(self.source, self.fps)
