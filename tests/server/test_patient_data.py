"""Patient data at rest: encrypted columns, key rotation, the retention purge (issue #14)."""

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import StatementError

from server import migrate
from server.background import Sweeper
from server.context import ServerContext
from server.crypto import (
    DataCipher,
    DataKeysError,
    MissingDataKey,
    UnknownDataKey,
    key_id,
    new_key,
    read_keys,
    write_keys,
)
from server.db import Database
from server.domain import audit, personal_data
from server.domain.seed import seed_demo
from server.labconfig import LabConfig
from server.models import (
    AuditEntry,
    ChangeRequest,
    Inspection,
    Job,
    JobChange,
    StageEvent,
    Store,
    StoreWebhook,
    utcnow,
)
from server.models import Lab as LabRow
from server.notify import manage
from server.notify.schemas import WebhookIn
from server.settings import Settings
from tests.conftest import _postgres_database
from tests.server.conftest import Floor, Lab
from tests.server.test_cli import Cli

MANAGER = ("manager", "demo-manager-pass")
SECRET = "a-webhook-secret-of-the-store"
# Raw columns that hold personal data, read with plain SQL (no ORM, no key).
RAW_PERSONAL = {
    "job": ("patient_ref", "dcs_labels"),
    "prescription_eye": (
        *("sph", "cyl", "axis", "add", "prism", "prism_base", "mono_pd", "fitting_height"),
        *("center_thickness", "verify_sph", "verify_cyl", "verify_axis"),
    ),
    "change_request": ("changes",),
    "job_change": ("old_value", "new_value"),
    "store_webhook": ("secret",),
}


