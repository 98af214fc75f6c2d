"""The patient's status page, /p/{token}: plain HTML for a phone, no log-in, no script.

It shows where the glasses are and when they are expected, nothing else
(`patient_link.patient_status`). A token unknown, replaced or expired gets one and the same
404 page, so the answer never tells which. Not cached, and sent with no referrer: the token
in the address is the key.
"""

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from server.api.deps import DbSession
from server.domain.errors import NotFound
from server.domain.patient_link import PROGRESS_TEXT, PatientStatus, Progress, patient_status

router = APIRouter(include_in_schema=False)

HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
MILESTONES: tuple[Progress, ...] = ("received", "in_production", "on_the_way", "ready")

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Your glasses</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<style>
 body {{ font-family: system-ui, sans-serif; margin: 0; background: #f1f5f9; color: #0f172a; }}
 main {{ max-width: 28rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }}
 h1 {{ font-size: 1.2rem; color: #475569; margin: 0 0 .25rem; font-weight: 600; }}
 .headline {{ font-size: 2rem; font-weight: 700; margin: 0 0 1.25rem; }}
 ol {{ list-style: none; padding: 0; margin: 0 0 1.5rem; }}
 li {{ display: flex; gap: .8rem; align-items: flex-start; padding: .6rem 0;
       font-size: 1.1rem; color: #94a3b8; }}
 li .dot {{ width: 1.4rem; height: 1.4rem; border-radius: 50%; border: 3px solid #cbd5e1;
            flex: none; box-sizing: border-box; }}
 li.done {{ color: #0f172a; }} li.done .dot {{ background: #16a34a; border-color: #16a34a; }}
 li.now {{ color: #0f172a; font-weight: 700; }} li.now .dot {{ border-color: #2563eb;
            background: #bfdbfe; }}
 li small {{ display: block; font-weight: 400; color: #475569; font-size: .95rem; }}
 .card {{ background: #fff; border-radius: 12px; padding: 1rem 1.25rem;
          box-shadow: 0 1px 3px rgba(0,0,0,.12); margin-bottom: 1rem; }}
 .label {{ color: #475569; font-size: .95rem; }} .value {{ font-size: 1.3rem; font-weight: 700; }}
 .ready {{ background: #dcfce7; }}
</style></head>
<body><main>{body}</main></body></html>"""


def _milestones(status: PatientStatus) -> str:
    reached = MILESTONES.index(status.progress)
    items = []
    for index, milestone in enumerate(MILESTONES):
        state = "done" if index < reached else "now" if index == reached else "todo"
        detail = ""
        if milestone == "in_production" and status.stage:
            detail = (
                f"<small>{html.escape(status.stage)} · step {status.step} of {status.steps}</small>"
            )
        items.append(
            f'<li class="{state}"><span class="dot"></span>'
            f"<span>{PROGRESS_TEXT[milestone]}{detail}</span></li>"
        )
    return "<ol>" + "".join(items) + "</ol>"


def _card(label: str, value: str, extra_class: str = "") -> str:
    return (
        f'<div class="card {extra_class}"><div class="label">{label}</div>'
        f'<div class="value">{html.escape(value)}</div></div>'
    )


def render_status(status: PatientStatus) -> str:
    if status.ready_since:
        cards = _card("Pickup", f"Ready at your store since {status.ready_since}", "ready")
    else:
        cards = _card("Expected ready", status.expected) + _card(
            "Pickup", "Not ready yet — your store will let you know"
        )
    body = (
        f'<h1>Your glasses</h1><p class="headline">{status.headline}</p>'
        f"{_milestones(status)}{cards}"
    )
    return _LAYOUT.format(body=body)


NOT_VALID = _LAYOUT.format(
    body='<h1>Your glasses</h1><p class="headline">This link is not valid</p>'
    '<div class="card">It may have expired after pickup, or been replaced by a newer one. '
    "Please ask your store.</div>"
)


@router.get("/p/{token}")
def patient_page(token: str, session: DbSession) -> HTMLResponse:
    try:
        status = patient_status(session, token)
    except NotFound:
        return HTMLResponse(NOT_VALID, 404, headers=HEADERS)
    return HTMLResponse(render_status(status), headers=HEADERS)
