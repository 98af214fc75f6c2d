"""The store's follow-up list: calls due today and overdue ones (red), each recorded in a
dialog — outcome, optional 0–10 score, a note; a problem opens an after-sales ticket."""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from sqlalchemy.orm import Session

from server.context import ServerContext
from server.domain import followups
from server.domain.auth import PersonPrincipal
from server.domain.lab_time import lab_zone, local_text
from server.models import FollowUpOutcome, TicketClass, utcnow
from server.pages.access import STORE_PORTAL_ROLES, admit, page_header
from server.pages.aftersales import TICKET_CLASSES, ticket_path
from server.pages.changes import OrderActions

OUTCOMES = {
    FollowUpOutcome.satisfied: "Satisfied",
    FollowUpOutcome.adapting: "Still adapting",
    FollowUpOutcome.problem: "Problem → open a ticket",
}


def _rows(
    context: ServerContext, principal: PersonPrincipal
) -> tuple[list[dict[str, Any]], ZoneInfo]:
    now = utcnow()
    with context.db.read_session() as session:
        zone = lab_zone(session, principal.lab_id)
        today = followups.start_of_day(session, principal.lab_id, now)
        return [
            {
                "id": follow_up.id,
                "job": follow_up.job.job_number,
                "delivered": _day(follow_up.job.delivered_at, zone, now),
                "call": f"day {follow_up.days_after}",
                "due": _day(follow_up.due_at, zone, now),
                "overdue": followups.is_overdue(follow_up, today),
            }
            for follow_up in followups.due_follow_ups(session, principal, now)
        ], zone


def _day(moment: datetime | None, zone: ZoneInfo, now: datetime) -> str:
    return local_text(moment, zone, now).rsplit(" ", 1)[0] if moment else ""


def register_follow_up_pages(context: ServerContext) -> None:
    @ui.page("/store/follow-ups", title="LensTrack · Follow-ups")
    def follow_up_page(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        page_header(principal, "Follow-ups")
        FollowUpList(context, principal)
        return None


class FollowUpList:
    def __init__(self, context: ServerContext, principal: PersonPrincipal) -> None:
        self.context = context
        self.principal = principal
        self.actions = OrderActions(context, principal)
        self.body = ui.column().classes("w-full p-4 gap-4 max-w-5xl")
        self.draw()

    def draw(self) -> None:
        rows, _zone = _rows(self.context, self.principal)
        self.body.clear()
        with self.body:
            with ui.row().classes("gap-6 text-lg"):
                ui.link("← Store portal", "/store")
                ui.link("Tickets", "/store/tickets")
            overdue = sum(row["overdue"] for row in rows)
            ui.label(f"Due today and overdue ({len(rows)}, {overdue} overdue)").classes(
                "text-xl font-semibold"
            )
            ui.label("Patients who declined contact are never listed.").classes("text-slate-500")
            table = (
                ui.table(
                    columns=[
                        {"name": key, "label": label, "field": key, "align": "left"}
                        for key, label in (
                            ("job", "Job"),
                            ("delivered", "Delivered"),
                            ("call", "Call"),
                            ("due", "Due"),
                            ("record", ""),
                        )
                    ],
                    rows=rows,
                    row_key="id",
                )
                .props("flat bordered data-section=follow-ups")
                .classes("w-full")
            )
            table.add_slot(
                "body",
                """<q-tr :props="props" :class="props.row.overdue ? 'bg-red-1' : ''">
                  <q-td key="job" :props="props">{{ props.row.job }}</q-td>
                  <q-td key="delivered" :props="props">{{ props.row.delivered }}</q-td>
                  <q-td key="call" :props="props">{{ props.row.call }}</q-td>
                  <q-td key="due" :props="props">
                    <q-badge v-if="props.row.overdue" color="red-8" label="OVERDUE"
                      class="q-mr-sm" />{{ props.row.due }}</q-td>
                  <q-td key="record" :props="props">
                    <q-btn unelevated dense color="primary" label="Record call"
                      @click="() => $parent.$emit('record', props.row)" /></q-td>
                </q-tr>""",
            )
            table.on("record", lambda event: self.record_dialog(event.args).open())
            if not rows:
                ui.label("Nothing due today.").classes("text-slate-500")

    def record_dialog(self, row: dict[str, Any]) -> ui.dialog:
        with ui.dialog() as dialog, ui.card().classes("w-[30rem] gap-3"):
            ui.label(f"Follow-up {row['call']} · job {row['job']}").classes("text-xl")
            outcome = ui.radio(OUTCOMES, value=FollowUpOutcome.satisfied).props("data-part=outcome")
            score = ui.number("Score 0–10 (optional)", min=0, max=10, step=1, precision=0)
            score.props("outlined").classes("w-48")
            ticket_class = ui.select(TICKET_CLASSES, label="Ticket class", value=TicketClass.other)
            ticket_class.props("outlined").classes("w-64").bind_visibility_from(
                outcome, "value", value=FollowUpOutcome.problem
            )
            note = ui.textarea("Note (the ticket's message for a problem)").props(
                "outlined maxlength=500"
            )
            note.classes("w-full")

            async def save() -> None:
                chosen = FollowUpOutcome(outcome.value)
                problem = TicketClass(ticket_class.value) if chosen == "problem" else None
                points = None if score.value is None else int(score.value)
                text = note.value

                def work(session: Session) -> tuple[int | None]:
                    follow_up = followups.record_outcome(
                        session, self.principal, row["id"], chosen, points, text, problem
                    )
                    return (follow_up.ticket_id,)  # a tuple: None is the refusal's answer

                recorded = await self.actions.run(work, "Recorded")
                if recorded is None:
                    return
                dialog.close()
                (ticket_id,) = recorded
                if ticket_id is not None:
                    ui.navigate.to(ticket_path(ticket_id))
                else:
                    self.draw()

            with ui.row().classes("w-full justify-end"):
                ui.button("Close", on_click=dialog.close).props("flat")
                ui.button("Save", on_click=save).props("unelevated data-part=save-follow-up")
        return dialog