def raw_values(database_url: str) -> dict[str, list[object]]:
    """Every personal column's stored values, as the database holds them."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                f"{table}.{name}": list(
                    connection.scalars(text(f'SELECT "{name}" FROM {table} ORDER BY id'))
                )
                for table, names in RAW_PERSONAL.items()
                for name in names
            }
    finally:
        engine.dispose()


def add_personal_history(lab: Lab, job_id: int) -> None:
    """What an accepted Rx change and a priority change leave behind, and a webhook."""
    with lab.context.db.session() as session:
        session.add(
            ChangeRequest(job_id=job_id, changes={"right": {"sph": -1.5}, "priority": "rush"})
        )
        session.add(JobChange(job_id=job_id, field="right.sph", old_value=-1.25, new_value=-1.5))
        session.add(
            JobChange(job_id=job_id, field="priority", old_value="regular", new_value="rush")
        )
        session.get_one(Job, job_id).dcs_labels = {"LMATID": "70", "_LT_PATIENT": "P-1"}
        store = session.scalar(select(Store).where(Store.code == "NORTH"))
        assert store is not None
        manage.add_webhook(
            session,
            store,
            WebhookIn(url="https://store.example/hook", secret=SECRET, kinds=["job_ready"]),
        )


@pytest.fixture
async def manager(client: httpx.AsyncClient, lab: Lab) -> httpx.AsyncClient:
    await lab.log_in(client, *MANAGER)
    return client


async def test_the_database_holds_no_plaintext_and_the_api_reads_it_back(
    lab: Lab, manager: httpx.AsyncClient
) -> None:
    job_id = lab.make_job("J1")
    add_personal_history(lab, job_id)
    raw = raw_values(lab.context.settings.resolved_database_url)
    assert len(raw["prescription_eye.sph"]) == 2 and len(raw["store_webhook.secret"]) == 1
    for column, values in raw.items():  # Fernet tokens (version byte 0x80), not values
        assert all(str(v).startswith("gAAAAA") for v in values if v is not None), column
    response = await manager.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    card = response.json()
    assert card["patient_ref"] == "P-1"
    right = next(eye for eye in card["prescription"] if eye["eye"] == "R")
    assert (right["sph"], right["cyl"], right["axis"]) == (-1.25, -0.5, 90)
    with lab.context.db.session() as session:
        [_, eye] = session.get_one(Job, job_id).prescription  # L, R
        assert (type(eye.sph), type(eye.axis), eye.add) == (float, int, None)
        assert session.scalar(select(StoreWebhook.secret)) == SECRET


def test_an_engine_without_the_data_key_refuses_personal_columns(lab: Lab) -> None:
    lab.make_job("J1")
    keyless = Database(lab.context.settings.resolved_database_url)
    try:
        with pytest.raises(MissingDataKey), keyless.session() as session:
            session.scalars(select(Job)).all()
    finally:
        keyless.dispose()


def test_a_wrong_key_file_is_named_when_reading(lab: Lab) -> None:
    lab.make_job("J1")
    stranger = Database(lab.context.settings.resolved_database_url, DataCipher([new_key()]))
    try:
        with pytest.raises(UnknownDataKey, match="data_keys"), stranger.session() as session:
            session.scalars(select(Job)).all()
    finally:
        stranger.dispose()


def test_keys_rotate_reencrypts_everything_and_drops_the_old_key(lab: Lab) -> None:
    settings = lab.context.settings
    job_id = lab.make_job("J1")
    add_personal_history(lab, job_id)
    [old_key] = read_keys(settings.resolved_data_keys_file)
    before = raw_values(settings.resolved_database_url)

    rotation = personal_data.rotate_data_keys(
        settings.resolved_data_keys_file, settings.resolved_database_url
    )

    assert rotation.old_keys_dropped
    [new_key] = read_keys(settings.resolved_data_keys_file)
    assert new_key != old_key
    after = raw_values(settings.resolved_database_url)
    old_cipher = DataCipher([old_key])
    tokens = [token for values in after.values() for token in values if token is not None]
    assert rotation.rewritten == len(tokens) == 13  # every value the job and webhook hold
    for column, values in after.items():
        assert [v is None for v in values] == [v is None for v in before[column]], column
    for token in tokens:
        assert token not in before[token_column(after, token)]
        with pytest.raises(InvalidToken):
            old_cipher.decrypt(token)
    # A server started after the rotation reads the new key file and the same values.
    rotated = ServerContext(
        Settings(database_url=settings.database_url, data_dir=settings.data_dir, secret_key="x")
    )
    try:
        with rotated.db.session() as session:
            job = session.get_one(Job, job_id)
            assert job.patient_ref == "P-1"
            assert [(eye.sph, eye.axis) for eye in job.prescription] == [(-1.0, None), (-1.25, 90)]
            assert session.scalar(select(StoreWebhook.secret)) == SECRET
    finally:
        rotated.db.dispose()
    again = personal_data.rotate_data_keys(
        settings.resolved_data_keys_file, settings.resolved_database_url
    )
    assert again.old_keys_dropped and again.rewritten == rotation.rewritten


def token_column(raw: dict[str, list[object]], token: str) -> str:
    return next(column for column, values in raw.items() if token in values)


def ship_and_deliver(lab: Lab, floor: Floor, job_number: str) -> int:
    job_id = lab.make_job(job_number)
    floor.ship(job_number)
    with lab.context.db.session() as session:
        session.get_one(Job, job_id).delivered_at = utcnow()
    return job_id


def past_retention(lab: Lab) -> datetime:
    return utcnow() + timedelta(days=lab.context.settings.personal_data_retention_days + 1)


def purge(lab: Lab, now: datetime, retention: int, dry_run: bool = False) -> int:
    """`purge_expired` with the write and read sessions of the lab's database."""
    db = lab.context.db
    return personal_data.purge_expired(db.session, db.read_session, now, retention, dry_run)


def test_the_purge_write_checks_again_the_jobs_its_read_found(lab: Lab, floor: Floor) -> None:
    """The purge searches in a read session, then purges in its write only those found that
    still qualify: a job reopened or used in between is kept."""
    shipped = [ship_and_deliver(lab, floor, number) for number in ("J1", "J2")]
    active = lab.make_job("J3")
    retention = lab.context.settings.personal_data_retention_days
    cutoff = personal_data.purge_cutoff(past_retention(lab), retention)
    with lab.context.db.read_session() as session:
        assert personal_data.purgeable_job_ids(session, cutoff) == shipped
        found = personal_data.purgeable_job_ids(session, cutoff, among=[shipped[1], active])
        assert found == [shipped[1]]
        within = personal_data.purge_cutoff(utcnow(), retention)  # still kept today
        assert personal_data.purgeable_job_ids(session, within, among=shipped) == []


