"""The scan state machine, free of UI: what a scan means and which event it records.

A badge signs an operator in (or out, scanned again; another badge signs the first out), and
each sign-in and sign-out is recorded in the outbox, in order with the job events, so the
server accepts those only from the operator signed in here; a job or tray number shows the job's
card and records *start* or *complete*, decided from the cached card plus this station's own
events the card does not reflect yet, so the decision is the same online and offline. A hold,
breakage or defect reason code scanned while a card is shown records that event.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from core.lifecycle import Outcome, Progress, Route, apply
from drivers.events import Event
from station.outbox import CachedCard, Outbox, OutboxEvent, OutboxWriteFailed
from station.wire import (
    Action,
    BreakageDetail,
    EventResult,
    InspectionIn,
    JobCard,
    JobStatus,
    Operator,
    Reason,
    ShipmentIn,
    SignAction,
)

log = logging.getLogger(__name__)

Tone = Literal["idle", "ok", "warning", "error"]
ONLINE_LOOKUP_TIMEOUT = 1.5  # seconds; past this the cached card serves the scan
INSPECTING = "Inspecting: measure the lenses, then PASS or FAIL"
SHIPPING = "Shipping: choose the carrier, scan or type the tracking number, then SHIP"
REASON_ACTIONS = {"hold": Action.hold, "breakage": Action.breakage, "defect": Action.rework}


class CardSource(Protocol):
    """What the flow needs from the uplink (a fake in tests)."""

    @property
    def online(self) -> bool: ...

    async def fetch_card(self, code: str, timeout: float | None = None) -> CachedCard | None: ...

    def operators(self) -> list[Operator]: ...

    def reasons(self) -> list[Reason]: ...

    def wake(self) -> None: ...


@dataclass(frozen=True)
class Projected:
    """What the card shows of the job's progress."""

    stage: str | None
    status: JobStatus


class Verdict(StrEnum):
    start = "start"
    complete = "complete"
    inspect = "inspect"  # in progress at an inspection stage: it passes by PASS, not by a scan
    needs_override = "needs_override"
    on_hold = "on_hold"
    closed = "closed"


CLOSED = frozenset({JobStatus.completed, JobStatus.cancelled})


def _route(card: JobCard) -> Route:
    return Route(
        job_number=card.job_number,
        stages=tuple(stage.code for stage in card.route_stages),
        inspection_stages=frozenset(stage.code for stage in card.route_stages if stage.inspection),
        names={stage.code: stage.name for stage in card.route_stages},
    )


def carriers_at(card: JobCard, here: str) -> tuple[str, ...]:
    """The carriers offered where this station works, if it is a shipping stage of the job's
    route (the card brings them, so they are there offline too)."""
    for stage in card.route_stages:
        if stage.code == here:
            return tuple(stage.carriers or ())
    return ()


def _apply(
    progress: Progress, event: OutboxEvent, route: Route, reasons: dict[str, Reason], here: str
) -> Progress:
    """The progress after one of this station's events, as the server will apply it: an event
    the lifecycle refuses (or the server rejected) leaves it as it was."""
    if event.state == "rejected":
        return progress
    fields = event.fields
    reason = reasons.get(fields.get("reason_code") or "")
    result = apply(
        progress,
        event.action,
        route=route,
        here=here,
        override=bool(fields.get("override_reason")),
        reason=reason.code if reason else None,
        reason_return_stage=reason.return_stage if reason else None,
        to_stage=fields.get("to_stage"),
        inspected=fields.get("inspection") is not None,
    )
    return result.progress if isinstance(result, Outcome) else progress


def project(
    card: JobCard, events: list[OutboxEvent], reasons: dict[str, Reason], here: str
) -> Projected:
    """The card's state with this station's later events applied, as the server will apply them
    (the same lifecycle decides).

    An event the card already reflects can be applied again without changing the result: the
    lifecycle refuses it (a second start, complete, hold or release) or it lands the job where
    it did (a breakage or rework).
    """
    route = _route(card)
    stage = card.current_stage.code if card.current_stage else None
    progress = Progress(stage, card.status, card.status_before_hold, card.status not in CLOSED)
    for event in events:
        progress = _apply(progress, event, route, reasons, here)
    return Projected(progress.stage, progress.status)


