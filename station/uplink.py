"""Background link to the server: sends the outbox in order, keeps the card cache warm.

One task per station process. Every send is safe to repeat (the server answers a known
event UUID as a duplicate), so an event is marked sent only after the server's answer and
resent after any failure: nothing is lost and nothing is stored twice.
"""

import asyncio
import logging
import random
import sqlite3
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from core.labels import StationLabels
from drivers.events import Event
from station.outbox import CachedCard, Outbox, OutboxEvent
from station.settings import StationSettings
from station.wire import (
    BatchReply,
    EventResult,
    JobCard,
    JobPage,
    JobSummary,
    Operator,
    Reason,
    SequenceGap,
    StationMe,
    TimelineEntry,
)

log = logging.getLogger(__name__)

Connection = Literal["connecting", "online", "offline", "unauthorised"]
PROBE_TIMEOUT = 1.0  # seconds; a health probe is one cheap request
_operators = TypeAdapter(list[Operator])
_reasons = TypeAdapter(list[Reason])
_timeline = TypeAdapter(list[TimelineEntry])


class Offline(Exception):
    """The server could not be reached or failed (network, 5xx, timeout)."""


class Unreachable(Offline):
    """Nothing answered at the server's address (refused, no route): it is down, not busy, so
    a cheap probe may end the backoff as soon as it is back."""


class Unauthorised(Offline):
    """The station token is wrong or revoked (401/403): events wait until it is fixed."""


