"""The station's side of the job contract: the models it sends and reads, from `core.contract`.

The server validates events with these same models, so what a station builds the server
accepts; replies ignore fields the station does not use, so the server may add fields freely.
A station PC needs only this package, `core` and `drivers`, never the server code.
"""

from core.contract import (
    BatchReply,
    BreakageDetail,
    DefectIn,
    EventIn,
    EventResult,
    InspectionIn,
    JobCard,
    JobPage,
    JobState,
    JobSummary,
    Operator,
    Reason,
    SequenceGap,
    ShipmentIn,
    SignAction,
    StationMe,
    TimelineEntry,
)
from core.lifecycle import Action, JobStatus

__all__ = [
    "Action",
    "BatchReply",
    "BreakageDetail",
    "DefectIn",
    "EventIn",
    "EventResult",
    "InspectionIn",
    "JobCard",
    "JobPage",
    "JobState",
    "JobStatus",
    "JobSummary",
    "Operator",
    "Reason",
    "SequenceGap",
    "ShipmentIn",
    "SignAction",
    "StationMe",
    "TimelineEntry",
]
