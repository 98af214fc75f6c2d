"""Camera scanners: the virtual camera and OpenCVCamera on a generated video file."""

import asyncio
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera import (
    CameraCode,
    CameraScanner,
    CameraSettings,
    ConfirmRule,
    DecodedCode,
    DecodeResult,
    Level,
    OpenCVCamera,
    StreamConfirmer,
    Symbology,
    VirtualCamera,
)
from drivers.camera.device import draw_preview
from drivers.camera.synth import frame
from drivers.camera.warm import warm_up

TIMEOUT = 20.0  # generous: decoding shares the CPU with the rest of the test run
SETTINGS = CameraSettings(symbologies=(Symbology.CODE128,), debounce=30.0)


@pytest.fixture(autouse=True, scope="module")
def _decoder_kernels_compiled() -> None:
    # A camera compiles the decoder's kernels before it opens (`warm_up`): after a change to
    # them that takes some 10 s of CPU, which on a loaded machine once outlasted TIMEOUT. The
    # waits below are for decoding, so the compile happens here first.
    warm_up()


class Recorder:
    def __init__(self, camera: CameraScanner) -> None:
        self.codes: list[CameraCode] = []
        self.previews: list[bytes] = []
        self.connections: list[str] = []
        camera.code_read.register(self.codes.append)
        camera.preview.register(self.previews.append)
        camera.connected.register(lambda: self.connections.append("connected"))
        camera.disconnected.register(lambda reason: self.connections.append(f"lost: {reason}"))

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                await asyncio.sleep(0.05)


async def test_virtual_camera_reports_each_ticket_once() -> None:
    jobs = ["J10000001", "20000002", "J30000003"]
    camera = VirtualCamera(jobs, SETTINGS, fps=25, frames_per_ticket=6, blank_frames=3, seed=5)
    recorder = Recorder(camera)
    camera.start()
    try:
        await recorder.until(lambda: len(recorder.codes) >= len(jobs))
        camera.show("J10000001")  # shown again within the debounce window: not reported again
        await asyncio.sleep(1.5)
    finally:
        await camera.stop()
    assert [code.text for code in recorder.codes] == jobs
    code = recorder.codes[0]
    assert (code.format, code.symbology, code.source) == (
        Symbology.CODE128,
        "Code 128",
        "virtual camera",
    )
    assert len(code.box) == 4 and code.decoders
    assert recorder.connections[0] == "connected"
    assert recorder.previews and all(p.startswith(b"\xff\xd8") for p in recorder.previews)


def write_video(path: Path, job: str) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25, (1280, 720))
    assert writer.isOpened()
    rng = np.random.default_rng(9)
    desk = np.full((720, 1280, 3), 120, np.uint8)
    ticket = frame(job, Level.L1, rng)
    for image in [desk] * 5 + [ticket] * 10 + [desk] * 5:
        writer.write(image)
    writer.release()


async def test_opencv_camera_reads_a_video_file_and_reopens_it(tmp_path: Path) -> None:
    video = tmp_path / "station.avi"
    write_video(video, "J42424242")
    camera = OpenCVCamera(str(video), SETTINGS, fps=50)
    recorder = Recorder(camera)
    camera.start()
    try:
        # The end of the file is a lost source, reopened like an unplugged camera.
        await recorder.until(lambda: recorder.connections.count("connected") >= 2)
    finally:
        await camera.stop()
    assert [code.text for code in recorder.codes] == ["J42424242"]  # debounced on replay
    assert recorder.connections[:2] == ["connected", "lost: no frame from the source"]
    assert recorder.connections[-1] == "lost: stopped"


async def test_opencv_camera_without_source_waits_and_stops(tmp_path: Path) -> None:
    camera = OpenCVCamera(str(tmp_path / "absent.avi"), CameraSettings(reconnect_interval=0.1))
    recorder = Recorder(camera)
    camera.start()
    await asyncio.sleep(0.3)
    async with asyncio.timeout(5):
        await camera.stop()
    assert recorder.connections == [] and not camera.is_connected


def result(codes: list[DecodedCode], candidates: list[DecodedCode]) -> DecodeResult:
    return DecodeResult(codes=codes, candidates=candidates, ms=1.0)


def code(text: str, symbology: Symbology = Symbology.CODE39) -> DecodedCode:
    return DecodedCode(text=text, symbology=symbology, corners=((0, 0),) * 4, decoders=("t",))


def test_stream_confirmation_needs_two_frames_within_the_window() -> None:
    confirmer = StreamConfirmer(ConfirmRule(frames=2, window=0.5))
    assert confirmer.feed(result([], [code("123")]), now=0.0) == []
    assert confirmer.feed(result([], [code("123")]), now=0.7) == []  # too late: starts over
    assert confirmer.feed(result([], [code("123")]), now=1.0) == [code("123")]
    assert confirmer.feed(result([code("9")], []), now=2.0) == [code("9")]  # frame-confirmed


def test_stream_confirmation_can_require_two_frames_always() -> None:
    confirmer = StreamConfirmer(ConfirmRule(single_frame=False, frames=3, window=1.0))
    confirmed = code("J1", Symbology.CODE128)
    outcomes = [confirmer.feed(result([confirmed], []), now=t) for t in (0.0, 0.2, 0.4)]
    assert outcomes == [[], [], [confirmed]]


@pytest.mark.parametrize("frames", [0, 1])
def test_confirm_rule_rejects_single_frame_counts(frames: int) -> None:
    with pytest.raises(ValueError):
        ConfirmRule(frames=frames)


def test_the_preview_boxes_a_confirmed_code_green_and_a_candidate_amber() -> None:
    blank = np.full((720, 1280), 255, np.uint8)  # white: any colour in the preview is a box

    def code(corners: tuple[tuple[float, float], ...]) -> DecodedCode:
        return DecodedCode(
            text="J1", symbology=Symbology.CODE128, corners=corners, decoders=("zxing",)
        )

    confirmed = code(((100, 100), (500, 100), (500, 300), (100, 300)))
    candidate = code(((700, 400), (1100, 400), (1100, 600), (700, 600)))
    jpeg = draw_preview(blank, DecodeResult(codes=[confirmed], candidates=[candidate], ms=1.0))
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (360, 640)  # scaled to the preview width
    blue, green, red = (int(v) for v in image[50, 150])  # (100, 100)..(500, 100) edge, scaled
    assert green > 150 and red < 80 and blue < 80, "confirmed code not boxed green"
    blue, green, red = (int(v) for v in image[200, 450])  # the candidate's top edge
    assert red > 200 and 120 < green < 220 and blue < 80, "candidate not boxed amber"
    assert (image[120, 200] > 240).all(), "inside the box the frame is untouched"
