"""What a running server holds: settings, database, and the live bus that feeds its pages."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from sqlalchemy.orm import Session

from core.optics import load_profiles
from server.db import Database
from server.domain.events import IngestRules
from server.feed import WROTE_FEED
from server.live import LiveBus
from server.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ServerContext:
    settings: Settings
    db: Database = field(init=False)
    bus: LiveBus = field(init=False)

    def __post_init__(self) -> None:
        self.db = Database(self.settings.resolved_database_url)
        self.bus = LiveBus(self.db)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction; once it commits a change to the feed, the live bus reads it."""
        with self.db.session() as session:
            yield session
            wrote_feed = session.info.pop(WROTE_FEED, False)
        if wrote_feed:
            self.bus.wake()

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.session_hours)

    @cached_property
    def ingest_rules(self) -> IngestRules:
        return IngestRules(
            max_clock_ahead=timedelta(seconds=self.settings.max_clock_ahead_seconds),
            tolerances=load_profiles(self.settings.tolerance_profiles),
        )
