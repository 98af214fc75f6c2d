"""Every page of the server, registered for one context."""

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app, ui

from server.api.errors import install_page_error_handlers
from server.context import ServerContext
from server.pages.access import home_path, page_person
from server.pages.aftersales import register_aftersales_pages
from server.pages.audit import register_audit_pages
from server.pages.changes import register_change_pages
from server.pages.followups import register_follow_up_pages
from server.pages.jobs import register_job_pages
from server.pages.kpis import register_kpi_pages
from server.pages.orders import register_order_pages
from server.pages.patient_link import register_patient_link_pages
from server.pages.spc import register_spc_pages
from server.pages.store import register_store_pages
from server.pages.store_settings import register_store_settings_pages
from server.pages.wip import register_wip_pages


def register_pages(context: ServerContext) -> None:
    install_page_error_handlers(app)

    @ui.page("/")
    def index(request: Request) -> RedirectResponse:
        """Store staff start at their store portal, lab people at the WIP board."""
        principal = page_person(context, request)
        return RedirectResponse(home_path(principal) if principal else "/login")

    register_job_pages(context)
    register_change_pages(context)
    register_order_pages(context)
    register_store_pages(context)
    register_store_settings_pages(context)
    register_wip_pages(context)
    register_audit_pages(context)
    register_kpi_pages(context)
    register_aftersales_pages(context)
    register_follow_up_pages(context)
    register_patient_link_pages(context)
    register_spc_pages(context)
