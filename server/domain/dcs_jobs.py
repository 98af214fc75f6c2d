"""DCS job files ⇄ jobs: an import that creates every job of its files or none, and export.

How a record becomes an order (`JobCreate`):
- job number ← JOB; tray ← `_LT_TRAY`; patient reference ← `_LT_PATIENT`, else the job
  number (DCS names no patient); rush ← `_LT_RUSH=1`.
- store ← `_LT_STORE`, else the importer's default store (`--store`, `?store=`).
- design ← `_LT_DESIGN` (SV, MF or PAL); else SV when no eye has an ADD (ADD 0 is none); else
  the importer's default design (`--design`, `?design=`); else refused at the ADD line, since
  a bifocal and a progressive share every other label.
- surfaced ← `_LT_SURFACED` (1 or 0), else surfaced: job records are what labs send surfacing.
- ordered now; promised ← `_LT_PROMISED` (ISO date, meaning 17:00 in the lab's zone, or an
  ISO date-time with offset), else `DEFAULT_LEAD_TIME` later.
- material ← the lab catalogue's material whose code is the LMATID or LNAM (any case), else
  the first whose index is LIND, among those made in the design; both eyes must agree.
- per eye ← SPH, CYL, AX (0 is 180), ADD, PRVM/PRVA, IPD (mono PD), SEGHT else OCHT
  (fitting height); an eye with no value at all is not ordered. Positive cylinders are taken
  as a plus-cylinder order (transposed when stored); mixed forms are refused.
- frame ← HBOX, VBOX, DBL, FED (right eye's, else the left's); trace ← the TRCFMT blocks (R,
  L; B is one shape, stored as the right and mirrored for the left like any one-sided trace).
- every other label (vendor ones included; a label given more than once keeps its values one
  per line) is kept in `Job.dcs_labels` and written back on export after the job's own.

Every file and record is checked before anything is created, and the jobs are created in one
savepoint: any problem, in any file, refuses the whole import, each problem naming its file
and line. A job number that exists in the lab, active or not, is refused, never overwritten.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.trace import EyeTrace, Trace
from drivers.dcs import (
    EYES,
    VENDOR_PREFIX,
    DcsError,
    EyeFields,
    Field,
    JobFields,
    Record,
    TraceBlock,
    parse,
    prism_angle,
    read_job,
)
from drivers.dcs.job import chiral_field, number_text
from server.domain.auth import MANAGER_ROLES, LabPrincipal, PersonPrincipal, Principal
from server.domain.errors import DomainError, Forbidden
from server.domain.jobs import create_job, lab_catalogue
from server.domain.lab_time import lab_zone
from server.labconfig import CatalogueConfig, MaterialConfig
from server.models import Eye, Job, LensDesign, PrescriptionEye, Priority, utcnow
from server.schemas import JobCreate

DEFAULT_LEAD_TIME = timedelta(days=3)
PROMISED_LOCAL_TIME = time(17, 0)
MAX_FILES = 50
MAX_JOBS = 1_000  # per import: one transaction, and the job-number query's parameters
# Labels the job's own columns carry; export writes them from the job, not from dcs_labels.
MAPPED = frozenset(
    {"JOB", "SPH", "CYL", "AX", "ADD", "PRVM", "PRVA", "IPD", "SEGHT", "LIND", "LNAM"}
    | {"HBOX", "VBOX", "DBL", "FED"}
    | {f"{VENDOR_PREFIX}{name}" for name in ("STORE", "PATIENT", "DESIGN", "SURFACED")}
    | {f"{VENDOR_PREFIX}{name}" for name in ("RUSH", "PROMISED", "TRAY")}
)
# An order field (or its first part) → the label it came from, to name a refusal's line.
SOURCES = {
    "job_number": "JOB",
    "tray_number": "_LT_TRAY",
    "store_code": "_LT_STORE",
    "patient_ref": "_LT_PATIENT",
    "promised_at": "_LT_PROMISED",
    "lens_design": "_LT_DESIGN",
    "lens_material": "LNAM",
    "lens_index": "LIND",
    "surfaced": "_LT_SURFACED",
    "frame.a_mm": "HBOX",
    "frame.b_mm": "VBOX",
    "frame.dbl_mm": "DBL",
    "frame.ed_mm": "FED",
    "trace": "TRCFMT",
    "sph": "SPH",
    "cyl": "CYL",
    "axis": "AX",
    "add": "ADD",
    "prism": "PRVM",
    "prism_base": "PRVA",
    "mono_pd": "IPD",
    "fitting_height": "SEGHT",
    "right": "SPH",  # a check of the whole eye: the line its prescription starts on
    "left": "SPH",
}
Problem = tuple[str, str]  # ("FILE:LINE", message)


@dataclass(frozen=True)
class DcsFile:
    name: str
    content: bytes | str


@dataclass
class ImportedJob:
    order: JobCreate
    labels: dict[str, str]
    job_id: int | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON line `import-dcs` prints (and the API answers) for this job."""
        eyes = {"R": self.order.right, "L": self.order.left}
        trace = self.order.trace
        line: dict[str, Any] = {
            "job_number": self.order.job_number,
            **{
                eye: None if rx is None else rx.model_dump(include={"sph", "cyl", "axis", "add"})
                for eye, rx in eyes.items()
            },
            "ipd": {eye: rx.mono_pd if rx else None for eye, rx in eyes.items()},
            "trace_points": {
                eye: len(side.radii)
                for eye, side in (("R", trace and trace.right), ("L", trace and trace.left))
                if side
            },
            "labels": self.labels,
        }
        return line if self.job_id is None else line | {"job_id": self.job_id}