def test_purge_forgets_the_patient_and_keeps_the_production_record(lab: Lab, floor: Floor) -> None:
    shipped = ship_and_deliver(lab, floor, "J1")
    add_personal_history(lab, shipped)
    active = lab.make_job("J2")
    open_session = lab.context.db.session
    with open_session() as session:
        events = session.scalar(select(func.count()).where(StageEvent.job_id == shipped))
        inspections = session.scalar(select(func.count()).where(Inspection.job_id == shipped))
    assert events == 8 and inspections == 1
    retention = lab.context.settings.personal_data_retention_days
    # Within retention nothing is purged; a dry run counts and changes nothing.
    assert purge(lab, utcnow(), retention) == 0
    assert purge(lab, past_retention(lab), retention, True) == 1
    assert lab.job(shipped).patient_ref == "P-1"

    assert purge(lab, past_retention(lab), retention) == 1

    with open_session() as session:
        job = session.get_one(Job, shipped)
        assert (job.patient_ref, job.prescription, job.dcs_labels) == (None, [], None)
        assert job.personal_data_purged_at is not None
        assert (job.job_number, job.route_code) == ("J1", "stock_sv")
        assert session.scalar(select(func.count()).where(StageEvent.job_id == shipped)) == events
        assert session.scalar(select(func.count()).where(Inspection.job_id == shipped)) == 1
        changes = {c.field: (c.old_value, c.new_value) for c in session.scalars(select(JobChange))}
        assert changes == {"right.sph": (None, None), "priority": ("regular", "rush")}
        assert session.scalar(select(ChangeRequest.changes)) == {"priority": "rush"}
        assert session.get_one(Job, active).patient_ref == "P-1"  # not finished: kept
    assert purge(lab, past_retention(lab), retention) == 0
    # Purged stays purged under rotation; retention 0 keeps everything forever.
    settings = lab.context.settings
    personal_data.rotate_data_keys(settings.resolved_data_keys_file, settings.resolved_database_url)
    assert raw_values(settings.resolved_database_url)["job.patient_ref"][0] is None
    assert purge(lab, past_retention(lab), 0, dry_run=True) == 0


async def test_a_purged_job_answers_without_error(
    lab: Lab, floor: Floor, manager: httpx.AsyncClient
) -> None:
    shipped = ship_and_deliver(lab, floor, "J1")
    add_personal_history(lab, shipped)
    retention = lab.context.settings.personal_data_retention_days
    purge(lab, past_retention(lab), retention)
    response = await manager.get(f"/api/jobs/{shipped}")
    assert response.status_code == 200, response.text
    card = response.json()
    assert (card["patient_ref"], card["prescription"]) == (None, [])
    assert card["personal_data_purged_at"] is not None
    assert (await manager.get("/api/jobs")).status_code == 200
    ticket = await manager.get(f"/api/jobs/{shipped}/ticket.pdf")
    assert ticket.status_code == 200, ticket.text
    remake = await manager.post(
        f"/api/jobs/{shipped}/remakes", json={"remake_class": "lab_redo", "reason": "scratch"}
    )
    assert remake.status_code == 422, remake.text
    assert "purged" in remake.text and "job_id" in remake.text


def test_the_sweeper_purges_once_a_day(lab: Lab, floor: Floor) -> None:
    shipped = ship_and_deliver(lab, floor, "J1")
    sweeper = Sweeper(lab.context)
    sweeper.sweep_once(now=utcnow())
    assert lab.job(shipped).patient_ref == "P-1"
    sweeper.sweep_once(now=past_retention(lab))
    assert lab.job(shipped).patient_ref is None


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own: migrating it up and down leaves the shared one be."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'round-trip.db'}"
    else:
        yield from _postgres_database("roundtrip")


