"""Job tickets: what a ticket prints (`TicketJob`, built from a job by `ticket_job`), and
`render_tickets`, the PDF (drawn by `server.ticket_pdf`, one ticket per page).

The drawing libraries (ReportLab, zxing-cpp, NumPy) load on the first ticket a process
prints: a server process that never prints one (most of a serve group's) never holds them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from core.labels import Labels, human, readable
from core.trace import Trace
from server.domain.lab_time import local_text
from server.models import Job, Lab, Priority


@dataclass(frozen=True)
class TicketEye:
    eye: str  # "R" or "L"
    sph: float
    cyl: float = 0.0
    axis: int | None = None
    add: float | None = None
    prism: float | None = None
    prism_base: str | None = None  # in, out, up, down or an angle in degrees
    mono_pd: float | None = None
    fitting_height: float | None = None


@dataclass(frozen=True)
class TicketJob:
    """Everything a ticket prints, in words people read (no identifiers, no database)."""

    job_number: str
    store_code: str
    store_name: str
    due: str  # the promised time in the lab's time zone, e.g. "Thu 05 Dec 14:30"
    tray_number: str | None = None
    patient_ref: str = ""
    job_type: str = "New"
    rush: bool = False
    remake_of: str | None = None  # the original's job number
    remake_class: str | None = None
    eyes: tuple[TicketEye, ...] = ()  # R before L
    design: str = ""
    material: str = ""
    index: float | None = None
    surfaced: bool = False
    treatments: tuple[str, ...] = ()
    frame_type: str | None = None
    frame_sizes: tuple[tuple[str, float], ...] = ()  # ("A", 52.0), ("DBL", 18.0)…
    frame_code: str | None = None
    frame_model: str | None = None
    route: tuple[str, ...] = ()  # stage names in order
    special_instructions: str = ""
    trace: Trace | None = None


FRAME_SIZES = ("a_mm", "b_mm", "dbl_mm", "ed_mm")


def ticket_job(job: Job, lab: Lab) -> TicketJob:
    """The ticket of `job`, named as the lab names things (its labels, its time zone)."""
    labels = Labels.model_validate(lab.labels or {})
    frame = job.frame or {}
    eyes = sorted(job.prescription, key=lambda eye: "RL".index(eye.eye))
    return TicketJob(
        job_number=job.job_number,
        tray_number=job.tray_number,
        store_code=job.store.code,
        store_name=job.store.name,
        due=local_text(job.promised_at, ZoneInfo(lab.timezone)),
        patient_ref=job.patient_ref or "",  # none once purged
        job_type=readable(job.job_type),
        rush=job.priority == Priority.rush,
        remake_of=job.remake_of.job_number if job.remake_of else None,
        remake_class=readable(job.remake_class) if job.remake_class else None,
        eyes=tuple(
            TicketEye(
                eye=eye.eye,
                sph=eye.sph,
                cyl=eye.cyl,
                axis=eye.axis,
                add=eye.add,
                prism=eye.prism,
                prism_base=eye.prism_base,
                mono_pd=eye.mono_pd,
                fitting_height=eye.fitting_height,
            )
            for eye in eyes
        ),
        design=human(labels.designs, job.lens_design),
        material=job.lens_material,
        index=job.lens_index,
        surfaced=job.surfaced,
        treatments=tuple(human(labels.treatments, t) for t in job.treatments),
        frame_type=human(labels.frame_types, frame["type"]) if frame.get("type") else None,
        frame_sizes=tuple(
            (human(labels.frame, key), float(frame[key]))
            for key in FRAME_SIZES
            if frame.get(key) is not None
        ),
        frame_code=frame.get("code"),
        frame_model=frame.get("description"),
        route=tuple(stage.name for stage in job.route_stages),
        special_instructions=job.special_instructions,
        trace=Trace.model_validate(job.trace) if job.trace else None,
    )


def render_tickets(jobs: Sequence[TicketJob]) -> bytes:
    """One PDF, one 4 × 6 in page per job, in the order given."""
    from server import ticket_pdf  # the drawing libraries, on the first ticket printed

    return ticket_pdf.render_tickets(jobs)
