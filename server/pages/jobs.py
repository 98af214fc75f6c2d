"""The job list page (the full store portal and WIP board come with their own issue)."""

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from server.context import ServerContext
from server.domain import jobs
from server.domain.auth import PersonPrincipal
from server.models import JobStatus, Priority, Store
from server.pages.access import page_header, page_person

STATUS_COLOURS = {
    JobStatus.queued: "blue-grey",
    JobStatus.in_progress: "primary",
    JobStatus.on_hold: "orange",
    JobStatus.completed: "positive",
    JobStatus.cancelled: "grey",
}


def register_job_pages(context: ServerContext) -> None:
    @ui.page("/jobs", title="LensTrack · Jobs")
    def job_list(request: Request) -> RedirectResponse | None:
        principal = page_person(context, request)
        if principal is None:
            return RedirectResponse("/login")
        with context.db.read_session() as session:
            total, page = jobs.list_jobs(session, principal, active=True, limit=500)
            store = session.get(Store, principal.store_id) if principal.store_id else None
            rows = [
                {
                    "id": job.id,
                    "job_number": job.job_number,
                    "tray_number": job.tray_number or "",
                    "store": job.store.code,
                    "stage": job.current_stage.name if job.current_stage else "",
                    "status": job.status.value.replace("_", " "),
                    "status_colour": STATUS_COLOURS[job.status],
                    "rush": "RUSH" if job.priority == Priority.rush else "",
                    "promised": job.promised_at.strftime("%a %d %b %H:%M"),
                }
                for job in page
            ]
        _render_job_list(principal, store.name if store else None, total, rows)
        return None


def _render_job_list(
    principal: PersonPrincipal, store_name: str | None, total: int, rows: list[dict[str, object]]
) -> None:
    page_header(principal, store_name or "All stores")
    with ui.column().classes("w-full p-6 gap-4"):
        ui.label(f"Active jobs ({total})").classes("text-xl font-semibold")
        columns = [
            {
                "name": "job_number",
                "label": "Job",
                "field": "job_number",
                "align": "left",
                "sortable": True,
            },
            {"name": "tray_number", "label": "Tray", "field": "tray_number", "align": "left"},
            {
                "name": "store",
                "label": "Store",
                "field": "store",
                "align": "left",
                "sortable": True,
            },
            {
                "name": "stage",
                "label": "Stage",
                "field": "stage",
                "align": "left",
                "sortable": True,
            },
            {
                "name": "status",
                "label": "Status",
                "field": "status",
                "align": "left",
                "sortable": True,
            },
            {"name": "rush", "label": "", "field": "rush", "align": "left"},
            {"name": "promised", "label": "Promised", "field": "promised", "align": "left"},
        ]
        table = ui.table(columns=columns, rows=rows, row_key="id", pagination=25).classes("w-full")
        table.props("flat bordered")
        table.add_slot(
            "body-cell-status",
            # The row carries its colour: props.value is already "on hold", not "on_hold".
            '<q-td :props="props">'
            '<q-badge :color="props.row.status_colour" :label="props.value" /></q-td>',
        )
        table.add_slot(
            "body-cell-rush",
            '<q-td :props="props"><q-badge v-if="props.value" color="red" label="RUSH" /></q-td>',
        )
