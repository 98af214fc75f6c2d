"""Log-in, sessions and station tokens over HTTP: who gets in, who is turned away, and how."""

from datetime import timedelta

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import update

from server.api.deps import SESSION_COOKIE
from server.domain import auth, security
from server.domain.security import token_digest
from server.models import UserSession, utcnow
from tests.server.conftest import Lab
from tests.server.payloads import event_body, field_errors


async def _log_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": username, "password": password})


def _use_cookie(client: httpx.AsyncClient, token: str) -> None:
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, token, domain="lenstrack.test")


async def test_login_sets_an_httponly_session_cookie_that_me_accepts(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    response = await _log_in(client, "manager", "demo-manager-pass")
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "manager"
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{SESSION_COOKIE}=lss_")
    assert "httponly" in set_cookie.lower()
    assert "samesite=lax" in set_cookie.lower()

    me = await client.get("/api/auth/me")
    assert me.status_code == 200, me.text
    assert me.json() == {
        "id": response.json()["id"],
        "username": "manager",
        "name": "Maria Lopez",
        "role": "lab_manager",
        "store_code": None,
    }


async def test_store_staff_me_names_their_store(client: httpx.AsyncClient, lab: Lab) -> None:
    await lab.log_in(client, "north", "demo-store-pass")
    me = await client.get("/api/auth/me")
    assert (me.json()["role"], me.json()["store_code"]) == ("store_staff", "NORTH")


async def test_without_credentials_me_is_401(client: httpx.AsyncClient, lab: Lab) -> None:
    response = await client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "authorization" in field_errors(response)


async def test_wrong_password_and_unknown_user_are_told_apart_by_nothing(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    wrong_password = await _log_in(client, "manager", "not-the-password")
    unknown_user = await _log_in(client, "nobody", "demo-manager-pass")
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()
    assert field_errors(wrong_password) == {"password": "unknown user name or wrong password"}
    assert SESSION_COOKIE not in client.cookies
    assert (await client.get("/api/auth/me")).status_code == 401


def test_an_unknown_user_costs_a_hash_as_slow_as_a_real_one() -> None:
    """The stored dummy hash has the parameters passwords are hashed with (not the tests'
    cheap ones), so an unknown user's log-in takes as long as a wrong password."""
    assert not PasswordHasher().check_needs_rehash(security._DUMMY_HASH)


async def test_logout_revokes_the_session(client: httpx.AsyncClient, lab: Lab) -> None:
    await lab.log_in(client, "manager", "demo-manager-pass")
    token = client.cookies[SESSION_COOKIE]
    response = await client.post("/api/auth/logout")
    assert response.status_code == 204
    assert SESSION_COOKIE not in client.cookies  # the response deleted it
    _use_cookie(client, token)  # someone kept the old cookie
    again = await client.get("/api/auth/me")
    assert again.status_code == 401
    assert "log in again" in field_errors(again)["authorization"]


async def test_an_expired_session_is_401(client: httpx.AsyncClient, lab: Lab) -> None:
    await lab.log_in(client, "manager", "demo-manager-pass")
    assert (await client.get("/api/auth/me")).status_code == 200
    digest = token_digest(client.cookies[SESSION_COOKIE])
    with lab.context.db.session() as session:
        expired = session.execute(
            update(UserSession)
            .where(UserSession.token_hash == digest)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        assert expired.rowcount == 1
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_a_station_token_works_until_revoked(client: httpx.AsyncClient, lab: Lab) -> None:
    headers = lab.station_headers("EDGE-1")
    me = await client.get("/api/stations/me", headers=headers)
    assert me.status_code == 200, me.text
    assert (me.json()["name"], me.json()["stage"]["code"]) == ("EDGE-1", "edging")
    with lab.context.db.session() as session:
        assert auth.revoke_station_tokens(session, "EDGE-1") == 1
    revoked = await client.get("/api/stations/me", headers=headers)
    assert revoked.status_code == 401
    assert field_errors(revoked) == {"authorization": "unknown or revoked station token"}


async def test_revoking_one_station_leaves_the_others_working(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    edge, fit = lab.station_headers("EDGE-1"), lab.station_headers("FIT-1")
    with lab.context.db.session() as session:
        auth.revoke_station_tokens(session, "EDGE-1")
    assert (await client.get("/api/stations/me", headers=edge)).status_code == 401
    assert (await client.get("/api/stations/me", headers=fit)).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer garbage",
        "Bearer lst_",
        "Bearer lst_not-a-real-token",
        "Bearer lss_not-a-real-session",
        "Basic bWFuYWdlcjpkZW1vLW1hbmFnZXItcGFzcw==",
        "Bearer",
        "",
    ],
)
async def test_garbage_credentials_are_401(
    client: httpx.AsyncClient, lab: Lab, authorization: str
) -> None:
    response = await client.get("/api/stations/me", headers={"Authorization": authorization})
    assert response.status_code == 401, response.text
    assert "authorization" in field_errors(response)


async def test_a_station_token_cannot_use_person_endpoints(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    headers = lab.station_headers("EDGE-1")
    me = await client.get("/api/auth/me", headers=headers)
    assert me.status_code == 403
    assert field_errors(me) == {"authorization": "this endpoint is for people (log in)"}
    logout = await client.post("/api/auth/logout", headers=headers)
    assert logout.status_code == 403
    assert (await client.get("/api/stations/me", headers=headers)).status_code == 200


async def test_a_person_cannot_use_station_endpoints(client: httpx.AsyncClient, lab: Lab) -> None:
    lab.make_job("J1")
    await lab.log_in(client, "tech1", "demo-tech-pass")
    for response in (
        await client.post("/api/events", json=event_body("J1", 1)),
        await client.post("/api/events/batch", json={"events": [event_body("J1", 1)]}),
        await client.get("/api/stations/me"),
        await client.get("/api/stations/me/operators"),
    ):
        assert response.status_code == 403, response.text
        assert field_errors(response) == {
            "authorization": "this endpoint is for stations (station token)"
        }


async def test_the_login_form_redirects_to_jobs_with_a_cookie(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    form = await client.get("/login")
    assert form.status_code == 200
    assert 'action="/login"' in form.text
    response = await client.post(
        "/login", data={"username": " north ", "password": "demo-store-pass"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/jobs"
    assert "httponly" in response.headers["set-cookie"].lower()
    me = await client.get("/api/auth/me")
    assert me.json()["username"] == "north"


async def test_the_login_form_shows_the_error_on_a_wrong_password(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    response = await client.post(
        "/login", data={"username": "north<b>", "password": "wrong-password"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert 'role="alert">unknown user name or wrong password</p>' in response.text
    assert 'value="north&lt;b&gt;"' in response.text  # kept, and escaped
    assert "set-cookie" not in response.headers


async def test_logout_page_revokes_the_session_and_redirects_to_login(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    await lab.log_in(client, "manager", "demo-manager-pass")
    token = client.cookies[SESSION_COOKIE]
    response = await client.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    _use_cookie(client, token)
    assert (await client.get("/api/auth/me")).status_code == 401
    # Logging out with no session is harmless.
    client.cookies.clear()
    assert (await client.post("/logout")).status_code == 303
