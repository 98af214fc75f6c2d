"""`lenstrack simulate-floor`: simulated operators working real station cores, so a demo lab
looks alive.

Each simulated station is a `StationCore` (outbox, uplink, flow, exactly as on a station PC)
with its own data dir and token, fed by a `SimulatedSerialScanner` on a pty that a real
`SerialBarcodeScanner` reads: every scan travels the real driver path. Its operator signs in
with a badge, takes jobs queued at its stage, scans each to start it, waits the stage's
standard time divided by `speed`, and scans it again to complete it; now and then a hold and
release, rarely a breakage. Whatever the flow refuses (another station moved the job) is
skipped. Offline, the operator keeps working from the last job list and the cached cards.

A QC station's core has its QC desk and a simulated lensmeter on a pty (read by the real
serial driver) that measures each started job, `qc_fail_chance` of them out of tolerance.
The desk judges the reading with Z80.1 as at a staffed QC station; the operator then passes
the job (complete, with the inspection) or fails it (rework, with a defect per failed eye).
"""

import asyncio
import contextlib
import logging
import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from core.optics import Eye
from drivers.scanner import SimulatedSerialScanner
from station.core import StationCore
from station.flow import Screen, Verdict
from station.qc import Inspection
from station.settings import (
    QC_STAGE,
    SerialInput,
    SimulatedLensmeterInput,
    StationSettings,
    UplinkSettings,
)
from station.uplink import Offline
from station.wire import Action, DefectIn

log = logging.getLogger(__name__)

SCAN_ANSWER_TIMEOUT = 5.0  # seconds for a scan to come through the pty and the flow
MAX_WORK_SECONDS = 120.0  # a coating run at a slow speed still finishes within a demo
PRINT_SECONDS = 1.0  # the QC inspector presses the lensmeter's Print this long after a start
MEASURE_TIMEOUT = 10.0  # seconds for a reading to come through the pty to the QC desk


class SimulatedStationConfig(BaseModel):
    name: str = Field(min_length=1)
    stage: str = Field(min_length=1)
    standard_minutes: float = Field(10.0, gt=0, description="typical time at this stage")
    batch: int = Field(1, ge=1, le=20, description="jobs worked at once (a coating chamber)")


class FloorSettings(BaseModel):
    server_url: str = Field("http://127.0.0.1:8080", pattern=r"^https?://")
    tokens_dir: Path = Field(Path("var/demo/tokens"), description="holds NAME.token per station")
    data_dir: Path = Field(Path("var/demo/floor"), description="one outbox per station below")
    badges: list[str] = Field(default_factory=lambda: ["B1001", "B1002"], min_length=1)
    speed: float = Field(60.0, gt=0, le=3600, description="standard minutes per real minute")
    min_work_seconds: float = Field(3.0, ge=2.5, description="above the flow's repeat window")
    pause_seconds: float = Field(1.0, ge=0.2, description="between jobs: bounds the event rate")
    idle_seconds: float = Field(5.0, gt=0, description="look again after this when none queued")
    hold_chance: float = Field(0.05, ge=0, le=1)
    breakage_chance: float = Field(0.01, ge=0, le=1)
    qc_fail_chance: float = Field(
        0.15, ge=0, le=1, description="share of jobs a QC station measures out of tolerance"
    )
    qc_defect: str = Field("D-POWER", description="what QC books for an eye out of tolerance")
    only_jobs: set[str] = Field(default_factory=set, description="work only these (tests)")
    seed: int | None = None
    stations: list[SimulatedStationConfig] = Field(min_length=1)

    @classmethod
    def load(cls, path: Path, **overrides: object) -> "FloorSettings":
        data = tomllib.loads(path.read_text())
        data.update({key: value for key, value in overrides.items() if value is not None})
        return cls.model_validate(data)


@dataclass
class Tally:
    started: int = 0
    completed: int = 0
    holds: int = 0
    breakages: int = 0
    failed: int = 0  # at QC: sent to rework
    skipped: int = 0


