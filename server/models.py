"""The central record: typed SQLAlchemy 2 ORM.

Timestamps are stored as naive UTC and returned timezone-aware, identically on SQLite and
PostgreSQL. Enumerations are stored as plain strings so a new value needs no type change.
"""

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.contract import (
    BreakagePart,
    Eye,
    JobType,
    LensDesign,
    Priority,
    ReasonKind,
    RemakeClass,
    Role,
    SignAction,
)
from core.lifecycle import Action as EventAction
from core.lifecycle import JobStatus
from server.crypto import Encrypted


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; LensTrack stores timezone-aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _enum(enum_class: type[StrEnum]) -> Enum:
    return Enum(enum_class, native_enum=False, length=24, validate_strings=True)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


class Lab(Base):
    __tablename__ = "lab"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # [{"name": "early", "starts": "06:00:00"}, ...] in the lab's time zone.
    shifts: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # {"currency": "EUR", "lens": {"SV": 6.0, ...}, "frame": 25.0}
    breakage_costs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # core.labels.Labels as JSON: what people read for identifiers (None before config load).
    labels: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=dict)
    # server.labconfig.CatalogueConfig as JSON: what an order may choose (None: not loaded).
    catalogue: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=dict)
    # server.labconfig.AftersalesConfig as JSON: SLA hours and follow-up days (None: defaults).
    aftersales: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=dict)
    # server.labconfig.KpiTargets as JSON: what the dashboards draw against (None: defaults).
    kpi_targets: Mapped[dict[str, float] | None] = mapped_column(JSON, default=dict)


