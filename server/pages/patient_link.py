"""The store's patient-link page: make a job's status link, then print it with its QR code
or copy it to send. The link is shown once (only its digest is stored); making another
replaces it."""

import asyncio

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from server.api.deps import RowId
from server.api.patient_links import patient_path
from server.context import ServerContext
from server.domain import jobs, patient_link
from server.domain.auth import PersonPrincipal
from server.domain.errors import DomainError
from server.pages.access import STORE_PORTAL_ROLES, admit, page_header
from server.pages.changes import OrderActions

PRINT_STYLE = """<style>@media print {
  .q-header, .no-print { display: none !important; }
  .q-page-container { padding-top: 0 !important; }
}</style>"""


def qr_svg(text: str) -> str:
    """`text` as a QR code, an SVG a page shows and a printer prints sharp."""
    import zxingcpp  # loaded on the first link made, like the ticket renderer

    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode)
    return zxingcpp.write_barcode_to_svg(symbol)


def patient_link_path(job_id: int) -> str:
    return f"/store/jobs/{job_id}/patient-link"


def _job_number(context: ServerContext, principal: PersonPrincipal, job_id: int) -> str | None:
    with context.db.read_session() as session:
        try:
            return jobs.get_job(session, principal, job_id).job_number
        except DomainError:
            return None


def register_patient_link_pages(context: ServerContext) -> None:
    @ui.page("/store/jobs/{job_id}/patient-link", title="LensTrack · Patient link")
    async def link_page(request: Request, job_id: RowId) -> RedirectResponse | None:
        principal = admit(context, request, STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        number = await asyncio.to_thread(_job_number, context, principal, job_id)
        page_header(principal, "Patient link")
        ui.add_head_html(PRINT_STYLE)
        origin = str(request.base_url).rstrip("/")
        with ui.column().classes("w-full p-4 gap-4 max-w-xl"):
            ui.link("← Job", f"/store/jobs/{job_id}").classes("text-lg no-print")
            if number is None:
                ui.label("Job not found.").classes("text-2xl font-bold")
                return None
            ui.label(f"Status link for job {number}").classes("text-2xl font-bold")
            ui.label(
                "The patient sees the stage, the expected date and whether the glasses are "
                "ready: no name, no prescription. The link stops working once the job is "
                "delivered; making a new one replaces the old."
            ).classes("text-slate-600 no-print")
            shown = ui.column().classes("w-full gap-3 items-center")
            actions = OrderActions(context, principal)

            async def make() -> None:
                token = await actions.run(
                    lambda s: patient_link.create_patient_link(s, principal, job_id)
                )
                if token is None:
                    return
                url = origin + patient_path(token)
                shown.clear()
                with shown:
                    # Our own SVG of a URL we made: nothing in it to sanitize.
                    ui.html(qr_svg(url), sanitize=False).classes("w-64 h-64").props("data-part=qr")
                    ui.label("Scan to follow your glasses").classes("text-lg font-semibold")
                    ui.input("Link", value=url).props("readonly outlined").classes(
                        "w-full no-print"
                    ).props("data-part=link")
                    with ui.row().classes("no-print gap-3"):
                        ui.button("Copy link", on_click=lambda: ui.clipboard.write(url)).props(
                            "outline"
                        )
                        ui.button("Print", on_click=lambda: ui.run_javascript("window.print()"))

            ui.button("Make a patient link", on_click=make).props(
                "unelevated data-part=make-link"
            ).classes("no-print")
        return None
