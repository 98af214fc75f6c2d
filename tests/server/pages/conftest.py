"""NiceGUI's simulated `User` against the pages built on the test's own database.

NiceGUI keeps global state; `user_simulation` resets it around each test, and only tests in
this folder use it, so the API tests never see NiceGUI at all.
"""

import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from nicegui import app
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation
from playwright.sync_api import Browser

from server.pages import login
from server.pages.routes import register_pages
from tests.chromium import chromium
from tests.server.conftest import Lab

LogIn = Callable[[str, str], Awaitable[User]]


@pytest.fixture
async def user(lab: Lab, caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    # On exit NiceGUI drops the modules that defined pages (and their parents, `server`!) from
    # sys.modules so a main file can be run again; ours are plain imports: put them back.
    modules = dict(sys.modules)
    async with user_simulation() as simulated:
        app.state.context = lab.context  # what the log-in route reads its database from
        app.include_router(login.router)
        register_pages(lab.context)
        await lab.context.bus.start()
        try:
            yield simulated
        finally:
            await lab.context.bus.stop()
    sys.modules.update(
        {name: module for name, module in modules.items() if name not in sys.modules}
    )
    errors = [record for record in caplog.get_records("call") if record.levelno >= logging.ERROR]
    assert not errors, [record.getMessage() for record in errors]


@pytest.fixture
def log_in(user: User) -> LogIn:
    async def as_person(username: str, password: str) -> User:
        response = await user.http_client.post(
            "/login", data={"username": username, "password": password}
        )
        assert response.status_code == 303, response.text
        return user

    return as_person


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for a module of real-browser tests (skips without Chromium)."""
    with chromium() as running:
        yield running