class ImportRefused(DomainError):
    """Nothing was imported: every problem found, each naming its file and line."""

    def __init__(self, problems: list[Problem], status_code: int) -> None:
        super().__init__(*problems[0])
        self.problems = problems
        self.status_code = status_code


@dataclass
class _Defaults:
    store: str | None
    design: LensDesign | None
    now: datetime
    catalogue: CatalogueConfig
    zone_of_lab: ZoneInfo


@dataclass(frozen=True)
class _Candidate:
    file_name: str
    fields: JobFields
    record: Record
    order: JobCreate
    labels: dict[str, str]

    @property
    def source(self) -> str:
        return f"{self.file_name}:{self.record.line}"

    def problem(self, path: str, message: str) -> Problem:
        line, label = _origin(self.fields, self.record, path)
        return f"{self.file_name}:{line}", f"{label}: {message} ({path})"


def import_jobs(
    session: Session,
    principal: Principal,
    files: Sequence[DcsFile],
    *,
    store: str | None = None,
    design: LensDesign | None = None,
    dry_run: bool = False,
) -> list[ImportedJob]:
    """Creates the jobs of every record of `files`, or none (ImportRefused). A dry run checks
    exactly as much, create_job included, and rolls its savepoint back."""
    person = isinstance(principal, PersonPrincipal) and principal.role in MANAGER_ROLES
    if not (person or isinstance(principal, LabPrincipal)):
        raise Forbidden("role", "only lab managers, admins and lab tokens import DCS files")
    if not 1 <= len(files) <= MAX_FILES:
        raise ImportRefused([("files", f"send 1 to {MAX_FILES} files")], 422)
    catalogue, zone = lab_catalogue(session, principal.lab_id), lab_zone(session, principal.lab_id)
    defaults = _Defaults(store, design, utcnow(), catalogue, zone)
    problems: list[Problem] = []
    candidates: list[_Candidate] = []
    for dcs_file in files:
        try:
            records = parse(dcs_file.content, dcs_file.name)
        except DcsError as error:
            problems.append(_problem(error))
            continue
        for record in records:
            try:
                candidates.append(_candidate(dcs_file.name, record, defaults))
            except DcsError as error:
                error.source = dcs_file.name
                problems.append(_problem(error))
    if len(candidates) > MAX_JOBS:
        problems.append(("files", f"more than {MAX_JOBS} jobs in one import"))
    if problems:
        raise ImportRefused(problems, 422)
    _check_numbers(session, principal.lab_id, candidates)
    return _create(session, principal, candidates, dry_run)


