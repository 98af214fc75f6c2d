"""A headless station for the reliability suite: the real outbox and uplink, no screen.

    python -m tests.reliability.poster SPEC.json

Runs a `StationCore` with no inputs (so the uplink is supervised exactly as on a station PC)
and records events at a steady rate straight into its real `Outbox` (after its operator's
sign-in, which the server needs before it accepts the operator's events), for jobs along their
routes: at edging a start then a complete; at fitting a start then, mostly, a rework back to
edging (so jobs keep circulating) or a complete. Scans that another station made moot are
rejected by the server, which is what exercises the rejection fates.

Every attempt is written to a JSON-lines log before and after `Outbox.record`, so the checker
can account for each scan: `{"n", "job", "action", "note"}` (tried), `{"n", "ok": UUID}`
(committed), `{"n", "refused": why}` (record raised: the scan was refused). An attempt with no
answer was cut off by a SIGKILL; its unique note tells whether it reached the outbox. The
process resumes numbering from its log, so it can be killed and restarted on the same outbox.
It stops recording when the stop file appears (or after `max_attempts`), writes `{"done"}`,
and keeps sending until SIGTERM.
"""

import asyncio
import json
import random
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, Field

BADGE = "B1001"  # a demo technician, signed in at the poster's station before its events


class PosterSpec(BaseModel):
    name: str
    stage: str
    server_url: str
    token: str
    data_dir: Path  # the outbox lives here (on a tiny tmpfs in the disk-full scenario)
    log: Path
    stop_file: Path
    jobs: list[str] = Field(min_length=1)
    rate: float = Field(gt=0, le=200, description="attempts per second")
    max_attempts: int = Field(ge=1)
    seed: int = 0


def schedule(spec: PosterSpec, n: int) -> tuple[str, str, str | None]:
    """Attempt n's job, action and to_stage: a pure function of (spec, n), so a restarted
    poster carries on the same plan."""
    visit, step = divmod(n, 2)
    order = list(spec.jobs)
    random.Random(f"{spec.seed}:{spec.name}:{visit // len(order)}").shuffle(order)
    job = order[visit % len(order)]
    if step == 0:
        return job, "start", None
    if spec.stage == "fitting" and random.Random(f"{spec.seed}:{spec.name}:{n}").random() < 0.8:
        return job, "rework", "edging"
    return job, "complete", None


def note(spec: PosterSpec, n: int) -> str:
    """Unique per attempt: finds a scan in the outbox and on the server without its UUID."""
    return f"rt:{spec.name}:{n}"


def read_log(path: Path) -> list[dict[str, Any]]:
    """The log's records; a line cut off by a SIGKILL is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _open_log(path: Path) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.open("a", buffering=1)  # line-buffered: each record reaches the OS at once
    if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        log.write("\n")  # end the line a SIGKILL cut off, so the next record stands alone
    return log


def _write(log: TextIO, **record: object) -> None:
    log.write(json.dumps(record) + "\n")


async def run(spec: PosterSpec) -> None:
    # Imported here so that the harness can import PosterSpec without the station stack.
    from station.core import StationCore
    from station.settings import StationSettings, UplinkSettings
    from station.wire import Action, SignAction

    settings = StationSettings(
        name=spec.name,
        stage=spec.stage,
        server_url=spec.server_url,
        token=spec.token,
        data_dir=spec.data_dir,
        scanners=[],
        uplink=UplinkSettings(
            batch_size=50,  # several batches per backlog: kills and cuts land between them
            backoff_base_seconds=0.1,
            backoff_cap_seconds=1.0,
            idle_poll_seconds=1.0,
            prefetch_limit=0,  # cards are for the screen; the poster has none
        ),  # the request timeout stays the station's own: the server's deadline is set below it
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    log = _open_log(spec.log)
    done = [r["n"] for r in read_log(spec.log) if "n" in r]
    n = max(done, default=-1) + 1
    _write(log, started=n)
    core = StationCore(settings)
    await core.start()
    signed_in = False  # by each run: a restarted station PC signs its operator in again
    try:
        interval = 1 / spec.rate
        next_at = loop.time()
        while n < spec.max_attempts and not spec.stop_file.exists() and not stop.is_set():
            job, action, to_stage = schedule(spec, n)
            _write(log, n=n, job=job, action=action, note=note(spec, n))
            try:
                if not signed_in:  # as a badge scan does: a scan counts only after it
                    core.outbox.record_sign(SignAction.sign_in, BADGE)
                    signed_in = True
                event = core.outbox.record(
                    job,
                    Action(action),
                    operator_badge=BADGE,
                    to_stage=to_stage,
                    note=note(spec, n),
                )
            except Exception as error:  # any failure to commit is a refused scan
                _write(log, n=n, refused=f"{type(error).__name__}: {error}")
            else:
                _write(log, n=n, ok=str(event.event_uuid))
                core.uplink.wake()
            n += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        _write(log, done=n)
        await stop.wait()  # the uplink keeps draining the outbox meanwhile
    finally:
        await core.stop()
        log.close()


def main() -> None:
    spec = PosterSpec.model_validate_json(Path(sys.argv[1]).read_text())
    asyncio.run(run(spec))


if __name__ == "__main__":
    main()
