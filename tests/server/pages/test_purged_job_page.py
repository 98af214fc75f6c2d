"""A job whose patient data was purged after retention still shows its production record."""

from datetime import timedelta

from server.domain.personal_data import purge_expired
from server.models import utcnow
from server.pages.job_rows import JobRows
from tests.server.conftest import Floor, Lab
from tests.server.pages.conftest import LogIn


async def test_a_purged_job_shows_purged_on_the_store_portal_and_its_page(
    lab: Lab, floor: Floor, log_in: LogIn
) -> None:
    job_id = lab.make_job("N-1")
    floor.ship("N-1")  # shipped, not collected: the store still lists it
    retention = lab.context.settings.personal_data_retention_days
    later = utcnow() + timedelta(days=retention + 1)
    assert purge_expired(lab.context.db.session, lab.context.db.read_session, later, retention) == 1
    user = await log_in("north", "demo-store-pass")
    await user.open("/")
    (rows,) = user.find(JobRows).elements
    assert [row["patient"] for row in rows.rows] == ["Patient (purged)"]
    await user.open(f"/store/jobs/{job_id}")
    await user.should_see("Route")
    await user.should_see("QC results")
