"""A child process of a command that starts several (`lenstrack demo`, `lenstrack
serve-group`): the log it writes, the last lines of that log, and a failure that names it.

How the children are started, awaited and stopped differs between the two commands (the
group's parts run in sessions of their own and stop on SIGTERM; the demo's get SIGINT), so
only what a child *is* lives here.
"""

import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

LOG_TAIL_LINES = 20


@dataclass
class ChildProcess:
    """One process, with the log it writes and the URL that answers once it is up."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str | None  # None: a headless part, watched only for exiting
    started_at: float = field(default_factory=time.monotonic)

    def log_tail(self) -> str:
        try:
            with self.log.open(errors="replace") as text:
                return "".join(deque(text, maxlen=LOG_TAIL_LINES)).rstrip()
        except OSError as error:
            return f"(cannot read {self.log}: {error})"


class ChildFailed(Exception):
    """A child exited, or stayed silent past its deadline; the message says which and ends
    with the last lines of its log."""

    def __init__(self, child: ChildProcess, why: str) -> None:
        super().__init__(f"{child.name} {why}; the last lines of {child.log}:\n{child.log_tail()}")
