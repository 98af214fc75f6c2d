"""Schemathesis over the whole OpenAPI document, in process, as a station, store staff and a
lab manager (issue #14): no 5xx, and every answer's status and body as the document says.

Each operation gets a bounded number of generated requests, valid (positive) and invalid
(negative), derandomized so CI sees the same requests every run. SQLite only: what is fuzzed
is the HTTP boundary (validation, error shapes, the OpenAPI document), which does not depend on
the backend; the domain's PostgreSQL behaviour has its own tests. All failures of one role are
collected and reported together, one line per operation.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from server import migrate
from server.app import create_api
from server.context import ServerContext
from server.domain.seed import seed_demo
from server.labconfig import LabConfig
from server.models import EventAction
from server.settings import Settings
from tests.server.authz import session_token
from tests.server.conftest import Floor, Lab

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES_PER_MODE = 5  # per operation, role and generation mode: ~1,200 requests in all
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
FUZZ_SETTINGS = settings(
    derandomize=True,
    deadline=None,
    database=None,
    # No shrinking: a failure is reported as found (with its curl line), which keeps a run
    # with failures as short as one without.
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)
LOGIN = ("POST", "/api/auth/login")
LOGOUT = ("POST", "/api/auth/logout")


@dataclass
class FuzzLab:
    lab: Lab
    schema: OpenApiSchema


@pytest.fixture(scope="module")
def fuzz_lab(tmp_path_factory: pytest.TempPathFactory, lab_config: LabConfig) -> Iterator[FuzzLab]:
    """One demo lab for the whole module, with jobs in both stores, some moved along their
    routes (small ids exist, so generated ids often hit real rows)."""
    directory: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{directory / 'lenstrack.db'}"
    migrate.upgrade(url)
    context = ServerContext(Settings(database_url=url, data_dir=directory, secret_key="fuzz"))
    with context.db.session() as session:
        seed_demo(session, lab_config, job_count=0)
    lab = Lab(context)
    floor = Floor(lab)
    for number, store in enumerate(("NORTH", "SOUTH", "NORTH", "SOUTH"), start=1):
        lab.make_job(f"J90000{number}", store=store, tray=f"T{number}")
    floor.ship("J900001")
    floor.send("EDGE-1", "J900002", EventAction.start)
    floor.send("EDGE-1", "J900002", EventAction.breakage, reason_code="B-CHIP")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_api(context))
    yield FuzzLab(lab, schema)
    context.db.dispose()


ROLES: dict[str, Callable[[Lab], Callable[[], str]]] = {
    # Each makes the role's token maker: called once for the run, and once more for every
    # log-out request (which ends the session it is sent with).
    "station": lambda lab: lambda: lab.station_token("QC-1"),
    "store_staff": lambda lab: lambda: session_token(lab.context, "north"),
    "lab_manager": lambda lab: lambda: session_token(lab.context, "manager"),
}


def fuzz(
    operation: APIOperation,
    mode: GenerationMode,
    bearer: Callable[[], str] | None,
    examples: int = EXAMPLES_PER_MODE,
) -> None:
    """Generated requests for one operation, sent with `bearer()` as the bearer token."""

    @settings(FUZZ_SETTINGS, max_examples=examples)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        headers = {"Authorization": f"Bearer {bearer()}"} if bearer else None
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def fuzz_operations(
    schema: OpenApiSchema, token: Callable[[], str], skip: set[tuple[str, str]]
) -> dict[str, str]:
    """Runs every operation but `skip`; returns the failures, operation label → summary."""
    failures: dict[str, str] = {}
    steady = token()  # bearer tokens: no Origin check applies, as for a station or a script
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in skip:
            continue
        bearer = token if key == LOGOUT else lambda: steady
        for mode in MODES:
            try:
                fuzz(operation, mode, bearer)
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.label  # nothing to get wrong
            # Collected, then reported all at once (a FailureGroup is no Exception subclass).
            except (Exception, FailureGroup) as error:
                failures[f"{operation.label} ({mode.value})"] = summary(error)
    return failures


def summary(error: BaseException) -> str:
    """What failed, the answer and the request that got it, from schemathesis's report."""
    failed = getattr(error, "exceptions", None) or [error]
    titles = sorted({getattr(failure, "title", type(failure).__name__) for failure in failed})
    lines = str(error).splitlines()
    answer = [
        f"{line.strip()} {lines[index + 2].strip()}"
        for index, line in enumerate(lines[:-2])
        if line.startswith("[") and "]" in line[:6]
    ]
    request = [line.strip() for line in lines if line.strip().startswith("curl ")]
    return "; ".join(titles) + "\n  " + "\n  ".join([*answer[:1], *request[:1]])


def report(failures: dict[str, str]) -> str:
    return f"{len(failures)} failing:\n" + "\n".join(
        f"- {label}: {message}" for label, message in sorted(failures.items())
    )


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_operation_as(role: str, fuzz_lab: FuzzLab) -> None:
    token = ROLES[role](fuzz_lab.lab)
    # Log-in is fuzzed once, below, not per role: generated passwords are all wrong ones.
    failures = fuzz_operations(fuzz_lab.schema, token, skip={LOGIN})
    assert not failures, report(failures)


@pytest.mark.parametrize(
    ("mode", "examples"),
    [(GenerationMode.NEGATIVE, EXAMPLES_PER_MODE), (GenerationMode.POSITIVE, 3)],
)
def test_log_in_fuzzed_once(mode: GenerationMode, examples: int, fuzz_lab: FuzzLab) -> None:
    """Not per role. Malformed bodies never reach the password check; well-formed ones carry
    wrong passwords, which log-in throttling counts: only a few of those."""
    operation = fuzz_lab.schema[LOGIN[1]][LOGIN[0]]

    fuzz(operation, mode, None, examples)
