"""A QC job card with both eyes and a fake API for a final QC station (over `FakeApi`)."""

import httpx

from station.wire import JobCard, Reason
from tests.station.fakes import REASONS, FakeApi, card

QC_REASONS = [
    *REASONS,
    Reason(kind="defect", code="D-POWER", description="Power out", return_stage="generating"),
]
RX = [
    {"eye": "R", "sph": -2.0, "cyl": -0.75, "axis": 180, "mono_pd": 31.5},
    {"eye": "L", "sph": -1.75, "cyl": -0.5, "axis": 10, "mono_pd": 32.0},
]


def qc_card(number: str = "J7", stage: str = "final_qc", status: str = "queued") -> JobCard:
    return JobCard.model_validate(
        {**card(number, stage=stage, status=status).model_dump(), "prescription": RX}
    )


class QcApi(FakeApi):
    """Moves QC jobs like the server: start, pass (complete → shipping), fail (rework)."""

    def __init__(self) -> None:
        super().__init__()
        self.cards = {"J7": qc_card()}

    def _apply(self, event: dict[str, str]) -> None:
        moves = {"start": ("final_qc", "in_progress"), "complete": ("shipping", "queued")}
        if event["action"] in moves:
            self.cards[event["job"]] = qc_card(event["job"], *moves[event["action"]])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/stations/me/reasons":
            return httpx.Response(200, json=[r.model_dump() for r in QC_REASONS])
        return super().__call__(request)