def test_migration_0013_encrypts_and_decrypts_existing_rows(
    fresh_url: str, tmp_path: Path, lab_config: LabConfig
) -> None:
    settings = Settings(database_url=fresh_url, data_dir=tmp_path, secret_key="x")
    cipher = settings.data_cipher
    migrate.upgrade(fresh_url, cipher=cipher)
    context = ServerContext(settings)
    try:
        with context.db.session() as session:
            seed_demo(session, lab_config, job_count=0)
        lab = Lab(context)
        add_personal_history(lab, lab.make_job("J1"))
    finally:
        context.db.dispose()
    encrypted = raw_values(fresh_url)

    migrate.downgrade(fresh_url, "0012", cipher)
    plain = raw_values(fresh_url)
    assert plain["job.patient_ref"] == ["P-1"]
    assert sorted(plain["prescription_eye.sph"]) == [-1.25, -1.0]  # type: ignore[type-var]
    assert plain["prescription_eye.axis"] == [90, None]
    assert plain["store_webhook.secret"] == [SECRET]
    # Rows to encrypt and no key: refused (rolled back), never stored as plaintext.
    with pytest.raises(StatementError, match="no data key"):
        migrate.upgrade(fresh_url)

    migrate.upgrade(fresh_url, cipher=cipher)
    again = raw_values(fresh_url)
    assert {c: [v is None for v in vs] for c, vs in again.items()} == {
        c: [v is None for v in vs] for c, vs in encrypted.items()
    }
    context = ServerContext(settings)
    try:
        with context.db.session() as session:
            job = session.scalars(select(Job)).one()
            assert job.patient_ref == "P-1" and job.dcs_labels == {
                "LMATID": "70",
                "_LT_PATIENT": "P-1",
            }
            assert [(e.sph, e.cyl, e.axis) for e in job.prescription] == [
                (-1.0, 0.0, None),
                (-1.25, -0.5, 90),
            ]
            assert session.scalar(select(ChangeRequest.changes))["right"] == {"sph": -1.5}
            assert session.scalar(select(StoreWebhook.secret)) == SECRET
            assert session.scalar(select(func.count()).select_from(LabRow)) == 1
    finally:
        context.db.dispose()


def test_the_cli_rotates_the_key_file_and_counts_a_dry_run(
    tmp_path: Path, lab_config: LabConfig
) -> None:
    cli = Cli(tmp_path)
    cli.ok("db", "upgrade")
    settings = Settings(database_url=cli.database_url, data_dir=tmp_path, secret_key="x")
    context = ServerContext(settings)
    try:
        with context.db.session() as session:
            seed_demo(session, lab_config, job_count=0)
        lab = Lab(context)
        ship_and_deliver(lab, Floor(lab), "J1")
    finally:
        context.db.dispose()
    [old_key] = read_keys(settings.resolved_data_keys_file)

    out = cli.ok("keys", "rotate")

    # The patient reference, both eyes' sphere and cylinder, the right eye's axis.
    assert "old keys dropped" in out and "re-encrypted 6 value(s)" in out, out
    assert read_keys(settings.resolved_data_keys_file) != [old_key]
    out = cli.ok("purge-personal-data", "--dry-run")
    assert "would purge the personal data of 0 job(s) finished more than 730 days ago" in out


def _audit_entries_after(lab: Lab, after_id: int) -> list[AuditEntry]:
    with lab.context.db.read_session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.id > after_id)))


def _last_audit_id(lab: Lab) -> int:
    with lab.context.db.read_session() as session:
        return session.scalar(select(func.max(AuditEntry.id))) or 0


def test_the_purge_names_each_job_it_purged_in_the_audit_trail(lab: Lab, floor: Floor) -> None:
    first, second = (ship_and_deliver(lab, floor, number) for number in ("J1", "J2"))
    before = _last_audit_id(lab)
    retention = lab.context.settings.personal_data_retention_days

    assert purge(lab, past_retention(lab), retention) == 2

    purged = [e for e in _audit_entries_after(lab, before) if e.action.startswith("job.")]
    assert [(e.action, e.subject, e.detail["job_number"]) for e in purged] == [
        ("job.purge", f"job:{first}", "J1"),
        ("job.purge", f"job:{second}", "J2"),
    ]
    assert {e.actor_kind for e in purged} == {"system"}
    assert len({e.at for e in purged}) == 1  # appended in the purge's one transaction
    with lab.context.db.read_session() as session:
        assert audit.verify(session).bad_id is None


