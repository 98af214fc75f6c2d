"""Every error answers `{"detail": [{"field": ..., "message": ...}]}` with a 4xx status."""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from server.domain.errors import DomainError, Unauthorized

log = logging.getLogger(__name__)


def _detail(field: str, message: str) -> list[dict[str, str]]:
    return [{"field": field, "message": message}]


def _location(loc: tuple[int | str, ...]) -> str:
    # Drop the "body"/"query"/"path" prefix: the caller knows where it sent what.
    parts = [str(part) for part in loc[1:]] if len(loc) > 1 else [str(part) for part in loc]
    return ".".join(parts) or "body"


async def _domain_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
    return JSONResponse(
        {"detail": [{"field": field, "message": message} for field, message in error.problems]},
        error.status_code,
        headers=headers,
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
