"""The job lifecycle, written once: what each station action does to a job on its route.

The server applies it when it stores an event; the station applies it to show, offline too,
what the server will do. (The transition rules themselves move here next; for now the shared
vocabulary.)
"""

from enum import StrEnum


class JobStatus(StrEnum):
    queued = "queued"  # waiting at its current stage
    in_progress = "in_progress"
    on_hold = "on_hold"
    completed = "completed"  # route finished (shipped)
    cancelled = "cancelled"


class Action(StrEnum):
    """What a station event does; stored as the event's action."""

    start = "start"
    complete = "complete"
    hold = "hold"
    release = "release"
    breakage = "breakage"
    rework = "rework"
    note = "note"