class ProductionLine(Base):
    __tablename__ = "production_line"
    __table_args__ = (UniqueConstraint("lab_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(120))


class Store(Base):
    __tablename__ = "store"
    __table_args__ = (UniqueConstraint("lab_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(120))
    notify_email: Mapped[str | None] = mapped_column(String(254))
    # A stricter tolerance profile this store asks for (None: the lab's default profile).
    tolerance_profile: Mapped[str | None] = mapped_column(String(64))


class Stage(Base):
    __tablename__ = "stage"
    __table_args__ = (UniqueConstraint("lab_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int]
    stalled_after_minutes: Mapped[int] = mapped_column(default=240)
    # Jobs one station processes at once (coating runs whole batches); sizes queue waits.
    capacity: Mapped[int] = mapped_column(default=1)
    # Force QA: a job passes this stage (complete) only with a judged inspection.
    inspection: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # A shipping stage: the carriers its station offers; a completion there records the shipment.
    carriers: Mapped[list[str] | None] = mapped_column(JSON)


class Route(Base):
    """Ordered stages for the jobs it matches (job types × lens designs × surfaced or stock)."""

    __tablename__ = "route"
    __table_args__ = (UniqueConstraint("lab_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(120))
    job_types: Mapped[list[str]] = mapped_column(JSON)
    designs: Mapped[list[str]] = mapped_column(JSON)
    surfaced: Mapped[bool]
    steps: Mapped[list["RouteStep"]] = relationship(
        order_by="RouteStep.position", cascade="all, delete-orphan", lazy="selectin"
    )


class RouteStep(Base):
    __tablename__ = "route_step"
    __table_args__ = (UniqueConstraint("route_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("route.id", ondelete="CASCADE"))
    position: Mapped[int]
    stage_id: Mapped[int] = mapped_column(ForeignKey("stage.id"))
    standard_minutes: Mapped[float]
    stage: Mapped[Stage] = relationship(lazy="joined")


class ReasonCode(Base):
    """Hold, breakage and defect codes; `return_stage` is where a job goes back to."""

    __tablename__ = "reason_code"
    __table_args__ = (UniqueConstraint("lab_id", "kind", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    kind: Mapped[ReasonKind] = mapped_column(_enum(ReasonKind))
    code: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(200))
    return_stage_id: Mapped[int | None] = mapped_column(ForeignKey("stage.id"))
    return_stage: Mapped[Stage | None] = relationship(lazy="joined")


class Station(Base):
    __tablename__ = "station"
    __table_args__ = (UniqueConstraint("lab_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    line_id: Mapped[int | None] = mapped_column(ForeignKey("production_line.id"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("stage.id"))
    name: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    stage: Mapped[Stage] = relationship(lazy="joined")


class StationToken(Base):
    """A bearer token for one station, stored as a SHA-256 digest (the token is 256 random bits)."""

    __tablename__ = "station_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    station: Mapped[Station] = relationship(lazy="joined")


class LabToken(Base):
    """A bearer token another system (an order or lab management system) uses for the lab,
    stored as a SHA-256 digest like a station's."""

    __tablename__ = "lab_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Person(Base):
    __tablename__ = "person"
    __table_args__ = (
        UniqueConstraint("lab_id", "badge_code"),
        CheckConstraint(
            "(role = 'store_staff') = (store_id IS NOT NULL)",
            name="store_staff_bound_to_one_store",
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    badge_code: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[Role] = mapped_column(_enum(Role))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("store.id"))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    # Store staff who set their store's messages (server.notify.preferences).
    store_manager: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # A lab manager is sent the lab's SPC alerts here (server.notify); None: the board only.
    email: Mapped[str | None] = mapped_column(String(254))
    store: Mapped[Store | None] = relationship()

    @property
    def initials(self) -> str:
        """How a person is shown where space is short (timelines, stations)."""
        return "".join(part[0] for part in self.name.split() if part).upper()


class UserSession(Base):
    __tablename__ = "user_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    person: Mapped[Person] = relationship(lazy="joined")


class Job(Base):
    """One pair. Job and tray numbers are unique among active jobs: trays are reused."""

    __tablename__ = "job"
    __table_args__ = (
        Index(
            "uq_job_number_active",
            "lab_id",
            "job_number",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
        Index(
            "uq_job_tray_active",
            "lab_id",
            "tray_number",
            unique=True,
            sqlite_where=text("is_active AND tray_number IS NOT NULL"),
            postgresql_where=text("is_active AND tray_number IS NOT NULL"),
        ),
        # Job lists, soonest promised first, one page at a time (API, lab and store pages),
        # all jobs or the active ones (also the WIP board, floor load and flag sweep).
        Index("ix_job_lab_promised", "lab_id", "promised_at", "id"),
        Index("ix_job_lab_active_promised", "lab_id", "is_active", "promised_at", "id"),
        Index("ix_job_store_promised", "store_id", "promised_at", "id"),
        Index("ix_job_store_active_promised", "store_id", "is_active", "promised_at", "id"),
        # A status's jobs in list order, from the index: completed jobs are most of a million.
        # A store's name the lab too (jobs.visible_jobs): its first page's count, up to
        # jobs.COUNT_REACH, reads the index alone.
        Index("ix_job_lab_status_promised", "lab_id", "status", "promised_at", "id"),
        Index("ix_job_store_lab_promised", "store_id", "lab_id", "promised_at", "id"),
        Index("ix_job_store_status_promised", "store_id", "lab_id", "status", "promised_at", "id"),
        # The WIP board (server.domain.views): each stage's active jobs, oldest first, and their
        # counts, without the finished jobs that stay at the last stage. SQLite takes a partial
        # index only for the query's own term, which it writes `is_active = 1`.
        Index(
            "ix_job_lab_wip",
            "lab_id",
            "current_stage_id",
            "state_changed_at",
            "id",
            sqlite_where=text("is_active = 1"),
            postgresql_where=text("is_active"),
        ),
        # A stage's jobs in list order (a station's list); a store's shipped, undelivered jobs.
        Index("ix_job_stage_promised", "current_stage_id", "promised_at", "id"),
        Index("ix_job_store_undelivered", "store_id", "status", "delivered_at"),
        # KPIs (server.domain.kpis): the jobs finished in a period, the lab's or a store's.
        Index("ix_job_lab_status_changed", "lab_id", "status", "state_changed_at"),
        Index("ix_job_store_status_changed", "store_id", "status", "state_changed_at"),
        Index(
            "ix_job_remake_ordered",
            "lab_id",
            "ordered_at",
            sqlite_where=text("remake_of_id IS NOT NULL"),
            postgresql_where=text("remake_of_id IS NOT NULL"),
        ),
        # The store list a tone at a time (views.store_page), each in list order: the flagged
        # jobs (red, then amber), and the undelivered ones without a flag by status (shipped:
        # ready), the lab's and a store's; partial, without the year of delivered jobs. A
        # store's names the lab second: SQLite (no statistics) then takes it for a store's read.
        *(
            Index(
                f"ix_job_{scope}_{name}",
                *columns,
                "promised_at",
                "id",
                sqlite_where=text(where),
                postgresql_where=text(where),
            )
            for scope, keys in (("lab", ("lab_id",)), ("store", ("store_id", "lab_id")))
            for name, columns, where in (
                ("flagged", (*keys, "flag_rank"), "flag_rank IS NOT NULL"),
                (
                    "unflagged_open",
                    (*keys, "status"),
                    "delivered_at IS NULL AND flag_rank IS NULL",
                ),
            )
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    job_number: Mapped[str] = mapped_column(String(32), index=True)
    tray_number: Mapped[str | None] = mapped_column(String(16), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"))
    # Personal data (encrypted, see server.crypto); None once purged after retention.
    patient_ref: Mapped[str | None] = mapped_column(Encrypted(str))
    job_type: Mapped[JobType] = mapped_column(_enum(JobType))
    priority: Mapped[Priority] = mapped_column(_enum(Priority))
    ordered_at: Mapped[datetime]
    promised_at: Mapped[datetime]
    lens_design: Mapped[LensDesign] = mapped_column(_enum(LensDesign))
    lens_material: Mapped[str] = mapped_column(String(64))
    lens_index: Mapped[float]
    surfaced: Mapped[bool]
    treatments: Mapped[list[str]] = mapped_column(JSON, default=list)
    frame: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    special_instructions: Mapped[str] = mapped_column(Text, default="")
    route_id: Mapped[int] = mapped_column(ForeignKey("route.id"))
    # Job state, changed only together with the event that causes it (same transaction).
    current_stage_id: Mapped[int | None] = mapped_column(ForeignKey("stage.id"))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.queued)
    status_before_hold: Mapped[JobStatus | None] = mapped_column(_enum(JobStatus))
    is_active: Mapped[bool] = mapped_column(default=True)
    rework_count: Mapped[int] = mapped_column(default=0)
    breakage_count: Mapped[int] = mapped_column(default=0)
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    eta: Mapped[datetime | None]  # when the job should finish its route, recomputed on change
    # Its worst open flag (flags.flag_rank: 0 red, 1 amber; None: no flag open), set with its
    # flags: the store list's order (red first) read from an index, not from every open job.
    flag_rank: Mapped[int | None] = mapped_column(SmallInteger)
    # After the route: the store's own milestones.
    ready_for_pickup_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    # The frame shape: core.trace.Trace as JSON (radii in 0.01 mm), from DCS or the catalogue.
    trace: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Labels of an imported DCS record that LensTrack has no column for, kept for export.
    dcs_labels: Mapped[dict[str, str] | None] = mapped_column(Encrypted())  # may hold Rx
    # When its ticket was last printed: a batch print takes the jobs never printed.
    ticket_printed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    # A remake points at the job it remakes; the original lists its remakes (`remakes`).
    remake_of_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"), index=True)
    remake_class: Mapped[RemakeClass | None] = mapped_column(_enum(RemakeClass))
    remake_reason: Mapped[str | None] = mapped_column(String(200))
    # When retention purged its patient data (server.domain.personal_data): the production
    # record stays, the patient reference, prescription and personal change values do not.
    personal_data_purged_at: Mapped[datetime | None]
    # The patient declined follow-up contact: no follow-ups are scheduled at delivery.
    contact_declined: Mapped[bool] = mapped_column(default=False, server_default=text("false"))

    store: Mapped[Store] = relationship(lazy="joined")
    route: Mapped[Route] = relationship(lazy="joined")
    current_stage: Mapped[Stage | None] = relationship(lazy="joined")
    prescription: Mapped[list["PrescriptionEye"]] = relationship(
        order_by="PrescriptionEye.eye", cascade="all, delete-orphan", lazy="selectin"
    )
    remake_of: Mapped["Job | None"] = relationship(
        remote_side="Job.id", back_populates="remakes", lazy="selectin"
    )
    remakes: Mapped[list["Job"]] = relationship(
        back_populates="remake_of", order_by="Job.id", lazy="selectin"
    )
    open_flags: Mapped[list["JobFlag"]] = relationship(
        primaryjoin="and_(JobFlag.job_id == Job.id, JobFlag.cleared_at.is_(None))",
        order_by="JobFlag.raised_at",
        viewonly=True,
        lazy="selectin",
    )
    # What the station card marks as changed: values changed by an accepted change request.
    accepted_changes: Mapped[list["JobChange"]] = relationship(
        primaryjoin="and_(JobChange.job_id == Job.id, JobChange.change_request_id.is_not(None))",
        order_by="JobChange.id",
        viewonly=True,
    )

    # The job card's names for what the job reaches through its store and route.
    @property
    def store_code(self) -> str:
        return self.store.code

    @property
    def tolerance_profile(self) -> str | None:
        return self.store.tolerance_profile

    @property
    def route_code(self) -> str:
        return self.route.code

    @property
    def route_stages(self) -> list[Stage]:
        return [step.stage for step in self.route.steps]

    @property
    def flags(self) -> list["JobFlag"]:
        return self.open_flags


class ChangeState(StrEnum):
    pending = "pending"
    accepted = "accepted"
    declined = "declined"


class ChangeRequest(Base):
    """An edit asked for after production started: a lab manager accepts or declines it."""

    __tablename__ = "change_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    # {field: new value} in the order's JSON form (JobCreate field names); encrypted (Rx).
    changes: Mapped[dict[str, Any]] = mapped_column(Encrypted())
    state: Mapped[ChangeState] = mapped_column(_enum(ChangeState), default=ChangeState.pending)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    decided_at: Mapped[datetime | None]
    decline_reason: Mapped[str | None] = mapped_column(String(200))
    # Where an accepted change sent the job back to (None: it stayed where it was).
    return_stage_id: Mapped[int | None] = mapped_column(ForeignKey("stage.id"))
    job: Mapped["Job"] = relationship()
    requested_by: Mapped["Person | None"] = relationship(foreign_keys=[requested_by_id])
    decided_by: Mapped["Person | None"] = relationship(foreign_keys=[decided_by_id])
    return_stage: Mapped["Stage | None"] = relationship()


class JobChange(Base):
    """One changed value of a job's order: old and new, who and when (the job's history)."""

    __tablename__ = "job_change"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    field: Mapped[str] = mapped_column(String(64))  # e.g. "right.sph", "frame", "status"
    # Encrypted: the values of a changed Rx or patient reference are personal data.
    old_value: Mapped[Any] = mapped_column(Encrypted(), nullable=True)
    new_value: Mapped[Any] = mapped_column(Encrypted(), nullable=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    change_request_id: Mapped[int | None] = mapped_column(ForeignKey("change_request.id"))
    person: Mapped["Person | None"] = relationship()


class PrescriptionEye(Base):
    """The ordered Rx for one eye (personal health data: only reachable through its job,
    stored encrypted, deleted by the retention purge)."""

    __tablename__ = "prescription_eye"
    __table_args__ = (UniqueConstraint("job_id", "eye"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    eye: Mapped[Eye] = mapped_column(_enum(Eye))
    sph: Mapped[float] = mapped_column(Encrypted(float))
    cyl: Mapped[float] = mapped_column(Encrypted(float), default=0.0)
    axis: Mapped[int | None] = mapped_column(Encrypted(int))
    add: Mapped[float | None] = mapped_column(Encrypted(float))
    prism: Mapped[float | None] = mapped_column(Encrypted(float))
    prism_base: Mapped[str | None] = mapped_column(Encrypted(str))
    mono_pd: Mapped[float | None] = mapped_column(Encrypted(float))
    fitting_height: Mapped[float | None] = mapped_column(Encrypted(float))
    # mm, when the lens design specifies it
    center_thickness: Mapped[float | None] = mapped_column(Encrypted(float))
    # Compensated powers from the freeform design software: a freeform lens is verified
    # against these, not the written Rx (profile setting use_verification_power).
    verify_sph: Mapped[float | None] = mapped_column(Encrypted(float))
    verify_cyl: Mapped[float | None] = mapped_column(Encrypted(float))
    verify_axis: Mapped[int | None] = mapped_column(Encrypted(int))


class StageEvent(Base):
    """Append-only record of what happened to a job at a station.

    `id` orders events as the server stored them (listeners catch up from a last seen id);
    `event_uuid` is made by the station at scan time and makes resending harmless.
    """

    __tablename__ = "stage_event"
    __table_args__ = (
        Index("ix_stage_event_job", "job_id", "id"),
        Index("ix_stage_event_station_sequence", "station_id", "station_sequence"),
        # Completions since midnight (WIP board), starts and completions of the learning window.
        Index("ix_stage_event_action_at", "action", "corrected_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # The sentinel lets a group's rows go in one INSERT … RETURNING on SQLite too, whose new
    # ids come back in no promised order: they are matched to their rows by this unique UUID.
    event_uuid: Mapped[uuid.UUID] = mapped_column(unique=True, insert_sentinel=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id"))
    station_sequence: Mapped[int] = mapped_column(BigInteger)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("stage.id"))
    action: Mapped[EventAction] = mapped_column(_enum(EventAction))
    reason_code: Mapped[str | None] = mapped_column(String(32))
    override_reason: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    to_stage_id: Mapped[int | None] = mapped_column(ForeignKey("stage.id"))
    device_created_at: Mapped[datetime]
    device_sent_at: Mapped[datetime]
    server_received_at: Mapped[datetime]
    # Device time moved onto the server clock: received − (sent − created).
    corrected_at: Mapped[datetime]

    station: Mapped[Station] = relationship(lazy="joined")
    stage: Mapped[Stage] = relationship(lazy="joined", foreign_keys=[stage_id])
    to_stage: Mapped[Stage | None] = relationship(lazy="joined", foreign_keys=[to_stage_id])
    operator: Mapped[Person | None] = relationship(lazy="joined")

    # The timeline's names.
    @property
    def at(self) -> datetime:
        return self.corrected_at

    @property
    def operator_initials(self) -> str | None:
        return self.operator.initials if self.operator else None


class RejectedEvent(Base):
    """A station event the server could not apply, kept with the reason for the lab to review.

    Its sequence number counts as received, so a rejection is never mistaken for a gap.
    """

    __tablename__ = "rejected_event"
    __table_args__ = (
        Index("ix_rejected_event_station_sequence", "station_id", "station_sequence"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique: a UUID's fate is final, so a resend finds the first rejection, not a new one.
    event_uuid: Mapped[uuid.UUID] = mapped_column(index=True, unique=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id"))
    station_sequence: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    field: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int] = mapped_column(SmallInteger, server_default="422")
    received_at: Mapped[datetime]


class Breakage(Base):
    """Details of a breakage event, for breakage rates and cost by department and shift.

    A lab manager may reverse one booked by mistake; it then leaves the statistics but the
    record (and who reversed it, and why) stays.
    """

    __tablename__ = "breakage"
    __table_args__ = (Index("ix_breakage_occurred", "occurred_at"),)  # KPIs of a period
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("stage_event.id"), unique=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    stage_id: Mapped[int] = mapped_column(ForeignKey("stage.id"))
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id"))
    reason_code: Mapped[str] = mapped_column(String(32))
    part: Mapped[BreakagePart] = mapped_column(_enum(BreakagePart))
    eyes: Mapped[str] = mapped_column(String(2), default="")  # "R", "L", "RL"; "" for a frame
    shift: Mapped[str | None] = mapped_column(String(32))
    cost: Mapped[float]
    currency: Mapped[str] = mapped_column(String(3))
    replacement_blanks: Mapped[list[str]] = mapped_column(JSON, default=list)
    occurred_at: Mapped[datetime]
    reversed_at: Mapped[datetime | None]
    reversed_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    reversal_reason: Mapped[str | None] = mapped_column(String(200))

    job: Mapped[Job] = relationship(lazy="joined")
    stage: Mapped[Stage] = relationship(lazy="joined")
    station: Mapped[Station] = relationship(lazy="joined")


class FlagKind(StrEnum):
    late = "late"
    at_risk = "at_risk"
    stalled = "stalled"
    on_hold = "on_hold"
    rework = "rework"
    breakage = "breakage"


class JobFlag(Base):
    """A raised flag; clearing it keeps the row, so a job's flag history stays readable."""

    __tablename__ = "job_flag"
    __table_args__ = (
        Index(
            "uq_job_flag_open",
            "job_id",
            "kind",
            unique=True,
            sqlite_where=text("cleared_at IS NULL"),
            postgresql_where=text("cleared_at IS NULL"),
        ),
        Index("ix_job_flag_raised", "raised_at", "id"),  # the store page's latest flags
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    kind: Mapped[FlagKind] = mapped_column(_enum(FlagKind))
    reason: Mapped[str] = mapped_column(String(300))
    raised_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]


class JobUpdate(Base):
    """The change feed: one row per change a page or webhook may care about.

    Written in the transaction that makes the change; readers (one per server process) fetch
    rows after the last id they saw, so a missed notification is caught up, never lost.
    """

    __tablename__ = "job_update"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # event, flag_raised, flag_cleared, eta
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StageTime(Base):
    """Learned median minutes at a stage for a route, kept fresh by the periodic sweep."""

    __tablename__ = "stage_time"
    __table_args__ = (UniqueConstraint("route_id", "stage_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("route.id"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("stage.id"))
    median_minutes: Mapped[float]
    samples: Mapped[int]
    updated_at: Mapped[datetime]


class StoreWebhook(Base):
    """An endpoint of a store's own system, told of its jobs' flags and readiness.

    The secret signs each delivery (HMAC-SHA256); it must be readable to sign with, so it is
    stored encrypted with the data keys (server.crypto), not hashed.
    """

    __tablename__ = "store_webhook"
    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(Encrypted(str))
    # Feed kinds to send, e.g. ["flag_raised", "flag_cleared", "job_ready"].
    kinds: Mapped[list[str]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"  # gave up after the last retry


class NotificationDelivery(Base):
    """One feed entry to one destination (webhook or e-mail), or one lab alert to one lab
    manager's e-mail: the outbox and its log.

    Unique per destination and feed entry (alert), so every server process may enqueue the
    same update (alert) and it is still sent once.
    """

    __tablename__ = "notification_delivery"
    __table_args__ = (
        UniqueConstraint("channel", "destination_id", "job_update_id"),
        UniqueConstraint(
            "channel", "destination_id", "lab_alert_id", name="uq_notification_delivery_alert"
        ),
        CheckConstraint(
            "(job_update_id IS NULL) <> (lab_alert_id IS NULL)",
            name="notification_delivery_update_or_alert",
        ),
        Index("ix_notification_delivery_due", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(
        String(16)
    )  # "webhook" (store_webhook.id), "email"/"digest" (store.id), "lab_alert" (person.id)
    destination_id: Mapped[int]
    job_update_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("job_update.id")
    )
    lab_alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("lab_alert.id", name="fk_notification_delivery_lab_alert")
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus), default=DeliveryStatus.pending
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class Inspection(Base):
    """One QC attempt on a job: what was measured, against what, and the verdict.

    Stored with the event that passed (complete) or failed (rework) the job, so it reaches
    the server exactly once through the station's outbox. Attempts count from 1 per job.
    """

    __tablename__ = "inspection"
    __table_args__ = (
        UniqueConstraint("job_id", "attempt"),
        Index("ix_inspection_attempt_at", "attempt", "inspected_at"),  # first-pass yield
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("stage_event.id"), unique=True
    )
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    attempt: Mapped[int]
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    profile: Mapped[str] = mapped_column(String(64))
    design: Mapped[LensDesign] = mapped_column(_enum(LensDesign))
    passed: Mapped[bool]
    ordered: Mapped[dict[str, Any]] = mapped_column(JSON)
    measured: Mapped[dict[str, Any]] = mapped_column(JSON)
    cosmetic: Mapped[dict[str, bool]] = mapped_column(JSON, default=dict)
    inspected_at: Mapped[datetime]
    checks: Mapped[list["InspectionCheck"]] = relationship(
        order_by="InspectionCheck.id", cascade="all, delete-orphan", lazy="selectin"
    )
    defects: Mapped[list["InspectionDefect"]] = relationship(
        order_by="InspectionDefect.id", cascade="all, delete-orphan", lazy="selectin"
    )


class InspectionCheck(Base):
    """One judged quantity, kept as a row so yield and deviation statistics are plain SQL."""

    __tablename__ = "inspection_check"
    __table_args__ = (Index("ix_inspection_check_field", "field", "eye"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(
        ForeignKey("inspection.id", ondelete="CASCADE"), index=True
    )
    eye: Mapped[str | None] = mapped_column(String(1))
    field: Mapped[str] = mapped_column(String(32))
    ordered: Mapped[float]
    measured: Mapped[float]
    deviation: Mapped[float]
    tolerance: Mapped[float]
    passed: Mapped[bool]


class InspectionDefect(Base):
    __tablename__ = "inspection_defect"
    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(
        ForeignKey("inspection.id", ondelete="CASCADE"), index=True
    )
    eye: Mapped[str | None] = mapped_column(String(1))  # None: the pair or the frame
    code: Mapped[str] = mapped_column(String(32))


class AuditEntry(Base):
    """One change (or a store's view of a prescription): who, what, when and from where.

    Append-only and hash-chained: `hash` is SHA-256 over the entry's canonical content and
    `prev_hash`, so editing or deleting a row breaks the chain (`lenstrack audit verify`).
    `detail` names changed personal-data fields but never holds their values.
    """

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_lab_at", "lab_id", "at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    lab_id: Mapped[int | None] = mapped_column(ForeignKey("lab.id"))
    at: Mapped[datetime]
    actor_kind: Mapped[str] = mapped_column(String(16))  # person, station, lab_token, system
    actor_id: Mapped[int | None]
    actor_name: Mapped[str] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(64))  # client address, or "cli"
    action: Mapped[str] = mapped_column(String(48))  # e.g. "job.update", "prescription.view"
    subject: Mapped[str] = mapped_column(String(64), index=True)  # e.g. "job:42"
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class LoginSubject(Base):
    """A user name's or client address's lockout, shared by every server process. Its row is
    also what an attempt locks (`SELECT … FOR UPDATE`), so concurrent attempts count in turn."""

    __tablename__ = "login_subject"
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # "username" or "address"
    # SHA-256 of the user name or address: a password typed as a user name is never stored.
    subject_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    locked_until: Mapped[datetime | None]
    expires_at: Mapped[datetime] = mapped_column(index=True)  # pruned after this


class LoginAttempt(Base):
    """A log-in being checked (`failed` False: it may still fail) or one that failed, counted
    towards its subject's lockout until `expires_at`, then pruned."""

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_subject", "scope", "subject_digest"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    subject_digest: Mapped[str] = mapped_column(String(64))
    failed: Mapped[bool]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class StationSignIn(Base):
    """An operator signing in at a station or out of it, as the station recorded it (offline
    too) and sent through its outbox: an event with a UUID and a sequence number like a job's.
    An operator is signed in at a station from a sign-in until the next sign-out there."""

    __tablename__ = "station_sign_in"
    __table_args__ = (
        Index("ix_station_sign_in_operator", "station_id", "person_id", "device_created_at"),
        Index("ix_station_sign_in_station_sequence", "station_id", "station_sequence"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_uuid: Mapped[uuid.UUID] = mapped_column(unique=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id"))
    station_sequence: Mapped[int] = mapped_column(BigInteger)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    action: Mapped[SignAction] = mapped_column(_enum(SignAction))
    # Device time, the one job events are compared with: the station's own clock and order.
    device_created_at: Mapped[datetime]
    server_received_at: Mapped[datetime]


class StationSequenceMark(Base):
    """How far a station's sequence numbers have all reached the server: every one from 1 to
    `received_through` is stored or rejected (none is ever deleted), so a gap report reads
    only the numbers after it. No row: none known yet."""

    __tablename__ = "station_sequence_mark"
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id"), primary_key=True)
    received_through: Mapped[int] = mapped_column(BigInteger)


class TicketClass(StrEnum):
    """What an after-sales ticket is about; each class has its own resolution target."""

    lens_defect = "lens_defect"
    frame_fit = "frame_fit"
    non_adapt = "non_adapt"
    breakage = "breakage"
    wrong_rx = "wrong_rx"
    delay = "delay"
    other = "other"


class TicketStatus(StrEnum):
    open = "open"  # waiting for the lab
    answered = "answered"  # the lab wrote last
    resolved = "resolved"


class TicketResolution(StrEnum):
    remade = "remade"
    adjusted = "adjusted"
    advice = "advice"
    refunded = "refunded"
    no_fault = "no_fault"
    other = "other"


class AftersalesTicket(Base):
    """A store's complaint about a delivered or shipped job, answered by the lab.

    Its SLA clocks are set when it opens, from the lab's config then, so a later config
    change never moves a promise already made."""

    __tablename__ = "aftersales_ticket"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    ticket_class: Mapped[TicketClass] = mapped_column(_enum(TicketClass))
    subject: Mapped[str] = mapped_column(String(120))
    status: Mapped[TicketStatus] = mapped_column(
        _enum(TicketStatus), default=TicketStatus.open, index=True
    )
    opened_by_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    opened_at: Mapped[datetime]
    first_response_due_at: Mapped[datetime]
    resolution_due_at: Mapped[datetime]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[TicketResolution | None] = mapped_column(_enum(TicketResolution))
    resolution_note: Mapped[str | None] = mapped_column(String(500))
    reopened_count: Mapped[int] = mapped_column(default=0)
    remake_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"))

    job: Mapped[Job] = relationship(foreign_keys=[job_id], lazy="joined")
    remake: Mapped[Job | None] = relationship(foreign_keys=[remake_id])
    opened_by: Mapped[Person] = relationship(foreign_keys=[opened_by_id], lazy="joined")
    owner: Mapped[Person | None] = relationship(foreign_keys=[owner_id], lazy="joined")
    # Read on the ticket's own page only: a list of tickets loads none.
    messages: Mapped[list["TicketMessage"]] = relationship(
        order_by="TicketMessage.id", cascade="all, delete-orphan"
    )


class TicketMessage(Base):
    """One message on a ticket: a person's, or the system's note of what happened."""

    __tablename__ = "ticket_message"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("aftersales_ticket.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))  # None: the system
    from_lab: Mapped[bool]
    body: Mapped[str] = mapped_column(Text)
    written_at: Mapped[datetime]
    author: Mapped[Person | None] = relationship(lazy="joined")


class FollowUpOutcome(StrEnum):
    satisfied = "satisfied"
    adapting = "adapting"
    problem = "problem"  # opens a ticket


class FollowUp(Base):
    """A call to the patient a set number of days after delivery, scheduled when the job is
    delivered (none when the patient declined contact)."""

    __tablename__ = "follow_up"
    __table_args__ = (
        UniqueConstraint("job_id", "days_after"),
        Index("ix_follow_up_due", "done_at", "due_at"),  # the stores' due lists
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"))
    days_after: Mapped[int] = mapped_column(SmallInteger)
    due_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    outcome: Mapped[FollowUpOutcome | None] = mapped_column(_enum(FollowUpOutcome))
    score: Mapped[int | None] = mapped_column(SmallInteger)
    note: Mapped[str | None] = mapped_column(String(500))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("aftersales_ticket.id"))
    job: Mapped[Job] = relationship(lazy="joined")


class PatientLink(Base):
    """A job's status page for its patient: only the token's SHA-256 digest is stored, so the
    link is shown once, when it is made; a new one replaces it."""

    __tablename__ = "patient_link"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    job: Mapped[Job] = relationship(lazy="joined")


class StoreNotificationSetting(Base):
    """What a store wants to hear about its jobs (milestones) and when: as each happens or
    in a daily e-mail digest at `digest_hour` in the lab's time zone. Without a row, the
    defaults of server.notify.preferences apply."""

    __tablename__ = "store_notification_setting"
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"), primary_key=True)
    milestones: Mapped[list[str]] = mapped_column(JSON)
    email_mode: Mapped[str] = mapped_column(String(16))  # "immediate" or "digest"
    digest_hour: Mapped[int] = mapped_column(SmallInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))


class Shipment(Base):
    """How a job left the lab: recorded with the completion at a shipping stage."""

    __tablename__ = "shipment"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("stage_event.id"), unique=True
    )
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    carrier: Mapped[str] = mapped_column(String(40))
    tracking_number: Mapped[str] = mapped_column(String(64))
    box: Mapped[str | None] = mapped_column(String(40))
    shipped_at: Mapped[datetime]


# A job's feed entries in order: which milestone an entry is (the first of its kind?).
Index("ix_job_update_job", JobUpdate.job_id, JobUpdate.id)


# SPC (server.domain.spc): an inspecting station's latest measurements, and every station's
# (a machine's chart walks the latest inspections back to where each lens was processed), in
# the chart's order to the id: PostgreSQL, expecting few rows to pass a chart's tests, sorted
# them all instead of walking the index until the chart had its own.
Index("ix_inspection_station_at", Inspection.station_id, Inspection.inspected_at, Inspection.id)
Index("ix_inspection_at", Inspection.inspected_at, Inspection.id)


class LabAlert(Base):
    """A control chart broke a Western Electric rule (server.domain.spc): shown on the WIP
    board until a lab manager acknowledges it. One open alert per chart and rule; after the
    acknowledgement only a violation at a later point raises the next."""

    __tablename__ = "lab_alert"
    __table_args__ = (
        Index(
            "uq_lab_alert_open",
            "lab_id",
            "chart",
            "rule",
            unique=True,
            sqlite_where=text("acknowledged_at IS NULL"),
            postgresql_where=text("acknowledged_at IS NULL"),
        ),
        Index("ix_lab_alert_chart_rule", "lab_id", "chart", "rule", "point_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    chart: Mapped[str] = mapped_column(String(200))  # server.domain.spc.ChartKey.text
    measure: Mapped[str] = mapped_column(String(16))
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id"))
    rule: Mapped[int] = mapped_column(SmallInteger)  # core.spc.Rule
    side: Mapped[str] = mapped_column(String(8))  # "above" or "below" the centre line
    # The violating point: the lens's job and when it was inspected.
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"))
    point_at: Mapped[datetime]
    message: Mapped[str] = mapped_column(String(300))
    # The violating point's value and the limits it was judged by, as the lab manager's
    # e-mail tells them (None: raised before they were kept).
    value: Mapped[float | None]
    centre_line: Mapped[float | None]
    lower_limit: Mapped[float | None]
    upper_limit: Mapped[float | None]
    raised_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    station: Mapped[Station] = relationship(lazy="joined")
    job: Mapped[Job] = relationship()


class KpiStageTime(Base):
    """A start's queue time or a completion's cycle time at its stage, for the KPI
    dashboards (server.domain.kpis). Written where events are (`kpis.record_stage_times`):
    the figure depends only on the job's earlier events, which never change, so it is worked
    out once per event instead of per dashboard read (a month at a big lab is a million
    events). Cancelled jobs stay here; the dashboards leave them out as they read."""

    __tablename__ = "kpi_stage_time"
    # The durations of one value bucket of a key in a period, which a percentile's rank falls
    # in (KpiStageBucket counts them), covering what is read of them (no row lookups); and a
    # cancelled job's rows, which the dashboards take back out.
    __table_args__ = (
        *(
            Index(
                f"ix_kpi_stage_time_{name}",
                scope,
                "action",
                key,
                "bucket",
                "at",
                "seconds",
                "job_id",
            )
            for name, scope, key in (
                ("lab_stage", "lab_id", "stage_id"),
                ("lab_station", "lab_id", "station_id"),
                ("lab_operator", "lab_id", "operator_id"),
                ("store_stage", "store_id", "stage_id"),
            )
        ),
        Index("ix_kpi_stage_time_job", "job_id"),
    )
    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("stage_event.id"), primary_key=True
    )
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("stage.id"))
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    action: Mapped[EventAction] = mapped_column(_enum(EventAction))  # start or complete
    at: Mapped[datetime]  # the event's corrected_at
    # start: since the job arrived (its latest complete, rework or breakage, else its order);
    # complete: since the latest start at the stage (None without one).
    seconds: Mapped[float | None]
    # kpis.value_bucket(seconds): never decreasing as seconds grow, 1/64 to 1/128 of the value
    # wide; -1 for None.
    bucket: Mapped[int] = mapped_column(server_default=text("-1"))


class KpiDimension(StrEnum):
    stage = "stage"
    station = "station"
    operator = "operator"


class KpiSpan(StrEnum):
    """The days a KPI count row covers: its `day`, the ISO week (Monday first) or the
    calendar month that starts on it, in the lab's zone."""

    day = "day"
    week = "week"
    month = "month"


class KpiStageBucket(Base):
    """How many of KpiStageTime's durations fell in each value bucket, per lab-local day, ISO
    week and calendar month (KpiSpan), key (a stage, station or operator: the dashboards'
    rows) and action, for the lab (store_id 0) and per store (stages only). Added to with
    every recorded time (`kpis.record_stage_times`), so a period's counts are a few thousand
    rows whatever its length (a week's day rows were 25k at 1 M jobs: queue times spread over
    most buckets every day), and only the durations of the buckets a percentile's rank falls
    in are read. Cancelled jobs stay counted; the dashboards take their few rows back out as
    they read."""

    __tablename__ = "kpi_stage_bucket"
    __table_args__ = ({"sqlite_with_rowid": False},)  # the rows in key order: a range read
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"), primary_key=True)
    store_id: Mapped[int] = mapped_column(primary_key=True)  # 0: the whole lab
    action: Mapped[EventAction] = mapped_column(_enum(EventAction), primary_key=True)
    dimension: Mapped[KpiDimension] = mapped_column(_enum(KpiDimension), primary_key=True)
    span: Mapped[KpiSpan] = mapped_column(_enum(KpiSpan), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)  # the span's first, in the lab's zone
    key_id: Mapped[int] = mapped_column(primary_key=True)  # stage, station or person id
    bucket: Mapped[int] = mapped_column(primary_key=True)
    count: Mapped[int]


class KpiJobDimension(StrEnum):
    job = "job"  # no key (""): the store's jobs
    design = "design"
    material = "material"
    station = "station"  # first inspections only
    operator = "operator"


class KpiJobDay(Base):
    """The job-level KPI counts per store, lab-local day, week and month (KpiSpan), and key
    (none, a lens design or material, or for first inspections a station or person id):
    finished jobs, on time, reworked, late by cause (`kpis.LateCause`), and first QC
    inspections (attempt 1) and how many passed. Kept exact as jobs change (`kpis.install`:
    each change takes the job's old counts out and adds its new ones in the same
    transaction), so a period's figures are a few rows per store and key whatever its length.
    A cancelled job counts in none. Rows whose counts went back to 0 stay (the dashboards
    skip them)."""

    __tablename__ = "kpi_job_day"
    __table_args__ = ({"sqlite_with_rowid": False},)  # the rows in key order: a range read
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"), primary_key=True)
    dimension: Mapped[KpiJobDimension] = mapped_column(_enum(KpiJobDimension), primary_key=True)
    span: Mapped[KpiSpan] = mapped_column(_enum(KpiSpan), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)  # the span's first, in the lab's zone
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    finished: Mapped[int]
    on_time: Mapped[int]
    reworked: Mapped[int]
    late_breakage: Mapped[int]
    late_rework: Mapped[int]
    late_hold: Mapped[int]
    late_flow: Mapped[int]
    inspected: Mapped[int]  # first QC inspections
    passed: Mapped[int]
