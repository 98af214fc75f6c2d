"""Small fakes for station unit tests: cards, operators, reasons, a scripted card source, and
an in-process fake API for a MockTransport."""

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from core.labels import StationLabels
from station.outbox import CachedCard, Outbox
from station.wire import JobCard, Operator, Reason

ROUTE = ["edging", "fitting", "final_qc", "shipping"]
OPERATORS = [Operator(badge_code="B1001", name="Tom Baker", initials="TB", role="technician")]
REASONS = [
    Reason(kind="hold", code="H-FRAME", description="Waiting for frame", return_stage=None),
    Reason(kind="breakage", code="B-CHIP", description="Chip at edging", return_stage=None),
    Reason(kind="defect", code="D-FIT", description="Frame fit", return_stage="fitting"),
]
LAB_CONFIG = Path(__file__).parents[2] / "config" / "lab.example.toml"
# What the server serves: the example lab's tables and its stages' names.
LABELS = StationLabels.model_validate(
    {
        **tomllib.loads(LAB_CONFIG.read_text())["labels"],
        "stages": {code: code.title() for code in ROUTE},
    }
)


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


NEXT = {"start": ("edging", "in_progress"), "complete": ("fitting", "queued")}


class FakeApi:
    """Answers like the server, moving a job on start and complete."""

    def __init__(self) -> None:
        self.online = True
        self.answer_at_most: int | None = None  # answer for only the first N of a batch
        self.events: list[dict[str, object]] = []
        self.cards = {"J1": card("J1"), "J2": card("J2", stage="fitting")}
        self.labels: StationLabels | None = LABELS  # None: a server from before labels

    def _apply(self, event: dict[str, str]) -> None:
        if event["action"] in NEXT and event["job"] in self.cards:
            stage, status = NEXT[event["action"]]
            self.cards[event["job"]] = card(event["job"], stage=stage, status=status)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.online:
            raise httpx.ConnectError("network pulled")
        path = request.url.path
        if path == "/api/health":
            return httpx.Response(200, json={"status": "ok"})
        if path == "/api/stations/me":
            stage = {"code": "edging", "name": "Edging"}
            return httpx.Response(200, json={"name": "EDGE-1", "stage": stage, "last_sequence": 0})
        if path == "/api/stations/me/operators":
            return httpx.Response(200, json=[o.model_dump() for o in OPERATORS])
        if path == "/api/stations/me/reasons":
            return httpx.Response(200, json=[r.model_dump() for r in REASONS])
        if path == "/api/stations/me/labels" and self.labels is not None:
            return httpx.Response(200, content=self.labels.model_dump_json())
        if path == "/api/jobs":
            return httpx.Response(200, json={"total": 0, "items": []})
        if path.startswith("/api/jobs/lookup/"):
            code = path.rsplit("/", 1)[1]
            found = [c for c in self.cards.values() if code in (c.job_number, c.tray_number)]
            if not found:
                return httpx.Response(404, json={"detail": [{"field": "job", "message": "no"}]})
            return httpx.Response(200, content=found[0].model_dump_json())
        if path.endswith("/timeline"):
            return httpx.Response(200, json=[])
        if path == "/api/events/batch":
            events = json.loads(request.content)["events"][: self.answer_at_most]
            self.events += events
            for event in events:
                self._apply(event)
            results = [{"event_uuid": e["event_uuid"], "status": "stored"} for e in events]
            return httpx.Response(200, json={"results": results, "sequence_gaps": []})
        return httpx.Response(404)
