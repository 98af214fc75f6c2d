"""The audit trail for lab managers (`/lab/audit`): the lab's entries newest first, filtered
by who, action, record and days, a page at a time, and the hash chain verified on demand —
what `lenstrack audit show` and `audit verify` give an operator with a shell."""

import asyncio
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from pydantic import Field

from server.context import ServerContext
from server.domain import audit
from server.domain.auth import MANAGER_ROLES, PersonPrincipal
from server.models import AuditEntry
from server.pages.access import admit, page_header

AUDIT_PAGE = "/lab/audit"
PAGE_SIZE = 50
NO_WRAP = "white-space: nowrap"
COLUMNS = [
    {"name": "id", "label": "#", "field": "id", "align": "right"},
    {"name": "at", "label": "When (UTC)", "field": "at", "align": "left", "style": NO_WRAP},
    {"name": "who", "label": "Who", "field": "who", "align": "left"},
    {"name": "source", "label": "From", "field": "source", "align": "left"},
    {"name": "action", "label": "Action", "field": "action", "align": "left", "style": NO_WRAP},
    {"name": "subject", "label": "Record", "field": "subject", "align": "left", "style": NO_WRAP},
    {"name": "detail", "label": "Detail", "field": "detail", "align": "left"},
]


class AuditPageQuery(audit.EntryFilter):
    before: int | None = Field(None, ge=1, le=2**31 - 1, description="entries older than this id")

    def link(self, **changes: Any) -> str:
        """This page with these criteria, `changes` applied; empty ones left out."""
        criteria = self.model_dump(mode="json") | changes
        return f"{AUDIT_PAGE}?{urlencode({k: v for k, v in criteria.items() if v})}"


def _row(entry: AuditEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "at": entry.at.strftime("%Y-%m-%d %H:%M:%S"),
        "who": f"{entry.actor_name} ({entry.actor_kind.replace('_', ' ')})",
        "source": entry.source,
        "action": entry.action,
        "subject": entry.subject,
        "detail": " · ".join(f"{key}: {_value_text(value)}" for key, value in entry.detail.items()),
    }


def _value_text(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _read_page(
    context: ServerContext, lab_id: int, query: AuditPageQuery
) -> list[dict[str, object]]:
    with context.db.read_session() as session:
        found = audit.lab_entries(session, lab_id, query, query.before, PAGE_SIZE + 1)
        return [_row(entry) for entry in found]


def _verify(context: ServerContext) -> audit.Verdict:
    with context.db.read_session() as session:
        return audit.verify(session)


def _filters(query: AuditPageQuery) -> None:
    with ui.row().classes("items-end gap-3"):
        who = ui.input("Who", value=query.who or "").props("clearable")
        action = ui.input("Action", value=query.action or "", placeholder="job.update or job")
        subject = ui.input("Record", value=query.subject or "", placeholder="job:42")
        since = ui.input("From day", value=str(query.since or "")).props("type=date stack-label")
        until = ui.input("To day", value=str(query.until or "")).props("type=date stack-label")

        def apply() -> None:
            # A new search starts at the newest entry; the server checks every value.
            criteria = {"who": who.value, "action": action.value, "subject": subject.value}
            criteria |= {"since": since.value, "until": until.value, "before": None}
            ui.navigate.to(query.link(**criteria))

        for field in (who, action, subject):
            field.on("keydown.enter", apply)
        ui.button("Filter", on_click=apply).props("unelevated icon=filter_alt")
        ui.link("Clear", AUDIT_PAGE)


def _chain_check(context: ServerContext) -> None:
    async def check() -> None:
        outcome.set_text("checking…")
        verdict = await asyncio.to_thread(_verify, context)
        if verdict.bad_id is None:
            text = f"Chain intact: {verdict.checked} entries. Head hash {verdict.head}"
        else:
            text = (
                f"Chain broken at entry {verdict.bad_id}: {verdict.problem}. "
                f"{verdict.checked} entries before it are intact (head {verdict.head})."
            )
        outcome.set_text(text)
        colour = "text-green-800" if verdict.bad_id is None else "text-red-800"
        outcome.classes(replace=f"font-mono text-sm break-all {colour}")

    with ui.row().classes("items-center gap-3 w-full no-wrap"):
        ui.button("Verify chain", on_click=check).props("outline icon=verified")
        outcome = ui.label("").classes("font-mono text-sm break-all").mark("chain-outcome")


def register_audit_pages(context: ServerContext) -> None:
    @ui.page(AUDIT_PAGE, title="LensTrack · Audit trail")
    async def audit_page(
        request: Request, query: Annotated[AuditPageQuery, Query()]
    ) -> RedirectResponse | None:
        principal = admit(context, request, MANAGER_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        rows = await asyncio.to_thread(_read_page, context, principal.lab_id, query)
        page_header(principal, "Audit trail")
        with ui.column().classes("w-full p-4 gap-3"):
            ui.link("← WIP board", "/wip")
            _chain_check(context)
            _filters(query)
            shown = rows[:PAGE_SIZE]
            if not shown:
                ui.label("No entries.").classes("text-lg text-slate-600")
                return None
            table = ui.table(columns=COLUMNS, rows=shown, row_key="id").classes("w-full")
            table.props("flat bordered dense wrap-cells")
            with ui.row().classes("gap-6"):
                if query.before is not None:
                    ui.link("← Newest", query.link(before=None))
                if len(rows) > PAGE_SIZE:
                    ui.link("Older →", query.link(before=shown[-1]["id"]))
        return None
