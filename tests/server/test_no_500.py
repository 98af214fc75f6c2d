"""A bounded, deterministic fuzz: mutated bodies and odd paths never make the server answer 5xx.

Every 4xx must keep the `{"detail": [{"field", "message"}]}` shape. Seeded, so a failure
reproduces; about 200 requests per backend.
"""

import copy
import json
import random
from typing import Any

import httpx
import pytest

from tests.server.conftest import Lab
from tests.server.payloads import event_body, field_errors, job_body

SEED = 20240611
MUTANTS_PER_TARGET = 45

ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**31,
    -(2**63),
    10**30,
    1e308,
    -0.0,
    "",
    " ",
    "x" * 100_000,
    "\x00",
    "ß→🙂\u202e",
    "' OR 1=1 --",
    "2999-12-31T23:59:59Z",
    "0000-00-00",
    [],
    [None, [[]]],
    {},
    {"$gt": ""},
    {"a": {"b": {"c": [1, {"d": None}]}}},
]


def _mutate(rng: random.Random, body: Any) -> Any:
    """One random change somewhere in a JSON value: replace, drop, add, or retype."""
    if isinstance(body, dict) and body and rng.random() < 0.7:
        body = dict(body)
        key = rng.choice(list(body))
        roll = rng.random()
        if roll < 0.2:
            del body[key]
        elif roll < 0.3:
            body[rng.choice(["extra", "", "\x00", key.upper()])] = rng.choice(ODD_VALUES)
        elif roll < 0.6:
            body[key] = _mutate(rng, body[key])
        else:
            body[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        return body
    if isinstance(body, list) and body and rng.random() < 0.7:
        body = list(body)
        index = rng.randrange(len(body))
        body[index] = _mutate(rng, body[index])
        return body
    return copy.deepcopy(rng.choice(ODD_VALUES))


def _mutants(rng: random.Random, seed_body: Any, count: int) -> list[Any]:
    bodies = []
    for _ in range(count):
        body = seed_body
        for _ in range(rng.randint(1, 3)):
            body = _mutate(rng, body)
        bodies.append(body)
    return bodies


def _check(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:500])
    if 400 <= response.status_code < 500 and response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        field_errors(response)


@pytest.fixture
async def station_and_person(client: httpx.AsyncClient, lab: Lab) -> dict[str, str]:
    lab.make_job("J1", tray="0001")
    await lab.log_in(client, "manager", "demo-manager-pass")  # the cookie rides along
    return lab.station_headers("EDGE-1")


async def test_mutated_bodies_never_make_a_5xx(
    client: httpx.AsyncClient, station_and_person: dict[str, str]
) -> None:
    rng = random.Random(SEED)
    station = station_and_person
    targets = [
        ("/api/events", event_body("J1", 1), station),
        ("/api/events/batch", {"events": [event_body("J1", 1), event_body("0001", 2)]}, station),
        ("/api/jobs", job_body("J2"), {}),
        ("/api/auth/login", {"username": "manager", "password": "demo-manager-pass"}, {}),
    ]
    sent = 0
    for path, seed_body, headers in targets:
        for body in _mutants(rng, seed_body, MUTANTS_PER_TARGET):
            response = await client.post(path, json=body, headers=headers)
            _check(response, f"POST {path} {json.dumps(body)[:300]}")
            sent += 1
        # Bytes that are not JSON at all, or not UTF-8.
        for raw in (b"{not json", b"\xff\xfe\x00", b'{"a":' * 200, b"[" * 5000, b""):
            response = await client.post(
                path, content=raw, headers={**headers, "Content-Type": "application/json"}
            )
            _check(response, f"POST {path} raw {raw[:40]!r}")
            sent += 1
    assert sent >= 180


ODD_PATHS = {
    "/api/jobs/abc": 422,
    "/api/jobs/999999999999999999999": 422,
    "/api/jobs/-1": 422,
    "/api/jobs/0": 422,
    "/api/jobs/2147483648": 422,
    "/api/jobs/1.5": 422,
    "/api/jobs/2147483647": 404,
    "/api/jobs/999999999999999999999/timeline": 422,
    "/api/jobs/lookup/%00": 422,
    "/api/jobs/lookup/%FF%FE": 422,
    "/api/jobs/lookup/" + "x" * 5000: 422,
    "/api/jobs/lookup/%F0%9F%99%82": 422,
    "/api/jobs/lookup/UNKNOWN-1": 404,
    "/api/jobs?limit=0": 422,
    "/api/jobs?limit=99999999999999999999": 422,
    "/api/jobs?offset=99999999999999999999": 422,
    "/api/jobs?offset=2147483648": 422,
    "/api/jobs?status=exploded": 422,
    "/api/jobs?active=maybe": 422,
    "/api/jobs?stage=%00": 422,
    "/api/nowhere": 404,
}


async def test_odd_paths_are_a_4xx_not_a_5xx(
    client: httpx.AsyncClient, station_and_person: dict[str, str]
) -> None:
    # One test, not one per path: the seeded lab costs more than all these requests.
    wrong = {}
    for path, expected in ODD_PATHS.items():
        response = await client.get(path)
        _check(response, f"GET {path[:80]}")
        if response.status_code != expected or not response.json()["detail"]:
            wrong[path[:80]] = (response.status_code, response.text[:200])
    assert not wrong, wrong


NUL = "a\x00b"
NUL_BODIES = {
    "login user name": ("/api/auth/login", {"username": NUL, "password": "whatever-pass"}),
    "login password": ("/api/auth/login", {"username": "manager", "password": NUL}),
    "job patient": ("/api/jobs", job_body("J3", patient_ref=NUL)),
    "job treatment": ("/api/jobs", job_body("J3", treatments=["AR", NUL])),
    "job frame": ("/api/jobs", job_body("J3", frame={"colour": NUL})),
    "event note": ("/api/events", event_body("J1", 1, "note", note=NUL)),
    "event badge": ("/api/events", event_body("J1", 1, operator_badge=NUL)),
}


async def test_a_nul_character_in_any_text_is_a_422(
    client: httpx.AsyncClient, station_and_person: dict[str, str]
) -> None:
    wrong = {}
    for what, (path, body) in NUL_BODIES.items():
        headers = station_and_person if path.startswith("/api/events") else {}
        response = await client.post(path, json=body, headers=headers)
        messages = " ".join(field_errors(response).values()) if response.is_error else ""
        if response.status_code != 422 or "must not contain NUL" not in messages:
            wrong[what] = (response.status_code, response.text[:200])
    assert not wrong, wrong
