"""Reprint a job's ticket at the station: the server draws it (`GET /api/jobs/{id}/ticket.pdf`,
with the station's token), the station's printer command prints it, or it is saved for the page
to offer. Online only: offline nothing is fetched, queued or lost, and the operator is told.
"""

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from station.settings import PrinterSettings
from station.uplink import Offline, Unauthorised, Uplink

log = logging.getLogger(__name__)


class ReprintFailed(Exception):
    """What went wrong, in words for the operator."""


@dataclass(frozen=True)
class Reprinted:
    message: str
    saved: Path | None = None  # no printer command: the PDF is here, for the page to offer


class TicketPrinter:
    def __init__(self, uplink: Uplink, settings: PrinterSettings, folder: Path) -> None:
        self._uplink = uplink
        self._settings = settings
        self._folder = folder  # where tickets are saved when no command prints them

    async def reprint(self, job_id: int, job_number: str) -> Reprinted:
        try:
            pdf = await self._uplink.fetch_ticket(job_id)
        except Unauthorised as error:
            raise ReprintFailed("The server refused this station's token: no ticket") from error
        except Offline as error:
            raise ReprintFailed(
                f"Offline: the ticket of {job_number} comes from the server. "
                "Reprint it once the station is back online."
            ) from error
        if pdf is None:
            raise ReprintFailed(f"The server has no job {job_number} any more")
        if self._settings.command:
            await self._print(pdf)
            return Reprinted(f"Ticket {job_number} sent to the printer")
        self._folder.mkdir(parents=True, exist_ok=True)
        # Job numbers are scan codes ([A-Za-z0-9-]); anything else never reaches the path.
        path = self._folder / f"ticket-{re.sub(r'[^A-Za-z0-9-]', '_', job_number)}.pdf"
        path.write_bytes(pdf)
        return Reprinted(f"Ticket {job_number} saved: open it to print", saved=path)

    async def _print(self, pdf: bytes) -> None:
        """The command reads the PDF on stdin (`lp` does); no shell, so nothing is parsed."""
        command = self._settings.command or []
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise ReprintFailed(f"Cannot run the printer command {command[0]}: {error}") from error
        try:
            _, stderr = await asyncio.wait_for(
                process.communicate(pdf), self._settings.timeout_seconds
            )
        except TimeoutError as error:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise ReprintFailed("The printer did not answer: check it and try again") from error
        if process.returncode != 0:
            detail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            log.error("printer command %s failed (%s): %s", command, process.returncode, detail)
            raise ReprintFailed(f"The printer refused the ticket: {detail[0]}")
