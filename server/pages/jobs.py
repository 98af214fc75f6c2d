"""The job list page: every active job the person may see, soonest promised first."""

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from server.context import ServerContext
from server.domain import views
from server.domain.auth import PersonPrincipal
from server.domain.views import JobList, JobListRow
from server.models import JobStatus, utcnow
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
            title = views.scope_name(session, principal)
            job_list = views.job_list(session, principal, utcnow())
        _render_job_list(principal, title, job_list, [_table_row(r) for r in job_list.rows])
        return None


def _table_row(row: JobListRow) -> dict[str, object]:
    return {
        "id": row.job_id,
        "job_number": row.job_number,
        "tray_number": row.tray_number or "",
        "store": row.store_code,
        "stage": row.stage or "",
        "status": row.status.value.replace("_", " "),
        "status_colour": STATUS_COLOURS[row.status],
        "rush": "RUSH" if row.rush else "",
        "promised": row.promised,
    }


def _render_job_list(
    principal: PersonPrincipal, title: str, job_list: JobList, rows: list[dict[str, object]]
) -> None:
    page_header(principal, title)
    with ui.column().classes("w-full p-6 gap-4"):
        total = f"{job_list.total:,}+" if job_list.total_capped else f"{job_list.total:,}"
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
