"""Breakage records for the lab: list, and reverse one booked by mistake."""

from fastapi import APIRouter

from server.api.deps import CurrentPerson, DbSession, RowId
from server.domain import breakage
from server.models import utcnow
from server.schemas import BreakageOut, ReversalIn

router = APIRouter(prefix="/api/breakages", tags=["breakages"])


@router.get("")
def list_breakages(
    person: CurrentPerson, session: DbSession, include_reversed: bool = False
) -> list[BreakageOut]:
    records = breakage.list_breakages(session, person, include_reversed=include_reversed)
    return [BreakageOut.model_validate(record) for record in records]


@router.post("/{breakage_id}/reverse")
def reverse_breakage(
    breakage_id: RowId, reversal: ReversalIn, person: CurrentPerson, session: DbSession
) -> BreakageOut:
    return BreakageOut.model_validate(
        breakage.reverse_breakage(session, person, breakage_id, reversal.reason, utcnow())
    )
