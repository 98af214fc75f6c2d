"""Pages refuse a malformed path as the API does: a 4xx naming the field, never a 5xx, never
echoing what was sent (issue #14, findings 4 and 7)."""

import pytest

from tests.server.conftest import Lab
from tests.server.pages.conftest import LogIn
from tests.server.payloads import field_errors

ECHO = "not-a-number"
PAGES = ("/store/jobs/{}", "/store/orders/{}/edit")
BAD_IDS = ("9223372036854775808", "0", "-1", ECHO)


@pytest.mark.parametrize("page", PAGES)
async def test_a_bad_job_id_in_a_page_path_is_a_422_without_echo(
    lab: Lab, log_in: LogIn, page: str
) -> None:
    user = await log_in("north", "demo-store-pass")
    for job_id in BAD_IDS:
        response = await user.http_client.get(page.format(job_id))
        assert response.status_code == 422, (job_id, response.status_code, response.text[:300])
        assert list(field_errors(response)) == ["job_id"]
        assert job_id not in response.text
