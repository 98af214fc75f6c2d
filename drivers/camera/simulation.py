"""A virtual camera: generated ticket frames through the same capture/decode loop."""

import threading
from collections import deque
from collections.abc import Iterable

import numpy as np

from .device import CameraScanner, CameraSettings, FrameSource, Pacer
from .synth import FRAME_SIZE, Level, frame


class TicketPlayer:
    """Shows each queued ticket for `frames_per_ticket` frames, then `blank_frames` frames of an
    empty desk; an empty desk while the queue is empty. Paced to `fps`.

    A ticket is rendered once and shown unchanged, like one lying still under the camera.
    """

    def __init__(
        self,
        queue: "deque[str]",
        lock: threading.Lock,
        *,
        fps: float,
        frames_per_ticket: int,
        blank_frames: int,
        level: Level,
        rng: np.random.Generator,
    ) -> None:
        self.queue, self.lock = queue, lock
        self.pacer = Pacer(fps)
        self.frames_per_ticket, self.blank_frames = frames_per_ticket, blank_frames
        self.level, self.rng = level, rng
        width, height = FRAME_SIZE
        self.blank = np.full((height, width, 3), 120, np.uint8)
        self._pending: deque[np.ndarray] = deque()

    def read(self) -> np.ndarray:
        self.pacer.wait()
        if not self._pending:
            with self.lock:
                job = self.queue.popleft() if self.queue else None
            if job is not None:
                ticket = frame(job, self.level, self.rng)
                self._pending += [ticket] * self.frames_per_ticket
                self._pending += [self.blank] * self.blank_frames
        return self._pending.popleft() if self._pending else self.blank

    def close(self) -> None:
        """Nothing to release; tickets not yet shown stay queued for a reconnect."""


class VirtualCamera(CameraScanner):
    """Plays generated tickets for `show(job)` (and `jobs` given up front) at `fps`."""

    def __init__(
        self,
        jobs: Iterable[str] = (),
        settings: CameraSettings | None = None,
        *,
        fps: float = 15.0,
        frames_per_ticket: int = 8,
        blank_frames: int = 4,
        level: Level = Level.L1,
        seed: int | None = None,
    ) -> None:
        super().__init__(settings or CameraSettings(), name="virtual camera")
        self._queue = deque(jobs)
        self._lock = threading.Lock()
        self.fps = fps
        self.frames_per_ticket, self.blank_frames = frames_per_ticket, blank_frames
        self.level = level
        self._rng = np.random.default_rng(seed)

    def show(self, job: str) -> None:
        """Put a ticket with `job`'s barcode under the camera after those already queued."""
        with self._lock:
            self._queue.append(job)

    def _open_source(self) -> FrameSource:
        return TicketPlayer(
            self._queue,
            self._lock,
            fps=self.fps,
            frames_per_ticket=self.frames_per_ticket,
            blank_frames=self.blank_frames,
            level=self.level,
            rng=self._rng,
        )
