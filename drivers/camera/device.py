"""Camera barcode scanners: one capture/decode loop, with OpenCV and virtual frame sources.

Two threads per camera, neither on the asyncio loop: the capture thread reads frames as fast
as the source delivers and keeps only the latest (a live camera's buffer would otherwise fill
and every read would lag), the decode thread decodes the newest frame whenever it is free.
Events are handed to the loop that called `start` with `call_soon_threadsafe`.
"""

import abc
import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..events import Event
from ..scanner import Debouncer, ScannedCode
from .decode import (
    ALL_SYMBOLOGIES,
    SYMBOLOGY_NAMES,
    BarcodeDecoder,
    DecodedCode,
    DecodeResult,
    Point,
    Symbology,
)

log = logging.getLogger(__name__)

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

    symbologies: tuple[Symbology, ...] = ALL_SYMBOLOGIES
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


class CameraScanner(abc.ABC):
    """Emits `code_read(CameraCode)`, `preview(bytes)` (a JPEG of the latest frame with the
    codes boxed, at most every `preview_interval`), `connected()` and `disconnected(reason)`.

    Subclasses only say where frames come from (`_open`); a source that fails is reopened
    every `reconnect_interval` seconds until `stop`.
    """

    def __init__(self, settings: CameraSettings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.code_read = Event[[CameraCode]]()
        self.preview = Event[[bytes]]()
        self.connected = Event[[]]()
        self.disconnected = Event[[str]]()
        self.decoder = BarcodeDecoder(settings.symbologies)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._frame_ready = threading.Condition()
        self._frame: np.ndarray | None = None
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    @abc.abstractmethod
    def _open(self) -> FrameSource:
        """Open the frame source; raise OSError when it is not available (yet)."""

    def start(self) -> None:
        """Start capturing and decoding; call from the loop that should receive the events."""
        if self._threads:
            raise RuntimeError("camera already started")
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        self._threads = [
            threading.Thread(target=target, name=f"camera {self.name} {role}", daemon=True)
            for role, target in (("capture", self._capture), ("decode", self._decode))
        ]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        self._stop.set()
        with self._frame_ready:
            self._frame_ready.notify_all()
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        self._threads = []

    def _capture(self) -> None:
        while not self._stop.is_set():
            try:
                source = self._open()
            except OSError as error:
                log.debug("%s: cannot open: %s", self.name, error)
                self._stop.wait(self.settings.reconnect_interval)
                continue
            self._set_connected(True)
            reason = "stopped"
            try:
                while not self._stop.is_set():
                    frame = source.read()
                    if frame is None:
                        reason = "no frame from the source"
                        break
                    with self._frame_ready:
                        self._frame = frame
                        self._frame_ready.notify()
            finally:
                source.close()
            if not self._stop.is_set():
                log.warning("%s: disconnected: %s", self.name, reason)
            self._set_connected(False, reason)

    def _set_connected(self, connected: bool, reason: str = "") -> None:
        self._connected = connected
        if connected:
            log.info("%s: connected", self.name)
            self._dispatch(self.connected.emit)
        else:
            self._dispatch(self.disconnected.emit, reason)

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

    def _dispatch(self, emit: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(emit, *args)
        except RuntimeError:  # the loop closed under us: nobody is left to tell
            self._stop.set()


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

    def _open(self) -> FrameSource:
        return VideoCaptureSource(self.source, self.fps)
