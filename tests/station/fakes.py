"""Small fakes for station unit tests: cards, operators, reasons, and a scripted card source."""

from datetime import UTC, datetime, timedelta

from station.outbox import CachedCard, Outbox
from station.wire import JobCard, Operator, Reason

ROUTE = ["edging", "fitting", "final_qc", "shipping"]
OPERATORS = [Operator(badge_code="B1001", name="Tom Baker", initials="TB", role="technician")]
REASONS = [
    Reason(kind="hold", code="H-FRAME", description="Waiting for frame", return_stage=None),
    Reason(kind="breakage", code="B-CHIP", description="Chip at edging", return_stage=None),
    Reason(kind="defect", code="D-FIT", description="Frame fit", return_stage="fitting"),
]


def card(number: str = "J1", stage: str | None = "edging", status: str = "queued") -> JobCard:
    return JobCard.model_validate(
        {
            "id": int(number[1:]),
            "job_number": number,
            "tray_number": f"T{number[1:]}",
            "store_code": "NORTH",
            "job_type": "new",
            "priority": "rush",
            "promised_at": datetime.now(UTC) + timedelta(hours=5),
            "lens_design": "SV",
            "lens_material": "CR-39",
            "lens_index": 1.5,
            "surfaced": False,
            "treatments": ["ar"],
            "frame": {"type": "full_rim"},
            "special_instructions": "",
            "route_stages": [{"code": code, "name": code.title()} for code in ROUTE],
            "current_stage": {"code": stage, "name": stage.title()} if stage else None,
            "status": status,
            "prescription": [{"eye": "R", "sph": -1.25, "cyl": -0.5, "axis": 90}],
        }
    )


class FakeSource:
    """The uplink as the flow sees it: cards from a dict, or offline."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.cards: dict[str, JobCard] = {}
        self.online = True
        self.woken = 0

    async def fetch_card(self, code: str, timeout: float | None = None) -> CachedCard | None:
        if not self.online:
            raise ConnectionError("offline")
        found = next(
            (c for c in self.cards.values() if code in (c.job_number, c.tray_number)), None
        )
        if found is None:
            return None
        self.outbox.put_card(found, [], self.outbox.replied_through())
        return self.outbox.card(found.job_number)

    def operators(self) -> list[Operator]:
        return OPERATORS

    def reasons(self) -> list[Reason]:
        return REASONS

    def wake(self) -> None:
        self.woken += 1