def _problem(error: DcsError) -> Problem:
    return f"{error.source}:{error.line}", error.message


def _check_numbers(session: Session, lab_id: int, candidates: list[_Candidate]) -> None:
    numbers = [candidate.order.job_number for candidate in candidates]
    taken = set(
        session.scalars(
            select(Job.job_number).where(Job.lab_id == lab_id, Job.job_number.in_(numbers))
        )
    )
    problems: list[Problem] = []
    first: dict[str, str] = {}
    for candidate, number in zip(candidates, numbers, strict=True):
        if number in first:
            twice = f"job {number} is in this import twice (first at {first[number]})"
            problems.append((candidate.source, twice))
        elif number in taken:
            problems.append((candidate.source, f"job {number} exists already; not overwritten"))
        first.setdefault(number, candidate.source)
    if problems:
        raise ImportRefused(problems, 409)


def _create(
    session: Session, principal: Principal, candidates: list[_Candidate], dry_run: bool
) -> list[ImportedJob]:
    problems: list[Problem] = []
    imported: list[ImportedJob] = []
    savepoint = session.begin_nested()
    for candidate in candidates:
        try:
            job = create_job(session, principal, candidate.order)
        except DomainError as error:
            problems += [candidate.problem(path, text) for path, text in error.problems]
            continue
        job.dcs_labels = candidate.labels or None
        session.flush()
        imported.append(ImportedJob(candidate.order, candidate.labels, job.id))
    if problems or dry_run:
        savepoint.rollback()
        for entry in imported:
            entry.job_id = None
    else:
        savepoint.commit()
    if problems:
        raise ImportRefused(problems, 422)
    return imported


def _candidate(name: str, record: Record, defaults: _Defaults) -> _Candidate:
    fields = read_job(record)
    body = _order_body(fields, record, defaults)
    try:
        order = JobCreate.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        line, label = _origin(fields, record, path)
        message = first["msg"].removeprefix("Value error, ")
        raise DcsError(line, f"{label}: {message} ({path})") from None
    return _Candidate(name, fields, record, order, kept_labels(record))


def _origin(fields: JobFields, record: Record, path: str) -> tuple[int, str]:
    """The line and label an order field came from (the JOB line when none did)."""
    parts = path.split(".")
    key = path if path in SOURCES else parts[-1] if parts[0] in ("right", "left") else parts[0]
    label = SOURCES.get(key, "JOB")
    if label == "TRCFMT" and record.traces:
        return record.traces[0].line, label
    return fields.lines.get(label, record.line), label


def _order_body(fields: JobFields, record: Record, defaults: _Defaults) -> dict[str, Any]:
    vendor, lines = fields.vendor, fields.lines
    store = vendor.get("STORE") or defaults.store
    if not store:
        raise DcsError(lines["JOB"], "no store: add _LT_STORE=CODE or give a default store")
    design = _design(fields, defaults.design)
    material = _material(fields, design, defaults.catalogue)
    eyes = {eye: _eye(fields.eye(eye)) for eye in EYES}
    cylinders = [rx["cyl"] for rx in eyes.values() if rx and rx.get("cyl")]
    return {
        "job_number": fields.job,
        "tray_number": vendor.get("TRAY"),
        "store_code": store,
        "patient_ref": vendor.get("PATIENT") or fields.job,
        "priority": Priority.rush if vendor.get("RUSH") == "1" else Priority.regular,
        "ordered_at": defaults.now,
        "promised_at": _promised(fields, defaults),
        "lens_design": design,
        "lens_material": material.code,
        "lens_index": material.index,
        "surfaced": _flag(fields, "SURFACED", default=True),
        "frame": _frame(fields),
        "right": eyes["R"],
        "left": eyes["L"],
        "cylinder_form": "plus" if cylinders and all(c > 0 for c in cylinders) else "minus",
        "trace": _trace(record.traces),
    }


