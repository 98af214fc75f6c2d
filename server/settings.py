"""The one settings class of the server, read from a TOML file and `LENSTRACK_*` variables."""

import ipaddress
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, StringConstraints, field_validator
from pydantic_settings import SettingsConfigDict

from core.contract import MAX_BATCH_EVENTS
from core.settings import TomlSettings
from server.crypto import DataCipher, open_cipher

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
        default=False,
        description="Always mark the session cookie Secure (HTTPS only); it is anyway on "
        "every log-in that came over HTTPS.",
    )
    trusted_proxies: list[str] = Field(
        default=[],
        description="Addresses of reverse proxies whose X-Forwarded-Proto and X-Forwarded-For "
        "are believed (the client's scheme and address); empty: no one's.",
    )
    allowed_origins: list[Annotated[str, StringConstraints(pattern=r"^https?://[^/?#@\s]+$")]] = (
        Field(
            default=[],
            description="Origins (scheme://host[:port]) besides the server's own whose pages "
            "may send logged-in writes.",
        )
    )
    session_hours: float = Field(default=12, gt=0, description="Log-in session lifetime.")
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed log-ins for one user name before it is locked."
    )
    login_max_failures_per_address: int = Field(
        default=20, ge=1, description="Failed log-ins from one client address before it is locked."
    )
    login_window_seconds: float = Field(
        default=900, gt=0, description="How long a failed log-in counts towards a lockout."
    )
    login_lockout_seconds: float = Field(
        default=300, gt=0, description="How long a locked user name or address is refused."
    )
    max_clock_ahead_seconds: int = Field(
        default=3600, ge=0, description="Events created further in the future are rejected."
    )
    max_batch_size: int = Field(default=MAX_BATCH_EVENTS, ge=1, le=MAX_BATCH_EVENTS)
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=64 * 1024,
        description="A larger request body answers 413 unread (DCS imports take up to 8 MiB).",
    )
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
    smtp_host: str = Field(
        default="", description="SMTP server for store and lab alert e-mails; empty: off."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_username: str = Field(default="", description="Empty: send without logging in.")
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = "lenstrack@localhost"
    public_url: str = Field(
        default="",
        pattern=r"^(https?://[^/?#@\s]+)?$",
        description="scheme://host[:port] people reach the server at, for the links in lab "
        "alert e-mails; empty: http://host:port.",
    )
    notify_max_attempts: int = Field(
        default=10, ge=1, le=30, description="Webhook/e-mail attempts before a delivery fails."
    )
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=60)
    webhook_allow_http: bool = Field(
        default=False, description="Allow plain http:// webhook URLs; https only otherwise."
    )
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Host names or networks (CIDR) that webhooks may reach although they are "
        "not public internet addresses, e.g. a receiver on the lab's own network.",
    )
    data_keys_file: Path | None = Field(
        default=None,
        description="Keys encrypting patient data, current first (`lenstrack keys rotate`); "
        "empty means data_dir/data_keys, generated on first use (mode 0600).",
    )
    personal_data_retention_days: int = Field(
        default=730,
        ge=0,
        le=36500,
        description="Days after a job was last shipped, collected or cancelled before its "
        "patient data is purged (about two years by default); 0 keeps it forever.",
    )

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _hosts_or_networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if "/" in entry:
                ipaddress.ip_network(entry, strict=False)  # its ValueError names the entry
            elif not entry.strip() or any(char.isspace() for char in entry.strip()):
                raise ValueError(f"{entry!r} is neither a host name nor a network")
        return [entry.strip().lower() for entry in entries]

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
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            key_file.touch(mode=0o600)
            key_file.write_text(secrets.token_urlsafe(48))
        return key_file.read_text().strip()

    @property
    def resolved_data_keys_file(self) -> Path:
        return self.data_keys_file or self.data_dir / "data_keys"

    @cached_property
    def data_cipher(self) -> DataCipher:
        """The patient data cipher from the key file, checked against the database (a first
        key generated for a database without encrypted values; `DataKeysError` otherwise)."""
        return open_cipher(self.resolved_data_keys_file, self.resolved_database_url)