@dataclass
class SimulatedStation:
    """One station core, its pty scanner and the operator working it."""

    config: SimulatedStationConfig
    floor: FloorSettings
    rng: random.Random
    scanner: SimulatedSerialScanner = field(init=False)
    core: StationCore = field(init=False)
    tally: Tally = field(default_factory=Tally)

    def __post_init__(self) -> None:
        self.scanner = SimulatedSerialScanner(seed=self.rng.randrange(2**32))
        settings = StationSettings(
            name=self.config.name,
            stage=self.config.stage,
            server_url=self.floor.server_url,
            token_file=self.floor.tokens_dir / f"{self.config.name}.token",
            data_dir=self.floor.data_dir / self.config.name,
            idle_sign_out_minutes=24 * 60,
            scanners=[SerialInput(kind="serial", port=self.scanner.port, debounce=0.5)],
            uplink=UplinkSettings(prefetch_minutes=0.5, backoff_cap_seconds=5.0),
            lensmeter=self._lensmeter() if self.config.stage == QC_STAGE else None,
        )
        self.core = StationCore(settings)
        self._answered = asyncio.Event()
        self.core.flow.changed.register(lambda _: self._answered.set())
        self._known: list[str] = []  # the last job list seen online, worked from offline

    @property
    def name(self) -> str:
        return self.config.name

    def _lensmeter(self) -> SimulatedLensmeterInput:
        return SimulatedLensmeterInput(
            kind="simulated_lensmeter",
            auto_measure_seconds=PRINT_SECONDS,
            out_of_tolerance_chance=self.floor.qc_fail_chance,
            seed=self.rng.randrange(2**32),
        )

    async def scan(self, code: str) -> Screen:
        """Send a code down the pty and wait for the flow to show its answer."""
        self._answered.clear()
        await self.scanner.scan(code)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), SCAN_ANSWER_TIMEOUT)
        return self.core.flow.screen

    async def run(self) -> None:
        await self._until_ready()
        badge = self.rng.choice(self.floor.badges)
        while (await self.scan(badge)).operator is None:
            await asyncio.sleep(self.floor.idle_seconds)  # badge unknown to the cache yet
        log.info("%s: %s signed in", self.name, badge)
        while True:
            jobs = await self._pick()
            started = [job for job in jobs if await self._start(job)]
            if started:
                await self._work()
                for job in started:
                    await self._complete(job)
                await asyncio.sleep(self.floor.pause_seconds)
            else:
                await asyncio.sleep(self.floor.idle_seconds if not jobs else 1.0)

    async def _until_ready(self) -> None:
        """The scanner port is open and the operator list has been fetched once."""
        while not (
            all(status.connected for status in self.core.device_status.values())
            and self.core.uplink.operators()
        ):
            await asyncio.sleep(0.2)

    async def _pick(self) -> list[str]:
        try:
            queued = await self.core.uplink.jobs_here(status="queued", limit=100)
            self._known = [job.job_number for job in queued]
        except Offline:
            pass  # keep working from the last list; the flow decides from the cached cards
        candidates = [
            j for j in self._known if not self.floor.only_jobs or j in self.floor.only_jobs
        ]
        picked = self.rng.sample(candidates, min(self.config.batch, len(candidates)))
        self._known = [job for job in self._known if job not in picked]
        return picked

    async def _start(self, job: str) -> bool:
        screen = await self.scan(job)
        # Recorded as a start exactly when the next scan of the job would complete it, or at
        # an inspection stage, when the job is now being inspected.
        started = screen.verdict in (Verdict.complete, Verdict.inspect)
        if not (screen.tone == "ok" and screen.scanned == job and started):
            self.tally.skipped += 1
            log.info("%s: skipped %s: %s", self.name, job, screen.message)
            return False
        self.tally.started += 1
        log.info("%s: started %s", self.name, job)
        if self.rng.random() < self.floor.breakage_chance:
            return not await self._reason(job, "breakage")
        if self.rng.random() < self.floor.hold_chance and await self._reason(job, "hold"):
            await asyncio.sleep(self.floor.min_work_seconds)
            self.core.flow.record(Action.release)  # as the Release button does
            log.info("%s: released %s", self.name, job)
        return True

    async def _reason(self, job: str, kind: str) -> bool:
        """Scans a reason code of `kind` for the job on screen; True if it was recorded."""
        reasons = [reason for reason in self.core.uplink.reasons() if reason.kind == kind]
        if not reasons:
            return False
        reason = self.rng.choice(reasons)
        screen = await self.scan(reason.code)
        if screen.tone != "ok":
            return False
        if kind == "hold":
            self.tally.holds += 1
        else:
            self.tally.breakages += 1
        log.info("%s: %s %s (%s)", self.name, kind, job, reason.code)
        return True

    async def _work(self) -> None:
        seconds = self.config.standard_minutes * 60 / self.floor.speed
        seconds *= self.rng.uniform(0.7, 1.3)
        await asyncio.sleep(min(MAX_WORK_SECONDS, max(self.floor.min_work_seconds, seconds)))

    async def _complete(self, job: str) -> None:
        if self.core.qc is not None:
            return await self._judge(job)
        screen = await self.scan(job)
        if screen.carriers:  # shipping: the carrier's label is scanned, then SHIP
            tracking = f"SIM{self.rng.randrange(10**9, 10**10)}"
            await self.scan(tracking)
            box = f"BOX-{self.rng.randint(1, 20)}"
            screen = self.core.flow.ship(self.rng.choice(screen.carriers), tracking, box)
        if screen.tone == "ok" and screen.scanned == job and screen.message.startswith("Completed"):
            self.tally.completed += 1
            log.info("%s: completed %s", self.name, job)
        else:
            self.tally.skipped += 1
            log.info("%s: could not complete %s: %s", self.name, job, screen.message)

    async def _judge(self, job: str) -> None:
        """The QC desk has judged the lensmeter's reading of the job: PASS, or FAIL with a
        defect for each eye out of tolerance (the pair when none is), as the buttons do."""
        desk = self.core.qc
        assert desk is not None
        inspection = await self._measured(job)
        if inspection is None:
            self.tally.skipped += 1
            log.info("%s: no reading for %s", self.name, job)
            return
        passed, failed = inspection.passes(), inspection.failed_eyes()
        if passed:
            screen = desk.pass_job()
        else:
            eyes: list[Eye | None] = [*failed] or [None]
            defects = [DefectIn(eye=eye, code=self.floor.qc_defect) for eye in eyes]
            screen = desk.fail_job(defects, self.core.uplink.reasons())
        if screen.tone != "ok":
            self.tally.skipped += 1
            log.info("%s: could not judge %s: %s", self.name, job, screen.message)
        elif not passed:
            self.tally.failed += 1
            log.info("%s: failed %s (out of tolerance: %s)", self.name, job, " and ".join(failed))
        else:
            self.tally.completed += 1
            log.info("%s: passed %s", self.name, job)

    async def _measured(self, job: str) -> Inspection | None:
        """The job's inspection once the lensmeter has filled it; None if it never does."""
        desk = self.core.qc
        assert desk is not None
        deadline = asyncio.get_running_loop().time() + MEASURE_TIMEOUT
        while asyncio.get_running_loop().time() < deadline:
            inspection = desk.inspection
            if inspection and inspection.job_number == job and not inspection.missing():
                return inspection
            await asyncio.sleep(0.1)
        return None


class FloorSimulator:
    def __init__(self, floor: FloorSettings) -> None:
        rng = random.Random(floor.seed)
        self.floor = floor
        self.stations = [
            SimulatedStation(config, floor, random.Random(rng.randrange(2**32)))
            for config in floor.stations
        ]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for station in self.stations:
            await station.core.start()
        self._tasks = [
            asyncio.create_task(station.run(), name=f"operator {station.name}")
            for station in self.stations
        ]
        for task in self._tasks:
            task.add_done_callback(_log_crash)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for station in self.stations:
            await station.core.stop()
            station.scanner.close()

    async def run(self, duration: float | None = None) -> None:
        await self.start()
        try:
            if duration is None:
                await asyncio.Event().wait()  # until cancelled (Ctrl-C)
            await asyncio.sleep(duration)
        finally:
            await self.stop()


def _log_crash(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s crashed", task.get_name(), exc_info=task.exception())