def decide(card: JobCard, state: Projected, here: str) -> tuple[Verdict, str]:
    """What a scan of this job does here (the lifecycle's answer to a plain start or complete),
    and the sentence that explains it."""
    names = {stage.code: stage.name for stage in card.route_stages}
    route = [stage.code for stage in card.route_stages]
    where = names.get(state.stage or "", state.stage or "no stage")
    in_progress_here = (state.stage, state.status) == (here, JobStatus.in_progress)
    scan = Action.complete if in_progress_here else Action.start
    progress = Progress(state.stage, state.status, active=state.status not in CLOSED)
    result = apply(progress, scan, route=_route(card), here=here)
    if isinstance(result, Outcome):
        return Verdict(scan.value), _DONE[scan]
    match result.field:
        case "job":
            why = f": {card.cancel_reason}" if card.cancel_reason else ""
            return Verdict.closed, f"Job {card.job_number} is {state.status.value}{why}"
        case "action":  # a plain scan is refused by the job's status only when it is on hold
            return Verdict.on_hold, f"Job {card.job_number} is on hold at {where}"
        case "inspection":
            return Verdict.inspect, INSPECTING
    if here not in route:
        return Verdict.needs_override, f"Not routed here: job {card.job_number} is at {where}"
    if state.stage in route and route.index(state.stage) > route.index(here):
        return Verdict.needs_override, f"Already past this stage: job is at {where}"
    skipped = route[route.index(state.stage) if state.stage in route else 0 : route.index(here)]
    return Verdict.needs_override, "Skips " + ", ".join(names[code] for code in skipped)


@dataclass(frozen=True)
class Screen:
    """Everything the station screen shows; one per station, whichever clients look at it."""

    tone: Tone = "idle"
    message: str = "Scan your badge to sign in"
    operator: Operator | None = None
    card: CachedCard | None = None
    state: Projected | None = None
    local_events: list[OutboxEvent] = field(default_factory=list)
    verdict: Verdict | None = None
    scanned: str = ""
    scan_count: int = 0  # increments per handled scan, so every scan confirms, even a repeat
    # Why the last event could not be saved on this PC; None once a save succeeds again.
    storage_fault: str | None = None
    # At a shipping stage, the job on screen waits for its shipment (SHIP completes it).
    carriers: tuple[str, ...] = ()
    tracking: str = ""  # a tracking number scanned for it
    box: str = ""  # the box or batch of the last shipment: the next job often goes in it too


