"""What a running server holds: settings, database, and the live bus that feeds its pages."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from core.optics import load_profiles
from server.db import Database, is_retryable
from server.domain.events import IngestRules
from server.domain.login_throttle import LoginThrottle, ThrottleRules
from server.feed import WROTE_FEED
from server.live import LiveBus
from server.settings import Settings
from server.writer import GroupWriter

log = logging.getLogger(__name__)
TRANSACTION_ATTEMPTS = 3
T = TypeVar("T")


@dataclass
class ServerContext:
    settings: Settings
    db: Database = field(init=False)
    bus: LiveBus = field(init=False)
    writer: GroupWriter = field(init=False)

    def __post_init__(self) -> None:
        self.db = Database.from_settings(self.settings)
        self.bus = LiveBus(self.db)
        # Station events commit in groups (one fsync for all the requests waiting).
        self.writer = GroupWriter(self.session)

    def close(self) -> None:
        self.writer.stop()
        self.db.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction; once it commits a change to the feed, the live bus reads it."""
        with self.db.session() as session:
            yield session
            wrote_feed = session.info.pop(WROTE_FEED, False)
        if wrote_feed:
            self.bus.wake()

    def run_in_transaction(self, work: Callable[[Session], T]) -> T:
        """`work` in a transaction of its own; run again from the start (up to
        TRANSACTION_ATTEMPTS times) if PostgreSQL aborted it as a deadlock victim: concurrent
        batches lock their jobs in the order they come, which no one can sort in advance."""
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                with self.session() as session:
                    return work(session)
            except DBAPIError as error:
                if attempt == TRANSACTION_ATTEMPTS or not is_retryable(error):
                    raise
                log.info("transaction aborted (%s); attempt %d", error.orig, attempt + 1)
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.session_hours)

    @cached_property
    def ingest_rules(self) -> IngestRules:
        return IngestRules(
            max_clock_ahead=timedelta(seconds=self.settings.max_clock_ahead_seconds),
            tolerances=load_profiles(self.settings.tolerance_profiles),
        )

    @cached_property
    def login_throttle(self) -> LoginThrottle:
        return LoginThrottle(
            ThrottleRules(
                max_failures_per_account=self.settings.login_max_failures,
                max_failures_per_address=self.settings.login_max_failures_per_address,
                window_seconds=self.settings.login_window_seconds,
                lockout_seconds=self.settings.login_lockout_seconds,
            )
        )
