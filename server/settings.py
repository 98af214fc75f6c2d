"""The one settings class of the server, read from a TOML file and `LENSTRACK_*` variables."""

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from core.settings import TomlSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "config"


def _default_lab_config() -> Path:
    own = CONFIG_DIR / "lab.toml"
    return own if own.exists() else CONFIG_DIR / "lab.example.toml"


class Settings(TomlSettings):
    """Precedence: constructor arguments, then `LENSTRACK_*` environment, then the TOML file."""

    model_config = SettingsConfigDict(env_prefix="LENSTRACK_", extra="forbid")

    data_dir: Path = Field(default=PROJECT_ROOT / "var", description="Database, keys, logs.")
    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means SQLite in data_dir."
    )
    secret_key: SecretStr = Field(
        default=SecretStr(""), description="Signs browser storage; empty means a generated key."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    lab_config: Path = Field(default_factory=_default_lab_config)
    tolerance_profiles: Path = Field(
        default=CONFIG_DIR / "tolerances.toml", description="QC tolerance profiles (Z80.1, …)."
    )
    cookie_secure: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (behind TLS)."
    )
    session_hours: float = Field(default=12, gt=0, description="Log-in session lifetime.")
    max_clock_ahead_seconds: int = Field(
        default=3600, ge=0, description="Events created further in the future are rejected."
    )
    max_batch_size: int = Field(default=1000, ge=1)
    # A station resends a request it gave up on (its timeout, 15 s by default): the first
    # attempt must not be able to commit by then, or resends pile up behind it. So a batch
    # takes events for ingest_budget_seconds and answers for those, and a request not ready
    # to commit ingest_deadline_seconds after it arrived rolls back and answers 503.
    ingest_budget_seconds: float = Field(
        default=2.0, gt=0, description="Work per event batch; the rest waits for the next."
    )
    ingest_deadline_seconds: float = Field(
        default=8.0,
        gt=0,
        description="A request that cannot commit this soon after arriving stores nothing "
        "(503); keep it well below the stations' request timeout.",
    )
    smtp_host: str = Field(default="", description="SMTP server for store e-mails; empty: off.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_username: str = Field(default="", description="Empty: send without logging in.")
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = "lenstrack@localhost"
    notify_max_attempts: int = Field(
        default=10, ge=1, le=30, description="Webhook/e-mail attempts before a delivery fails."
    )
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=60)

    @classmethod
    def toml_file(cls) -> Path:
        """LENSTRACK_SETTINGS_FILE, else config/lenstrack.toml: looked up on each construction."""
        return Path(os.environ.get("LENSTRACK_SETTINGS_FILE", CONFIG_DIR / "lenstrack.toml"))

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'lenstrack.db'}"

    @cached_property
    def resolved_secret_key(self) -> str:
        """A configured key, or one generated once and kept in data_dir (mode 0600)."""
        if self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        key_file = self.data_dir / "secret_key"
        if not key_file.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            key_file.touch(mode=0o600)
            key_file.write_text(secrets.token_urlsafe(48))
        return key_file.read_text().strip()
