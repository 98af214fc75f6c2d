"""Every error answers `{"detail": [{"field": ..., "message": ...}]}` with a 4xx status."""

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from server.api.deps import get_principal, get_writing_station
from server.domain.errors import DomainError, TooManyAttempts, Unauthorized
from server.schemas import ErrorOut

log = logging.getLogger(__name__)


def _detail(field: str, message: str) -> list[dict[str, str]]:
    return [{"field": field, "message": message}]


def _location(loc: tuple[int | str, ...]) -> str:
    # Drop the "body"/"query"/"path" prefix: the caller knows where it sent what.
    parts = [str(part) for part in loc[1:]] if len(loc) > 1 else [str(part) for part in loc]
    return ".".join(parts) or "body"


def domain_error_headers(error: DomainError) -> dict[str, str] | None:
    if isinstance(error, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, TooManyAttempts):
        return {"Retry-After": str(error.retry_after_seconds)}
    return None


async def _domain_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    return JSONResponse(
        {"detail": [{"field": field, "message": message} for field, message in error.problems]},
        error.status_code,
        headers=domain_error_headers(error),
    )


def _validation_item(item: Mapping[str, Any]) -> dict[str, str]:
    loc = tuple(item.get("loc", ()))
    if item.get("type") == "json_invalid":
        # Its location is ("body", character offset), which names no field.
        reason = (item.get("ctx") or {}).get("error", "malformed")
        return {"field": "body", "message": f"invalid JSON at character {loc[-1]}: {reason}"}
    return {"field": _location(loc), "message": str(item.get("msg", ""))}


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    detail = [_validation_item(item) for item in error.errors()]
    return JSONResponse({"detail": detail}, 422)


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return JSONResponse(
        {"detail": _detail("request", str(error.detail))}, error.status_code, headers=error.headers
    )


def install_error_handlers(api: FastAPI) -> None:
    api.add_exception_handler(DomainError, _domain_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(HTTPException, _http_error)


def install_page_error_handlers(pages: FastAPI) -> None:
    """Pages refuse a malformed path or query (a job id out of range) in the API's shape,
    never echoing what was sent, as FastAPI's default answer does."""
    pages.add_exception_handler(RequestValidationError, _validation_error)


# What each documented refusal means; the body is always ErrorOut.
ERROR_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Not logged in, or the token is not valid",
    403: "Not allowed for this caller",
    404: "No such resource, or not one the caller may see",
    409: "Not possible in the current state",
    413: "Request body too large",
    422: "Invalid input, each problem beside its field",
}
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


def _dependency_calls(dependant: Dependant) -> set[Callable[..., Any]]:
    calls = {dependant.call} if dependant.call else set()
    for dependency in dependant.dependencies:
        calls |= _dependency_calls(dependency)
    return calls


def _refusals(route: RouteContext, method: str) -> set[int]:
    """The 4xx statuses an operation can answer, from what it takes and who may call it."""
    dependant = route.dependant
    takes_input = any(
        (dependant.path_params, dependant.query_params, dependant.body_params, method in WRITES)
    )
    statuses = {422} if takes_input else set()
    if method in WRITES:
        statuses |= {400, 401, 403, 413}  # a bad body, a log-in refused, a foreign origin
    if _dependency_calls(dependant) & {get_principal, get_writing_station}:
        # What a caller names (in the path, the query or the body) may be missing or hidden.
        statuses |= {401, 403, 404} | ({409} if method in WRITES else set())
    if dependant.path_params:
        statuses.add(404)
    return statuses


def document_errors(api: FastAPI) -> None:
    """The OpenAPI document names the error body the server sends (ErrorOut) for every 4xx an
    operation can answer and every error status a route declares, in place of FastAPI's
    default 422 schema, which the server never sends."""
    generate = api.openapi  # FastAPI's: cached until the routes change

    def openapi() -> dict[str, Any]:
        schema = generate()
        if "ErrorOut" not in schema.get("components", {}).get("schemas", {}):
            _document(schema, api.routes)
        return schema

    api.openapi = openapi


def _document(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    components |= error_schema.pop("$defs", {}) | {"ErrorOut": error_schema}
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods:
            responses = schema["paths"][route.path_format][method.lower()]["responses"]
            declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for status in sorted(_refusals(route, method) | declared):
                entry = responses.setdefault(str(status), {})
                entry.setdefault("description", ERROR_DESCRIPTIONS.get(status, ""))
                if status == 422 or "content" not in entry:
                    entry["content"] = {"application/json": {"schema": _ERROR_REF}}
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}" not in json.dumps(schema):
            components.pop(unused, None)