class StationFlow:
    def __init__(
        self,
        outbox: Outbox,
        source: CardSource,
        *,
        stage: str,
        idle_sign_out_seconds: float,
        repeat_scan_seconds: float,
        complete_by_scan: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.source = source
        self.stage = stage
        self.idle_sign_out_seconds = idle_sign_out_seconds
        self.repeat_scan_seconds = repeat_scan_seconds
        self.complete_by_scan = complete_by_scan
        self.clock = clock
        self.screen = Screen()
        self.changed = Event[[Screen]]()
        self._last_activity = clock()
        self._last_scan: tuple[str, float] = ("", -1e9)

    # -- inputs --

    async def scan(self, raw: str) -> Screen:
        code = raw.strip()
        now = self.clock()
        last_code, last_at = self._last_scan
        self._last_activity = now
        if not code or (code == last_code and now - last_at < self.repeat_scan_seconds):
            return self.screen  # a double read of one label is one scan
        self._last_scan = (code, now)
        operators = {operator.badge_code: operator for operator in self.source.operators()}
        reasons = {reason.code: reason for reason in self.source.reasons()}
        if code in operators:
            return self._badge(operators[code])
        if self.screen.operator is None:
            return self._show("error", f"Scan your badge first (read {code})", scanned=code)
        if code in reasons:
            reason = reasons[code]
            return self.record(REASON_ACTIONS[reason.kind], reason_code=reason.code)
        if self.screen.carriers and self.outbox.card(code) is None:
            # Waiting for a shipment, a label that is no job here is its tracking number.
            return self._show("ok", f"Tracking number {code}: press SHIP", tracking=code)
        return await self._job(code)

    def touch(self) -> None:
        """Any tap counts as activity for the idle sign-out."""
        self._last_activity = self.clock()

    def check_idle(self) -> None:
        if self.screen.operator and self.clock() - self._last_activity > self.idle_sign_out_seconds:
            self.sign_out("Signed out after being idle")

    def sign_out(self, message: str = "Signed out") -> Screen:
        """Signs the operator out on screen even if the outbox cannot record it: they left.
        Nothing can be recorded here until it can again, a sign-in first."""
        if self.screen.operator is not None:
            self._sign(SignAction.sign_out, self.screen.operator)
        return self._show(
            "idle", f"{message}. Scan your badge to sign in", operator=None, card=None
        )

    def override(self, reason: str) -> Screen:
        """Starts the shown job here although it is not at this stage; the reason is recorded."""
        if len(reason.strip()) < 3:
            return self._show("error", "An override needs a reason (3 characters or more)")
        return self.record(Action.start, override_reason=reason.strip())

    def ship(self, carrier: str, tracking_number: str, box: str) -> Screen:
        """Completes the shown job here with its shipment; an unusable entry is shown, naming
        what to fix, and nothing is recorded."""
        if carrier not in self.screen.carriers:
            return self._show("error", "Choose the carrier")
        try:
            shipment = ShipmentIn(
                carrier=carrier, tracking_number=tracking_number, box=box.strip() or None
            )
        except ValidationError as error:
            field = str(error.errors()[0]["loc"][0]).replace("_", " ")
            return self._show("error", f"Check the {field}: {error.errors()[0]['msg']}")
        screen = self.record(Action.complete, shipment=shipment)
        if screen.tone == "ok":
            self.screen = replace(screen, box=shipment.box or "")
        return self.screen

    def record(
        self,
        action: Action,
        *,
        breakage: BreakageDetail | None = None,
        inspection: InspectionIn | None = None,
        shipment: ShipmentIn | None = None,
        **fields: str | None,
    ) -> Screen:
        """Commits an event for the shown job to the outbox, then shows the projected state."""
        shown = self.screen.card
        if shown is None:
            return self._show("error", "Scan a job first")
        if self.screen.operator is None:
            return self._show("error", "Scan your badge first")
        self._last_activity = self.clock()
        if not self._save(
            shown.card.job_number,
            action,
            operator_badge=self.screen.operator.badge_code,
            breakage=breakage,
            inspection=inspection,
            shipment=shipment,
            **fields,
        ):
            return self.screen
        return self._show_card(self.outbox.card(shown.card.job_number) or shown, action)

    def rejected(self, event: OutboxEvent, result: EventResult) -> None:
        """The server refused an event: say so loudly if its job is on screen."""
        card = self.screen.card
        if card and event.job in {card.card.job_number, card.card.tray_number}:
            message = result.error.message if result.error else "rejected"
            self._show("error", f"Server refused {event.action.value}: {message}")

    # -- scans --

    def _badge(self, operator: Operator) -> Screen:
        current = self.screen.operator
        if current and current.badge_code == operator.badge_code:
            return self.sign_out(f"{operator.name} signed out")
        if current:
            self._sign(SignAction.sign_out, current)
            self.screen = replace(self.screen, operator=None, card=None)  # shown just below
        if not self._sign(SignAction.sign_in, operator):
            return self.screen
        return self._show(
            "ok", f"Hello {operator.name}. Scan a job", operator=operator, card=None, state=None
        )

    async def _job(self, code: str) -> Screen:
        cached = self.outbox.card(code)
        if self.source.online or cached is None:
            try:
                fetched = await self.source.fetch_card(code, ONLINE_LOOKUP_TIMEOUT)
            except Exception as error:  # offline or failing server: work from the cache
                log.info("card lookup for %s failed (%s); using the cache", code, error)
            else:
                if fetched is None:
                    return self._show(
                        "error", f"Unknown job or tray {code}", card=None, scanned=code
                    )
                cached = fetched
        if cached is None:
            return self._unknown_offline(code)
        verdict, _ = decide(cached.card, self._state(cached), self.stage)
        if verdict == Verdict.complete and carriers_at(cached.card, self.stage):
            # Shipping completes by SHIP, which carries the carrier and tracking number.
            return self._show_card(cached, None, scanned=code, say=("idle", SHIPPING))
        if verdict == Verdict.inspect or (
            verdict == Verdict.complete and not self.complete_by_scan
        ):
            # QC completes by PASS, which carries the inspection; a scan only shows the card.
            return self._show_card(cached, None, scanned=code, say=("idle", INSPECTING))
        if verdict in (Verdict.start, Verdict.complete):
            self.screen = replace(self.screen, card=cached, scanned=code)
            return self.record(Action(verdict.value))
        return self._show_card(cached, None, scanned=code)

    def _unknown_offline(self, code: str) -> Screen:
        """No card and no server: still record, from this station's own history of the code."""
        history = [e for e in self.outbox.events_for_job({code}) if e.action != Action.note]
        started = bool(history) and history[-1].action == Action.start
        action = Action.complete if started else Action.start
        assert self.screen.operator is not None
        if not self._save(code, action, operator_badge=self.screen.operator.badge_code):
            return self.screen
        return self._show(
            "warning",
            f"Offline, card not cached: {action.value} of {code} recorded, checked when online",
            card=None,
            scanned=code,
        )

    def _save(self, job: str, action: Action, **fields: Any) -> bool:
        return self._commit(partial(self.outbox.record, job, action, **fields), action, job)

    def _sign(self, action: SignAction, operator: Operator) -> bool:
        commit = partial(self.outbox.record_sign, action, operator.badge_code)
        return self._commit(commit, action, operator.badge_code)

    def _commit(
        self, commit: Callable[[], OutboxEvent], action: Action | SignAction, subject: str
    ) -> bool:
        """Commits the event to the outbox before anything confirms it. If the station's disk
        cannot take it, the scan is refused on screen (and refused again on every scan until
        a save succeeds): an operator must never believe a job moved when nothing recorded it."""
        try:
            commit()
        except OutboxWriteFailed as error:
            log.error(
                "%s of %s NOT recorded: the outbox cannot be written: %s", action, subject, error
            )
            self._show(
                "error",
                f"NOT RECORDED: {action.value} of {subject}. This station cannot save ({error}). "
                "Call your supervisor, then scan again",
                storage_fault=str(error),
            )
            return False
        if self.screen.storage_fault is not None:
            log.warning("the outbox takes events again")
            self.screen = replace(self.screen, storage_fault=None)
        self.source.wake()
        return True

    # -- screen --

    def _state(self, cached: CachedCard) -> Projected:
        return project(cached.card, self._local_events(cached), self._reasons(), self.stage)

    def _local_events(self, cached: CachedCard) -> list[OutboxEvent]:
        codes = {cached.card.job_number} | ({cached.card.tray_number} - {None})  # type: ignore[operator]
        return self.outbox.events_for_job(codes, after_seq=cached.as_of_seq)

    def _reasons(self) -> dict[str, Reason]:
        return {reason.code: reason for reason in self.source.reasons()}

    def _show_card(
        self,
        cached: CachedCard,
        action: Action | None,
        scanned: str = "",
        say: tuple[Tone, str] | None = None,
    ) -> Screen:
        state = self._state(cached)
        verdict, message = decide(cached.card, state, self.stage)
        tone: Tone
        if say is not None:
            tone, message = say
        elif action is None:
            tone = "error" if verdict == Verdict.closed else "warning"
        else:
            tone = "ok"
            message = _DONE.get(action, action.value.capitalize())
            if action == Action.complete and state.status == JobStatus.queued:
                names = {stage.code: stage.name for stage in cached.card.route_stages}
                message += f", next: {names.get(state.stage or '', state.stage)}"
        return self._show(
            tone,
            message,
            card=cached,
            state=state,
            local_events=self._local_events(cached),
            verdict=verdict,
            scanned=scanned or self.screen.scanned,
        )

    def _shipment_waiting(self, before: Screen, after: Screen) -> Screen:
        """The carriers to choose from while the shown job waits here for its shipment (in
        progress at a shipping stage); a tracking number read belongs to that job only."""
        carriers: tuple[str, ...] = ()
        if after.card is not None and after.verdict == Verdict.complete:
            carriers = carriers_at(after.card.card, self.stage)
        if carriers and (carriers, _job_number(after)) == (before.carriers, _job_number(before)):
            return after
        return replace(after, carriers=carriers, tracking="")

    def _show(self, tone: Tone, message: str, **changes: object) -> Screen:
        before = self.screen
        self.screen = replace(
            self.screen,
            tone=tone,
            message=message,
            scan_count=self.screen.scan_count + 1,
            **changes,
        )
        if self.screen.card is None:
            self.screen = replace(self.screen, state=None, verdict=None, local_events=[])
        self.screen = self._shipment_waiting(before, self.screen)
        self.changed.emit(self.screen)
        return self.screen


def _job_number(screen: Screen) -> str | None:
    return screen.card.card.job_number if screen.card else None


_DONE = {
    Action.start: "Started",
    Action.complete: "Completed",
    Action.hold: "Put on hold",
    Action.release: "Released",
    Action.breakage: "Breakage recorded",
    Action.rework: "Sent to rework",
    Action.note: "Note added",
}