def _design(fields: JobFields, default: LensDesign | None) -> LensDesign:
    named = fields.vendor.get("DESIGN")
    if named is not None:
        if named not in LensDesign.__members__:
            raise DcsError(fields.lines["_LT_DESIGN"], f"_LT_DESIGN {named!r} is not SV, MF or PAL")
        return LensDesign(named)
    if not any(fields.eye(eye).add for eye in EYES):
        return LensDesign.SV
    if default is None:
        advice = "add _LT_DESIGN=MF or PAL, or give a default design"
        raise DcsError(fields.lines["ADD"], f"an ADD but no design: {advice}")
    return default


def _material(fields: JobFields, design: LensDesign, catalogue: CatalogueConfig) -> MaterialConfig:
    made = [m for m in catalogue.materials if design in m.designs]
    by_code = {m.code.upper(): m for m in made}
    for attribute in ("material_id", "lens_name"):  # LMATID, then LNAM
        names = {getattr(fields.eye(eye), attribute) for eye in EYES} - {None}
        found = [by_code[name.upper()] for name in names if name.upper() in by_code]
        if len(found) == 1:
            return found[0]
    indices = {fields.eye(eye).lens_index for eye in EYES} - {None}
    line = fields.lines.get("LIND", fields.lines["JOB"])
    if len(indices) != 1:
        missing = "no LIND, and no LMATID or LNAM naming a catalogue material"
        raise DcsError(
            line, "LIND: the eyes differ; a job has one material" if indices else missing
        )
    index = indices.pop()
    for material in made:
        if math.isclose(material.index, index, abs_tol=0.0005):
            return material
    offered = ", ".join(f"{m.code} {m.index:g}" for m in made) or "none"
    raise DcsError(line, f"LIND: no {design} material of index {index:g} ({offered})")


def _eye(eye: EyeFields) -> dict[str, Any] | None:
    rx = {
        "sph": eye.sph,
        "cyl": eye.cyl,
        "axis": 180 if eye.axis == 0 else eye.axis,
        "add": eye.add or None,
        "prism": eye.prism,
        "prism_base": eye.prism_base,
        "mono_pd": eye.mono_pd,
        "fitting_height": eye.seg_height if eye.seg_height is not None else eye.oc_height,
    }
    present = {name: value for name, value in rx.items() if value is not None}
    return present or None


def _frame(fields: JobFields) -> dict[str, float]:
    sizes = {
        "a_mm": fields.right.hbox or fields.left.hbox,
        "b_mm": fields.right.vbox or fields.left.vbox,
        "dbl_mm": fields.dbl,
        "ed_mm": fields.right.fed or fields.left.fed,
    }
    return {name: value for name, value in sizes.items() if value}


def _flag(fields: JobFields, name: str, default: bool) -> bool:
    text = fields.vendor.get(name)
    if text is None:
        return default
    if text not in ("0", "1"):
        raise DcsError(fields.lines[VENDOR_PREFIX + name], f"{VENDOR_PREFIX}{name}: 1 or 0")
    return text == "1"


def _promised(fields: JobFields, defaults: _Defaults) -> datetime:
    text = fields.vendor.get("PROMISED")
    if text is None:
        return defaults.now + DEFAULT_LEAD_TIME
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, PROMISED_LOCAL_TIME, defaults.zone_of_lab)
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise DcsError(
            fields.lines["_LT_PROMISED"],
            f"_LT_PROMISED {text[:40]!r}: a date (2026-12-24) or a date-time with offset",
        )
    return moment


