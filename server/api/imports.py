"""`POST /api/jobs/import`: DCS job files from another system (lab token) or a lab manager.

The body is multipart/form-data (`files` parts) or JSON `{"files": [{"name", "content"}]}`:
at most `MAX_FILES` files and `MAX_IMPORT_BYTES` in all (413 beyond), each file at most the
parser's 2 MB. Answers what `lenstrack import-dcs` prints, as a list: 201 with the jobs
created, 200 with the jobs a dry run would create; 422 naming file and line, 409 for a job
number that exists; nothing is created unless every record is.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, StringConstraints, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from core.contract import Inbound
from drivers.dcs import MAX_FILE_BYTES
from server.api.deps import CurrentPrincipal, DbSession
from server.domain.dcs_jobs import MAX_FILES, DcsFile, import_jobs
from server.domain.errors import DomainError, Invalid
from server.models import LensDesign

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

MAX_IMPORT_BYTES = 8 * 1024 * 1024


class TooLarge(DomainError):
    status_code = 413


class DcsFileIn(Inbound):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    content: str = Field(max_length=MAX_FILE_BYTES)


class ImportIn(Inbound):
    files: list[DcsFileIn] = Field(min_length=1, max_length=MAX_FILES)


class ImportedEye(BaseModel):
    sph: float
    cyl: float
    axis: int | None
    add: float | None


class ImportedJobOut(BaseModel):
    job_number: str
    R: ImportedEye | None
    L: ImportedEye | None
    ipd: dict[str, float | None]
    trace_points: dict[str, int] = Field(description="Radii per traced side")
    labels: dict[str, str] = Field(description="DCS labels kept with the job for export")
    job_id: int | None = Field(default=None, description="None in a dry run")


def _inlined(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema without $defs: a `#/$defs/…` reference would resolve against
    the whole OpenAPI document, not this schema."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return resolve(schema)


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_IMPORT_BYTES:
        raise TooLarge("body", f"more than {MAX_IMPORT_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():  # a chunked body has no length to check first
        body += chunk
        if len(body) > MAX_IMPORT_BYTES:
            raise TooLarge("body", f"more than {MAX_IMPORT_BYTES} bytes")
    return bytes(body)


async def dcs_files(request: Request) -> list[DcsFile]:
    body = await _body(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _multipart(request, body)
    if not content_type.startswith("application/json"):
        raise Invalid("body", "send multipart/form-data files or JSON {files: [{name, content}]}")
    try:
        payload = ImportIn.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
        ) from None
    return [DcsFile(item.name, item.content) for item in payload.files]


async def _multipart(request: Request, body: bytes) -> list[DcsFile]:
    async def replay() -> AsyncIterator[bytes]:
        yield body

    limits = {"max_files": MAX_FILES, "max_fields": MAX_FILES, "max_part_size": MAX_FILE_BYTES}
    parser = MultiPartParser(request.headers, replay(), **limits)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise Invalid("files", error.message) from None
    try:
        uploads = [part for part in form.getlist("files") if isinstance(part, UploadFile)]
        if not uploads:
            raise Invalid("files", "no `files` part with a file")
        return [DcsFile(part.filename or "upload", await part.read()) for part in uploads]
    finally:
        await form.close()


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _inlined(ImportIn)},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            }
                        },
                    }
                },
            },
        }
    },
)
def import_dcs(
    principal: CurrentPrincipal,
    files: Annotated[list[DcsFile], Depends(dcs_files)],
    session: DbSession,
    response: Response,
    dry_run: bool = False,
    store: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    design: LensDesign | None = None,
) -> list[ImportedJobOut]:
    """Create a job from every record of the DCS files, or none. `store` and `design` are the
    defaults for records without `_LT_STORE` / `_LT_DESIGN`; `dry_run` checks and creates none."""
    imported = import_jobs(session, principal, files, store=store, design=design, dry_run=dry_run)
    if dry_run:
        response.status_code = status.HTTP_200_OK
    return [ImportedJobOut.model_validate(job.summary()) for job in imported]
