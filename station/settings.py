"""The station's one settings class, read from its TOML file and `LENSTRACK_STATION_*` variables."""

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from core.optics import DEFAULT_PROFILES_PATH
from core.settings import TomlSettings
from drivers.camera import TICKET_SYMBOLOGIES, CameraSettings, Level, Symbology
from drivers.lensmeter import LensmeterConfig, LensmeterFormat
from drivers.scanner import ScannerConfig

QC_STAGE = "final_qc"
COSMETIC_ITEMS = ("Scratches", "Coating", "Edges / chips", "Frame fit", "Cleanliness")


class WedgeInput(BaseModel):
    """A USB keyboard-wedge scanner typing into the browser (bursts are detected there)."""

    kind: Literal["wedge"] = "wedge"
    max_key_gap_ms: int = Field(30, ge=5, le=200, description="keys closer than this are a scan")
    min_length: int = Field(3, ge=1, description="shorter bursts are treated as typing")


class SerialInput(ScannerConfig):
    kind: Literal["serial"]


class _CameraInput(BaseModel):
    symbologies: tuple[Symbology, ...] = TICKET_SYMBOLOGIES  # what the job tickets carry
    # Each preview is pushed to every open page: this is the page's frame rate.
    preview_interval: float = Field(0.5, gt=0, description="seconds between preview frames")

    def camera_settings(self) -> CameraSettings:
        return CameraSettings(symbologies=self.symbologies, preview_interval=self.preview_interval)


class CameraInput(_CameraInput):
    """A camera read by `drivers.camera.OpenCVCamera`: device index, video file or stream URL."""

    kind: Literal["camera"]
    source: int | str = Field(0, description="device index, file path or URL")
    fps: float | None = Field(None, gt=0, description="pace a file source to this rate")


class VirtualCameraInput(_CameraInput):
    """`drivers.camera.VirtualCamera` for demos: generated tickets of `jobs`, and of any code
    put under it from the page."""

    kind: Literal["virtual_camera"]
    jobs: list[str] = Field(default_factory=list, description="tickets shown once at start")
    # Below the camera's 2 s debounce: a ticket left longer is read again, and a badge read
    # twice signs the operator out.
    seconds_per_ticket: float = Field(1.5, gt=0, lt=2.0)
    fps: float = Field(8.0, gt=0)
    level: Level = Field(Level.L0, description="ticket print and lighting quality")


ScannerInput = Annotated[
    WedgeInput | SerialInput | CameraInput | VirtualCameraInput, Field(discriminator="kind")
]


class QcSettings(BaseModel):
    """The final QC station: how measured lenses are judged here (the server judges again, with
    the store's profile) and what the cosmetic checklist asks."""

    tolerances_file: Path = DEFAULT_PROFILES_PATH
    profile: str | None = Field(None, description="None: the tolerance file's default")
    cosmetic: list[str] = Field(
        default_factory=lambda: list(COSMETIC_ITEMS), min_length=1, max_length=30
    )


class SerialLensmeterInput(LensmeterConfig):
    kind: Literal["serial_lensmeter"]


class SimulatedLensmeterInput(BaseModel):
    """A simulated lensmeter on a pty, read by the real serial driver. For the demo it measures
    by itself `auto_measure_seconds` after a job is started (standing in for Print)."""

    kind: Literal["simulated_lensmeter"]
    format: LensmeterFormat = "nidek"
    auto_measure_seconds: float | None = Field(2.0, ge=0, description="None: never by itself")
    out_of_tolerance_chance: float = Field(0.2, ge=0, le=1)
    seed: int | None = None


LensmeterInput = Annotated[
    SerialLensmeterInput | SimulatedLensmeterInput, Field(discriminator="kind")
]


class UplinkSettings(BaseModel):
    batch_size: int = Field(200, ge=1, le=1000)
    backoff_base_seconds: float = Field(0.5, gt=0)
    backoff_cap_seconds: float = Field(15.0, gt=0)
    idle_poll_seconds: float = Field(5.0, gt=0, description="heartbeat while nothing is queued")
    prefetch_minutes: float = Field(2.0, gt=0, description="refresh of this stage's job cards")
    prefetch_limit: int = Field(300, ge=0, le=1000)
    # The server rolls back what it cannot commit within its ingest deadline (8 s by
    # default), so a resend after this timeout never races a first attempt still committing.
    request_timeout_seconds: float = Field(15.0, gt=0)
    probe_seconds: float = Field(
        1.0, gt=0, description="while the server is down, how often to check it is back"
    )


class PrinterSettings(BaseModel):
    """Where "Reprint ticket" sends the ticket PDF: a print command that reads it on stdin
    (e.g. `["lp", "-d", "TICKETS"]`, run without a shell), or with none, the station data
    folder's `tickets/`, and the page offers the file to open or print from the browser."""

    command: list[str] | None = Field(None, description="None or empty: save, not print")
    timeout_seconds: float = Field(30.0, gt=0, description="before a hung command is stopped")


class StationSettings(TomlSettings):
    """Precedence: constructor arguments, `LENSTRACK_STATION_*` environment, the TOML file."""

    model_config = SettingsConfigDict(env_prefix="LENSTRACK_STATION_", extra="forbid")

    name: str = Field(min_length=1, description="The station's name in the lab config.")
    stage: str = Field(min_length=1, description="Stage code; checked against the server.")
    server_url: str = Field(pattern=r"^https?://", description="Base URL, without /api.")
    token: SecretStr | None = None
    token_file: Path | None = Field(None, description="File holding the token (read at start).")
    data_dir: Path = Field(description="Outbox and card cache live here.")
    host: str = "127.0.0.1"
    port: int = Field(8101, ge=1, le=65535)
    idle_sign_out_minutes: float = Field(15, gt=0)
    repeat_scan_seconds: float = Field(
        2.0, ge=0, description="The same code read again this soon is one scan, not two."
    )
    scanners: list[ScannerInput] = Field(default_factory=lambda: [WedgeInput()])
    uplink: UplinkSettings = UplinkSettings()
    qc: QcSettings | None = Field(None, description="Implied (defaults) at stage final_qc.")
    lensmeter: LensmeterInput | None = None
    printer: PrinterSettings = PrinterSettings()

    @model_validator(mode="after")
    def _one_token_source(self) -> Self:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("give exactly one of token and token_file")
        return self

    @model_validator(mode="after")
    def _lensmeter_at_qc(self) -> Self:
        if self.lensmeter is not None and self.qc_settings is None:
            raise ValueError(f"a lensmeter needs a QC station ([qc] or stage {QC_STAGE})")
        return self

    @classmethod
    def load(cls, toml_file: Path, **overrides: object) -> "StationSettings":
        class FromFile(cls):  # type: ignore[valid-type,misc]
            model_config = SettingsConfigDict(toml_file=toml_file)

        return FromFile(**overrides)

    def resolved_token(self) -> str:
        if self.token is not None:
            return self.token.get_secret_value()
        assert self.token_file is not None
        return self.token_file.read_text().strip()

    @property
    def qc_settings(self) -> QcSettings | None:
        """Set when this is a QC station."""
        return self.qc or (QcSettings() if self.stage == QC_STAGE else None)

    @property
    def wedge(self) -> WedgeInput | None:
        return next((s for s in self.scanners if isinstance(s, WedgeInput)), None)

    @property
    def inputs(self) -> list[ScannerInput | LensmeterInput]:
        """Every configured input, each built by the station core from its `kind`."""
        return [*self.scanners, *([self.lensmeter] if self.lensmeter else [])]