def _trace(blocks: list[TraceBlock]) -> Trace | None:
    if not blocks:
        return None
    sides: dict[str, EyeTrace] = {}
    for block in blocks:
        angles = None if block.angles is None else tuple(a / 100 for a in block.angles)
        try:
            eye_trace = EyeTrace(radii=block.radii, angles=angles)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise DcsError(block.line, f"TRCFMT: {where}: {problem['msg']}") from None
        sides["left" if block.side == "L" else "right"] = eye_trace
    return Trace(**sides)


def kept_labels(record: Record) -> dict[str, str]:
    """Labels no job column carries, in order; a repeated label's values one per line."""
    kept: dict[str, str] = {}
    for item in record.fields:
        if item.label not in MAPPED:
            previous = kept.get(item.label)
            kept[item.label] = item.value if previous is None else f"{previous}\n{item.value}"
    return kept


def job_record(job: Job) -> Record:
    """The job as a DCS record: its own labels, then the kept ones, then its trace."""
    rx = {line.eye: line for line in job.prescription}

    def chiral(label: str, text: Callable[[PrescriptionEye], str]) -> Field | None:
        right, left = (text(rx[eye]) if eye in rx else "" for eye in (Eye.R, Eye.L))
        return chiral_field(label, right, left) if right or left else None

    def decimal(name: str) -> Callable[[PrescriptionEye], str]:
        return lambda line: number_text(getattr(line, name))

    def base_angle(line: PrescriptionEye) -> str:
        return str(prism_angle(line.eye, line.prism_base)) if line.prism_base else ""

    vendor = {
        "STORE": job.store.code,
        "PATIENT": job.patient_ref,
        "DESIGN": job.lens_design.value,
        "SURFACED": "1" if job.surfaced else "0",
        "PROMISED": job.promised_at.isoformat(),
        "RUSH": "1" if job.priority == Priority.rush else None,
        "TRAY": job.tray_number,
    }
    index, material = number_text(job.lens_index, 3), job.lens_material
    entries = [
        Field("JOB", job.job_number),
        *(Field(VENDOR_PREFIX + name, value) for name, value in vendor.items() if value),
        chiral("SPH", decimal("sph")),
        chiral("CYL", lambda line: number_text(line.cyl)),
        chiral("AX", lambda line: "" if line.axis is None else str(line.axis)),
        chiral("ADD", decimal("add")),
        chiral("PRVM", decimal("prism")),
        chiral("PRVA", base_angle),
        chiral("IPD", decimal("mono_pd")),
        chiral("SEGHT", decimal("fitting_height")),
        chiral_field("LIND", index, index),
        chiral_field("LNAM", material, material),
    ]
    for label, key in (("HBOX", "a_mm"), ("VBOX", "b_mm"), ("FED", "ed_mm")):
        if key in job.frame:
            size = number_text(job.frame[key])
            entries.append(chiral_field(label, size, size))
    if "dbl_mm" in job.frame:
        entries.append(Field("DBL", number_text(job.frame["dbl_mm"])))
    for label, values in (job.dcs_labels or {}).items():
        entries += [Field(label, value) for value in values.split("\n")]
    blocks = _trace_blocks(Trace.model_validate(job.trace)) if job.trace else []
    return Record((*(entry for entry in entries if entry is not None), *blocks))


def _trace_blocks(trace: Trace) -> list[TraceBlock]:
    blocks = []
    for side, eye_trace in (("R", trace.right), ("L", trace.left)):
        if eye_trace is None:
            continue
        angles = None
        if eye_trace.angles is not None:
            angles = tuple(round(angle * 100) for angle in eye_trace.angles)
        blocks.append(
            TraceBlock(side, eye_trace.radii, angles, "E" if angles is None else "U", "F")
        )
    return blocks