@dataclass(frozen=True)
class UplinkStatus:
    connection: Connection = "connecting"
    queued: int = 0
    rejected: int = 0
    detail: str = ""
    clock_offset_seconds: float = 0.0  # server clock minus ours, from the Date header
    sequence_gaps: list[SequenceGap] = field(default_factory=list)


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Capped exponential backoff with "equal jitter": in [d/2, d], d = min(cap, base·2^(n−1))."""
    delay = min(cap, base * 2 ** max(0, failures - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


class Uplink:
    def __init__(
        self,
        settings: StationSettings,
        outbox: Outbox,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.rng = rng or random.Random()
        self.status = UplinkStatus()
        self.changed = Event[[UplinkStatus]]()
        self.rejected = Event[[OutboxEvent, EventResult]]()
        self._client = httpx.AsyncClient(
            base_url=settings.server_url.rstrip("/"),
            headers={"Authorization": f"Bearer {settings.resolved_token()}"},
            timeout=settings.uplink.request_timeout_seconds,
            transport=transport,
        )
        self._wake = asyncio.Event()
        self._next_prefetch = 0.0
        self._publish()

    @property
    def online(self) -> bool:
        return self.status.connection == "online"

    async def close(self) -> None:
        await self._client.aclose()

    def wake(self) -> None:
        """A new event is in the outbox: send it now rather than at the next poll."""
        self._publish()
        self._wake.set()

    # -- the loop --

    async def run(self) -> None:
        """Sends and refreshes until cancelled. No error ends it (network, HTTP, this PC's
        database, a bug in one batch): each is logged and shown, then it backs off and goes on.
        """
        failures = 0
        config = self.settings.uplink
        while True:
            self._wake.clear()
            try:
                if self.outbox.sequence_base is None or time.monotonic() >= self._next_prefetch:
                    await self.refresh_reference()
                sent = await self.send_queued()
                if time.monotonic() >= self._next_prefetch:
                    await self.prefetch()
                    self._next_prefetch = time.monotonic() + config.prefetch_minutes * 60
                failures = 0
                if not sent:
                    await self._idle()
            except Offline as error:
                failures += 1
                delay = self._delay(failures)
                log.info("server unavailable (%s); retrying in %.1f s", error, delay)
                await self._back_off(delay, probe=isinstance(error, Unreachable))
            except Exception as error:
                failures += 1
                delay = self._delay(failures)
                log.exception("sending failed on this station; retrying in %.1f s", delay)
                self._publish(detail=f"station error: {error}")
                await asyncio.sleep(delay)

    def _delay(self, failures: int) -> float:
        config = self.settings.uplink
        return backoff_delay(
            failures, config.backoff_base_seconds, config.backoff_cap_seconds, self.rng
        )

    async def _back_off(self, delay: float, probe: bool) -> None:
        """Sleeps out the backoff; after an unreachable server, probes it about every
        `probe_seconds` and ends the wait once it answers, so a returning server is drained
        at once instead of after the rest of a long backoff."""
        until = time.monotonic() + delay
        while (left := until - time.monotonic()) > 0:
            step = self.settings.uplink.probe_seconds * self.rng.uniform(0.75, 1.25)
            await asyncio.sleep(min(left, step))
            if probe and until - time.monotonic() > 0 and await self._answers():
                log.info("server answers again; sending now")
                return

    async def _answers(self) -> bool:
        try:
            response = await self._client.get("/api/health", timeout=PROBE_TIMEOUT)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _idle(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), self.settings.uplink.idle_poll_seconds)
        except TimeoutError:
            await self._get("/api/stations/me")  # heartbeat: keeps the connection state honest

    # -- events --

    async def send_queued(self) -> int:
        """Sends every queued event, in sequence order, in batches; returns how many."""
        base = self.outbox.sequence_base
        if base is None:
            return 0
        total = 0
        while batch := self.outbox.queued(self.settings.uplink.batch_size):
            total += await self._send(batch, base)
        return total

    async def _send(self, batch: list[OutboxEvent], base: int) -> int:
        """Posts a batch; returns how many of its events the server answered for (it may
        answer for the first ones only: the others stay queued for the next request)."""
        # The device clock may have been set back since a scan; the server requires
        # created_at ≤ sent_at, and the correction uses only their difference.
        sent_at = max(datetime.now(UTC), *(event.created_at for event in batch))
        wired: list[dict[str, object]] = []
        for event in batch:
            try:
                wired.append(event.wire(base, sent_at).model_dump(mode="json"))
            except ValidationError as error:
                # The contract's own check refuses it, as the server would: never resent.
                if wired:
                    break  # send the events before it; it leads the next batch
                return self._refuse_malformed(event, *_validation_error(error))
        batch = batch[: len(wired)]
        response = await self._request("POST", "/api/events/batch", json={"events": wired})
        if response.status_code == 422:
            # Nothing of the batch was stored; find the event the server cannot parse.
            if len(batch) > 1:
                return sum([await self._send([event], base) for event in batch])
            return self._refuse_malformed(batch[0], *_first_error(response))
        self._raise_for_status(response)
        reply = BatchReply.model_validate_json(response.content)
        answered = [result.event_uuid for result in reply.results]
        if not answered or answered != [event.event_uuid for event in batch[: len(answered)]]:
            raise Offline("the server's answer does not match the first events sent")
        self.outbox.mark(reply.results)
        by_uuid = {event.event_uuid: event for event in batch}
        for result in reply.results:
            event = by_uuid[result.event_uuid]
            if result.job is not None:
                self.outbox.apply_job_state(result.job, event.seq)
            if result.status == "rejected":
                self.rejected.emit(event, result)
        self._publish(sequence_gaps=reply.sequence_gaps)
        return len(answered)

    def _refuse_malformed(self, event: OutboxEvent, field: str, message: str) -> int:
        log.error("event %s refused as malformed: %s: %s", event.event_uuid, field, message)
        self.outbox.reject(event, field, message)
        self._publish()
        return 1

    # -- reference data and cards --

    async def refresh_reference(self) -> StationMe:
        me = StationMe.model_validate_json((await self._get("/api/stations/me")).content)
        self.outbox.set_sequence_base_once(me.last_sequence)
        self.outbox.set_meta("station", me.model_dump_json())
        for key, adapter in (("operators", _operators), ("reasons", _reasons)):
            content = (await self._get(f"/api/stations/me/{key}")).content
            adapter.validate_json(content)  # never cache what could not be read back offline
            self.outbox.set_meta(key, content.decode())
        response = await self._request("GET", "/api/stations/me/labels")
        if response.status_code == 404:  # a server from before labels: identifiers readable()
            labels = StationLabels()
        else:
            self._raise_for_status(response)
            labels = StationLabels.model_validate_json(response.content)
        self.outbox.set_meta("labels", labels.model_dump_json())
        if me.stage.code != self.settings.stage:
            self._publish(detail=f"server says this station is at {me.stage.name}")
        return me

    def me(self) -> StationMe | None:
        """This station as the server last described it."""
        cached = self.outbox.get_meta("station")
        return StationMe.model_validate_json(cached) if cached else None

    def operators(self) -> list[Operator]:
        cached = self.outbox.get_meta("operators")
        return _operators.validate_json(cached) if cached else []

    def reasons(self) -> list[Reason]:
        cached = self.outbox.get_meta("reasons")
        return _reasons.validate_json(cached) if cached else []

    def labels(self) -> StationLabels:
        cached = self.outbox.get_meta("labels")
        return StationLabels.model_validate_json(cached) if cached else StationLabels()

    async def fetch_card(self, code: str, timeout: float | None = None) -> CachedCard | None:
        """The server's card and timeline, cached; None for an unknown code; Offline if down."""
        as_of_seq = self.outbox.replied_through()  # before the request: its effects are in
        path = f"/api/jobs/lookup/{quote(code, safe='')}"
        response = await self._request("GET", path, timeout=timeout or httpx.USE_CLIENT_DEFAULT)
        if response.status_code == 404:
            return None
        self._raise_for_status(response)
        card = JobCard.model_validate_json(response.content)
        timeline = _timeline.validate_json(
            (await self._get(f"/api/jobs/{card.id}/timeline")).content
        )
        self.outbox.put_card(card, timeline, as_of_seq)
        return self.outbox.card(card.job_number)

    async def fetch_ticket(self, job_id: int) -> bytes | None:
        """The job's ticket PDF; None if the server has no such job; Offline if down."""
        response = await self._request("GET", f"/api/jobs/{job_id}/ticket.pdf")
        if response.status_code == 404:
            return None
        self._raise_for_status(response)
        return response.content

    async def prefetch(self) -> int:
        """Caches the cards of jobs waiting at or in progress at this stage; returns how many."""
        limit = self.settings.uplink.prefetch_limit
        if not limit:
            return 0
        fetched = 0
        for job in await self.jobs_here(active="true", limit=limit):
            cached = self.outbox.card(job.job_number)
            if cached and (cached.card.status, cached.card.current_stage) == (
                job.status,
                job.current_stage,
            ):
                continue
            await self.fetch_card(job.job_number)
            fetched += 1
        return fetched

    async def jobs_here(self, **params: str | int) -> list[JobSummary]:
        """Jobs at this station's stage, filtered by `GET /api/jobs` parameters."""
        response = await self._get("/api/jobs", params={"stage": self.settings.stage, **params})
        return JobPage.model_validate_json(response.content).items

    # -- HTTP --

    async def _get(self, path: str, **kwargs: object) -> httpx.Response:
        response = await self._request("GET", path, **kwargs)
        self._raise_for_status(response)
        return response

    async def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as error:
            self._publish(connection="offline", detail=type(error).__name__)
            unreachable = isinstance(error, httpx.ConnectError)
            raise (Unreachable if unreachable else Offline)(
                f"{type(error).__name__}: {error}"
            ) from error
        if response.status_code >= 500:
            self._publish(connection="offline", detail=f"server error {response.status_code}")
            raise Offline(f"server error {response.status_code}")
        if response.status_code in (401, 403):
            self._publish(connection="unauthorised", detail=": ".join(_first_error(response)))
            raise Unauthorised(f"{response.status_code}")
        offset = _clock_offset(response)
        if abs(offset - self.status.clock_offset_seconds) < 5:  # the Date header has 1 s steps
            offset = self.status.clock_offset_seconds
        self._publish(connection="online", detail="", clock_offset_seconds=offset)
        return response

    @staticmethod
    def _raise_for_status(response: httpx.Response) -> None:
        if response.is_error:
            raise Offline(f"{response.status_code}: {': '.join(_first_error(response))}")

    def _publish(self, **changes: object) -> None:
        try:
            counts = self.outbox.counts()
        except sqlite3.Error as error:  # what is shown must not take the sender down with it
            log.error("cannot count the outbox: %s", error)
            counts = {"queued": self.status.queued, "rejected": self.status.rejected}
        status = replace(
            self.status, queued=counts["queued"], rejected=counts["rejected"], **changes
        )
        if status != self.status:
            self.status = status
            self.changed.emit(status)


def _first_error(response: httpx.Response) -> tuple[str, str]:
    try:
        detail = response.json()["detail"][0]
        return str(detail["field"]), str(detail["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        return "response", f"HTTP {response.status_code}"


def _validation_error(error: ValidationError) -> tuple[str, str]:
    first = error.errors()[0]
    return ".".join(str(part) for part in first["loc"]) or "event", first["msg"]


def _clock_offset(response: httpx.Response) -> float:
    date = response.headers.get("date")
    if not date:
        return 0.0
    return (parsedate_to_datetime(date) - datetime.now(UTC)).total_seconds()
