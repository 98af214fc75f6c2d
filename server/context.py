"""What a running server holds: its settings, its database and the lab configuration."""

from dataclasses import dataclass, field
from datetime import timedelta

from server.db import Database
from server.settings import Settings


@dataclass
class ServerContext:
    settings: Settings
    db: Database = field(init=False)

    def __post_init__(self) -> None:
        self.db = Database(self.settings.resolved_database_url)

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.session_hours)

    @property
    def max_clock_ahead(self) -> timedelta:
        return timedelta(seconds=self.settings.max_clock_ahead_seconds)
