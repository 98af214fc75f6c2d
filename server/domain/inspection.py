"""QC inspections: the measured lenses judged against the ordered Rx with the shared engine.

The station judges with the same engine offline; the server judges again on receipt so the
stored verdict never depends on a station's version or clock.
"""

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.optics import CheckResult, PairRx, ProfileError, ToleranceFile, check_pair
from core.optics import ordered_pair as optics_ordered_pair
from server.domain.errors import Conflict, Invalid
from server.models import (
    EventAction,
    Inspection,
    InspectionCheck,
    InspectionDefect,
    Job,
    ReasonCode,
    ReasonKind,
    StageEvent,
    Store,
)
from server.schemas import (
    InspectionCheckOut,
    InspectionDefectOut,
    InspectionIn,
    InspectionOut,
)


def ordered_pair(job: Job) -> PairRx:
    return optics_ordered_pair(job.prescription)


def judge(
    session: Session, job: Job, inspection: InspectionIn, tolerances: ToleranceFile
) -> tuple[str, PairRx, CheckResult]:
    """The profile used, the ordered pair and the engine's result; Invalid on bad input.

    A store's own profile is what the lab promised that store, so it wins over the profile the
    station judged with (a station's setting is its default for stores without one).
    """
    store_profile = session.scalar(select(Store.tolerance_profile).where(Store.id == job.store_id))
    name = store_profile or inspection.profile or tolerances.default
    try:
        profile = tolerances.profile(name)
    except ProfileError as error:
        raise Invalid("inspection.profile", str(error)) from error
    try:
        measured = PairRx.model_validate(inspection.measured)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Invalid(f"inspection.measured.{where}", first["msg"]) from error
    ordered = ordered_pair(job)
    return name, ordered, check_pair(ordered, measured, job.lens_design.value, profile)


def check_verdict(action: EventAction, inspection: InspectionIn, result: CheckResult) -> None:
    """A pass needs every check, every cosmetic item and no defect; a fail needs a defect."""
    if action != EventAction.complete:
        return
    failed = [check for check in result.checks if not check.passed]
    if failed:
        worst = failed[0]
        eye = f"{worst.eye} " if worst.eye else ""
        raise Conflict(
            "inspection",
            f"cannot pass: {eye}{worst.field} is off by {worst.deviation:g} "
            f"(tolerance {worst.tolerance:g}); fail it with a defect code",
        )
    rejected = [item for item, ok in inspection.cosmetic.items() if not ok]
    if rejected or inspection.defects:
        raise Conflict("inspection", "cannot pass with a failed cosmetic item or a defect")


def validate_defects(session: Session, lab_id: int, inspection: InspectionIn) -> None:
    codes = {d.code for d in inspection.defects}
    known = set(
        session.scalars(
            select(ReasonCode.code).where(
                ReasonCode.lab_id == lab_id,
                ReasonCode.kind == ReasonKind.defect,
                ReasonCode.code.in_(codes),
            )
        )
    )
    for index, defect in enumerate(inspection.defects):
        if defect.code not in known:
            raise Invalid(
                f"inspection.defects.{index}.code", f"{defect.code!r} is not a defect code"
            )


def record_inspection(
    session: Session,
    job: Job,
    event: StageEvent,
    inspection: InspectionIn,
    judged: tuple[str, PairRx, CheckResult],
) -> Inspection:
    profile, ordered, result = judged
    attempt = 1 + (
        session.scalar(select(func.count(Inspection.id)).where(Inspection.job_id == job.id)) or 0
    )
    row = Inspection(
        event_id=event.id,
        job_id=job.id,
        attempt=attempt,
        station_id=event.station_id,
        operator_id=event.operator_id,
        profile=profile,
        design=job.lens_design,
        passed=event.action == EventAction.complete,
        ordered=ordered.model_dump(mode="json", exclude_none=True),
        measured=inspection.measured,
        cosmetic=inspection.cosmetic,
        inspected_at=event.corrected_at,
        checks=[
            InspectionCheck(
                eye=check.eye,
                field=check.field,
                ordered=check.ordered,
                measured=check.measured,
                deviation=check.deviation,
                tolerance=check.tolerance,
                passed=check.passed,
            )
            for check in result.checks
        ],
        defects=[InspectionDefect(eye=d.eye, code=d.code) for d in inspection.defects],
    )
    session.add(row)
    return row


def job_inspections(session: Session, job: Job) -> list[InspectionOut]:
    descriptions = dict(
        session.execute(
            select(ReasonCode.code, ReasonCode.description).where(
                ReasonCode.lab_id == job.lab_id, ReasonCode.kind == ReasonKind.defect
            )
        ).all()
    )
    rows = session.execute(
        select(Inspection, StageEvent)
        .join(StageEvent, Inspection.event_id == StageEvent.id)
        .where(Inspection.job_id == job.id)
        .order_by(Inspection.attempt)
    ).all()
    return [
        InspectionOut(
            id=inspection.id,
            attempt=inspection.attempt,
            passed=inspection.passed,
            profile=inspection.profile,
            station=event.station.name,
            inspected_at=inspection.inspected_at,
            cosmetic=inspection.cosmetic,
            checks=[InspectionCheckOut.model_validate(check) for check in inspection.checks],
            defects=[
                InspectionDefectOut(
                    eye=defect.eye, code=defect.code, description=descriptions.get(defect.code, "")
                )
                for defect in inspection.defects
            ],
        )
        for inspection, event in rows
    ]
