"""A store's message settings (`/store/settings`): which milestones it hears about, at which
e-mail address, as each happens or in a daily digest; and the log of what was sent, failures
and retries included. Store staff read them; their store manager changes them. A lab manager
opens any store's with `?store=CODE`."""

import asyncio
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from pydantic import ValidationError

from server.context import ServerContext
from server.domain.auth import PersonPrincipal
from server.domain.errors import DomainError
from server.models import DeliveryStatus
from server.notify import manage
from server.notify.notice import HEADLINES
from server.notify.preferences import MILESTONE_TEXT, Milestone
from server.notify.schemas import DeliveryOut, StoreNotifications, StoreNotificationsOut
from server.notify.webhook import SIGNATURE_HEADER
from server.pages.access import STORE_PORTAL_ROLES, admit, page_header

SETTINGS_PAGE = "/store/settings"
LOG_SIZE = 50
StoreQuery = Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
STATUS_COLOURS = {
    DeliveryStatus.delivered: "text-green-800",
    DeliveryStatus.pending: "text-amber-800",
    DeliveryStatus.failed: "text-red-800",
}
LOG_COLUMNS = [
    {"name": key, "label": label, "field": key, "align": "left"}
    for key, label in (
        ("created", "Queued (UTC)"),
        ("job", "Job"),
        ("what", "What"),
        ("channel", "Sent by"),
        ("status", "Status"),
        ("attempts", "Tries"),
        ("detail", "Last error · next try"),
    )
]
STATUS_CELL = """<q-td :props="props"><span :class="props.row.colour"
 class="font-semibold">{{ props.value }}</span></q-td>"""


def _log_row(delivery: DeliveryOut) -> dict[str, object]:
    what = MILESTONE_TEXT[delivery.milestone] if delivery.milestone else None
    detail = [delivery.last_error or ""]
    if delivery.next_attempt_at is not None:
        detail.append(f"next {delivery.next_attempt_at:%Y-%m-%d %H:%M}")
    return {
        "id": delivery.id,
        "created": f"{delivery.created_at:%Y-%m-%d %H:%M}",
        "job": delivery.job_number,
        "what": what or HEADLINES.get(delivery.kind, delivery.kind),
        "channel": {"digest": "e-mail digest"}.get(delivery.channel, delivery.channel),
        "status": delivery.status.value,
        "colour": STATUS_COLOURS[delivery.status],
        "attempts": delivery.attempts,
        "detail": " · ".join(part for part in detail if part),
    }


def _read(
    context: ServerContext, principal: PersonPrincipal, code: str | None
) -> tuple[StoreNotificationsOut, list[dict[str, object]], list[str]]:
    with context.db.read_session() as session:
        settings = manage.read_settings(session, principal, code)
        store = manage.store_for(session, principal, code)
        log = manage.list_deliveries(session, store, LOG_SIZE, 0)
        hooks = [hook.url for hook in manage.list_webhooks(session, store) if hook.active]
    return settings, [_log_row(item) for item in log.items], hooks


def _save(
    context: ServerContext, principal: PersonPrincipal, code: str | None, wanted: StoreNotifications
) -> StoreNotificationsOut:
    with context.session() as session:
        return manage.update_settings(session, principal, code, wanted)


def _form(
    context: ServerContext,
    principal: PersonPrincipal,
    code: str | None,
    settings: StoreNotificationsOut,
) -> None:
    editable = settings.can_edit
    with ui.card().classes("w-full max-w-3xl").props("data-section=settings-form"):
        ui.label("Messages about your jobs").classes("text-xl font-semibold")
        email = ui.input("E-mail address for messages", value=settings.notify_email or "").classes(
            "w-full"
        )
        email.props("type=email clearable")
        ui.label("Tell us when a job is…").classes("font-semibold pt-2")
        chosen = set(settings.milestones)
        boxes: dict[Milestone, ui.checkbox] = {}
        with ui.grid().classes("grid-cols-1 sm:grid-cols-2 gap-x-6 gap-y-0"):
            for milestone in Milestone:
                boxes[milestone] = ui.checkbox(MILESTONE_TEXT[milestone], value=milestone in chosen)
        ui.label("E-mail").classes("font-semibold pt-2")
        with ui.row().classes("items-center gap-6"):
            mode = ui.radio(
                {"immediate": "as each happens", "digest": "one daily digest at"},
                value=settings.email_mode,
            ).props("inline")
            hour = ui.select(
                {hour: f"{hour:02d}:00" for hour in range(24)}, value=settings.digest_hour
            ).classes("w-28")
            if editable:  # the hour matters for a digest only
                hour.bind_enabled_from(mode, "value", backward=lambda value: value == "digest")
        ui.label(
            "Webhooks get the same milestones as they happen, signed "
            f"({SIGNATURE_HEADER}). Messages name the job, never the patient or prescription."
        ).classes("text-sm text-slate-600")

        async def save() -> None:
            try:
                wanted = StoreNotifications.model_validate(
                    {
                        "notify_email": (email.value or "").strip() or None,
                        "milestones": [m.value for m, box in boxes.items() if box.value],
                        "email_mode": mode.value,
                        "digest_hour": hour.value,
                    }
                )
                await asyncio.to_thread(_save, context, principal, code, wanted)
            except ValidationError as error:
                first = error.errors()[0]
                field = ".".join(str(part) for part in first["loc"])
                ui.notify(f"{field}: {first['msg']}", type="negative")
                return
            except DomainError as error:
                ui.notify(error.message, type="negative")
                return
            ui.notify("Saved", type="positive")

        with ui.row().classes("items-center gap-4 pt-2"):
            button = ui.button("Save", on_click=save).props("unelevated icon=save")
            if not editable:
                button.disable()
                ui.label("Only your store's manager changes these.").classes("text-slate-600")
        if not editable:
            for element in (email, mode, hour, *boxes.values()):
                element.disable()


def register_store_settings_pages(context: ServerContext) -> None:
    @ui.page(SETTINGS_PAGE, title="LensTrack · Store messages")
    async def settings_page(request: Request, store: StoreQuery = None) -> RedirectResponse | None:
        principal = admit(context, request, STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        try:
            settings, log, hooks = await asyncio.to_thread(_read, context, principal, store)
        except DomainError as error:
            page_header(principal, "Store messages")
            ui.label(error.message).classes("text-xl p-6")
            return None
        page_header(principal, f"{settings.store_code} · Messages")
        with ui.column().classes("w-full p-4 gap-4"):
            ui.link("← Store portal", "/store").classes("text-lg")
            _form(context, principal, store, settings)
            if hooks:
                ui.label("Webhooks: " + ", ".join(hooks)).classes("text-sm text-slate-600")
            with ui.card().classes("w-full"):
                ui.label("Sent messages").classes("text-xl font-semibold")
                if not log:
                    ui.label("Nothing sent yet.").classes("text-slate-500")
                else:
                    table = ui.table(columns=LOG_COLUMNS, rows=log, row_key="id")
                    table.props("flat dense data-section=sent-log").classes("w-full")
                    table.add_slot("body-cell-status", STATUS_CELL)
        return None