def test_the_purge_audits_in_bounded_transactions(
    lab: Lab, floor: Floor, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [ship_and_deliver(lab, floor, f"J{number}") for number in range(3)]
    monkeypatch.setattr(personal_data, "BATCH", 2)
    before = _last_audit_id(lab)
    retention = lab.context.settings.personal_data_retention_days

    assert purge(lab, past_retention(lab), retention) == 3

    purged = [e for e in _audit_entries_after(lab, before) if e.action == "job.purge"]
    assert [e.subject for e in purged] == [f"job:{job_id}" for job_id in jobs]
    assert purged[0].at == purged[1].at != purged[2].at  # two jobs, then one


def test_keys_rotate_is_audited_with_key_ids_never_the_keys(lab: Lab) -> None:
    settings = lab.context.settings
    lab.make_job("J1")  # the patient reference and both eyes' sphere, cylinder, right axis
    [old_key] = read_keys(settings.resolved_data_keys_file)
    before = _last_audit_id(lab)

    rotation = personal_data.rotate_data_keys(
        settings.resolved_data_keys_file, settings.resolved_database_url
    )

    [new_key] = read_keys(settings.resolved_data_keys_file)
    [entry] = _audit_entries_after(lab, before)
    assert (entry.action, entry.subject, entry.actor_kind, entry.source) == (
        "data_keys.rotate",
        "data_keys",
        "system",
        "local",
    )
    assert entry.actor_name == audit.local_actor().name
    assert entry.detail == {
        "new_key": key_id(new_key),
        "old_keys": [key_id(old_key)],
        "values_reencrypted": rotation.rewritten,
        "old_keys_dropped": True,
    }
    assert rotation.rewritten == 6
    written = json.dumps(entry.detail)
    assert old_key not in written and new_key not in written
    assert old_key[:16] not in written and new_key[:16] not in written


def test_a_rotation_checks_each_keys_signature_once_per_value(lab: Lab) -> None:
    lab.make_job("J1")  # 6 values under the current key
    [old_key] = read_keys(lab.context.settings.resolved_data_keys_file)
    cipher = DataCipher([new_key(), old_key])
    checked = Counter[str]()

    class Counting:
        """A key's Fernet that counts its signature checks (each of these calls checks the
        HMAC once; Fernet's own internals are not patchable in the Rust implementation)."""

        def __init__(self, fernet: Fernet, name: str) -> None:
            self.fernet, self.name = fernet, name

        def extract_timestamp(self, token: bytes) -> int:
            checked[self.name] += 1
            return self.fernet.extract_timestamp(token)

        def decrypt(self, token: bytes) -> bytes:
            checked[self.name] += 1
            return self.fernet.decrypt(token)

        def encrypt(self, data: bytes) -> bytes:
            return self.fernet.encrypt(data)

    ring = cipher._ring
    counting = tuple(
        Counting(f, name) for f, name in zip(ring.fernets, ("new", "old"), strict=True)
    )
    cipher._ring = replace(ring, fernets=counting)  # type: ignore[arg-type]
    assert personal_data.reencrypt_all(lab.context.db.session, cipher) == 6
    # The new key's signature fails once per value, the old one's passes once per value.
    assert checked == {"new": 6, "old": 6}
    checked.clear()
    assert personal_data.reencrypt_all(lab.context.db.session, cipher) == 0
    assert checked == {"new": 6}  # all current: the old key is never tried


def test_a_lost_key_file_is_refused_naming_it_and_never_replaced(lab: Lab, tmp_path: Path) -> None:
    lab.make_job("J1")
    url = lab.context.settings.resolved_database_url
    lost = Settings(database_url=url, data_dir=tmp_path / "elsewhere", secret_key="x")

    with pytest.raises(DataKeysError, match="does not exist") as refused:
        ServerContext(lost)

    assert str(lost.resolved_data_keys_file) in str(refused.value)
    assert "job.patient_ref" in str(refused.value)
    assert not lost.resolved_data_keys_file.exists()  # no new key beside the old data


def test_a_wrong_key_file_is_refused_naming_it(lab: Lab, tmp_path: Path) -> None:
    lab.make_job("J1")
    wrong = Settings(
        database_url=lab.context.settings.resolved_database_url,
        data_keys_file=tmp_path / "other_keys",
        secret_key="x",
    )
    write_keys(wrong.resolved_data_keys_file, [new_key()])

    with pytest.raises(DataKeysError, match="decrypts the patient data") as refused:
        ServerContext(wrong)

    assert str(tmp_path / "other_keys") in str(refused.value)


def test_a_fresh_database_gets_a_key_generated(fresh_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=fresh_url, data_dir=tmp_path, secret_key="x")
    migrate.upgrade(fresh_url)  # tables, no rows: nothing a new key could fail to read

    assert settings.data_cipher.keys == tuple(read_keys(settings.resolved_data_keys_file))


def test_lenstrack_refuses_to_start_without_the_key_file(
    tmp_path: Path, lab_config: LabConfig
) -> None:
    cli = Cli(tmp_path)
    cli.ok("db", "upgrade")
    context = ServerContext(
        Settings(database_url=cli.database_url, data_dir=tmp_path, secret_key="x")
    )
    try:
        with context.db.session() as session:
            seed_demo(session, lab_config, job_count=0)
        Lab(context).make_job("J1")
    finally:
        context.db.dispose()
    key_file = tmp_path / "data_keys"
    key_file.unlink()

    for command in (("serve",), ("db", "upgrade")):  # the server, and a command migrating
        refused = cli.run(*command)
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert f"error: the data keys file {key_file} does not exist" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert not key_file.exists()


def test_a_running_server_follows_a_rotation_made_by_another_process(lab: Lab) -> None:
    settings = lab.context.settings
    job_id = lab.make_job("J1")
    assert lab.job(job_id).patient_ref == "P-1"  # the server's cipher is in use

    personal_data.rotate_data_keys(settings.resolved_data_keys_file, settings.resolved_database_url)

    # Values the rotation re-encrypted with a key the server never read: still readable.
    job = lab.job(job_id)
    assert (job.patient_ref, [eye.sph for eye in job.prescription]) == ("P-1", [-1.0, -1.25])
    # What the server writes from now on is under the new key alone.
    with lab.context.db.session() as session:
        session.get_one(Job, job_id).patient_ref = "P-2"
    [rotated] = read_keys(settings.resolved_data_keys_file)
    [token] = raw_values(settings.resolved_database_url)["job.patient_ref"]
    assert DataCipher([rotated]).decrypt(str(token)) == '"P-2"'


def test_a_write_open_across_the_start_of_a_rotation_keeps_its_value_readable(lab: Lab) -> None:
    settings = lab.context.settings
    job_id = lab.make_job("J1")
    rotated: list[personal_data.Rotation] = []

    def rotate() -> None:
        key_file, url = settings.resolved_data_keys_file, settings.resolved_database_url
        rotated.append(personal_data.rotate_data_keys(key_file, url))

    rotation = threading.Thread(target=rotate)
    with lab.context.db.session() as session:  # a server's edit, encrypted with the old key
        session.get_one(Job, job_id).patient_ref = "P-2"
        session.flush()
        rotation.start()
        time.sleep(0.5)  # the rotation starts meanwhile, and must not miss or undo the edit
    rotation.join(timeout=30)

    assert rotated and rotated[0].old_keys_dropped
    [new_key] = read_keys(settings.resolved_data_keys_file)
    [token] = raw_values(settings.resolved_database_url)["job.patient_ref"]
    assert DataCipher([new_key]).decrypt(str(token)) == '"P-2"'
