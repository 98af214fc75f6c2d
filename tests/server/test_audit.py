"""The audit trail: who changed what, when and from where, hash-chained so tampering shows."""

import contextlib
import json
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from server import migrate
from server.context import ServerContext
from server.domain import audit, auth, breakage, changes
from server.domain.labsetup import apply_lab_config
from server.labconfig import LabConfig
from server.models import AuditEntry, Breakage, EventAction, Person, Role, Store, utcnow
from server.settings import Settings
from tests.server.conftest import Floor, Lab
from tests.server.payloads import job_body
from tests.server.test_changes import _order
from tests.server.test_cli import Cli

MANAGER = ("manager", "demo-manager-pass")
NORTH = ("north", "demo-store-pass")


def _entries(lab: Lab, since_id: int = 0) -> list[AuditEntry]:
    with lab.context.db.read_session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.id > since_id)))


def _last_id(lab: Lab) -> int:
    with lab.context.db.read_session() as session:
        return session.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1)) or 0


def _actions(entries: list[AuditEntry]) -> list[tuple[str, str]]:
    return [(entry.action, entry.subject) for entry in entries]


def _verify(lab: Lab) -> audit.Verdict:
    with lab.context.db.read_session() as session:
        return audit.verify(session)


async def test_an_order_made_over_the_api_names_who_and_from_where(
    lab: Lab, client: httpx.AsyncClient
) -> None:
    await lab.log_in(client, *MANAGER)
    before = _last_id(lab)
    created = await client.post("/api/jobs", json=job_body("J100", patient_ref="P-SECRET-77"))
    assert created.status_code == 201, created.text
    [entry] = _entries(lab, before)
    manager = lab.manager()
    assert (entry.action, entry.subject, entry.detail) == (
        "job.create",
        f"job:{created.json()['id']}",
        {"job_number": "J100"},
    )
    assert (entry.actor_kind, entry.actor_id, entry.actor_name) == (
        "person",
        manager.person_id,
        manager.name,
    )
    assert (entry.source, entry.lab_id) == ("127.0.0.1", manager.lab_id)
    assert "P-SECRET-77" not in json.dumps(audit.as_json(entry))


async def test_an_rx_edit_names_the_fields_and_never_their_values(
    lab: Lab, client: httpx.AsyncClient
) -> None:
    job_id = lab.make_job("J1")
    await lab.log_in(client, *NORTH)
    order = _order(lab, job_id, **{"right.sph": -3.75, "patient_ref": "P-SECRET-77"})
    before = _last_id(lab)
    edited = await client.patch(f"/api/jobs/{job_id}", json=order.model_dump(mode="json"))
    assert edited.status_code == 200, edited.text
    [entry] = _entries(lab, before)
    assert (entry.action, entry.subject, entry.actor_name) == (
        "job.update",
        f"job:{job_id}",
        lab.person("north").name,
    )
    assert entry.detail == {"job_number": "J1", "fields": ["patient_ref", "right.sph"]}
    dumped = json.dumps(audit.as_json(entry))
    assert "P-SECRET-77" not in dumped and "3.75" not in dumped


def test_a_change_request_its_decision_and_a_breakage_reversal_are_named(
    lab: Lab, floor: Floor
) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.start)
    floor.send("EDGE-1", "J1", EventAction.breakage, reason_code="B-CHIP")
    order = _order(lab, job_id, priority="rush")
    before = _last_id(lab)
    with lab.context.db.session() as session:
        result = changes.edit_order(session, lab.person("north"), job_id, order)
        assert result.request is not None
        request_id = result.request.id
    manager = lab.manager()
    with lab.context.db.session() as session:
        changes.accept_change(session, manager, request_id, stay=True)
        breakage_id = session.scalars(select(Breakage.id)).one()
        breakage.reverse_breakage(session, manager, breakage_id, "booked twice", utcnow())
    assert _actions(_entries(lab, before)) == [
        ("change_request.create", f"change_request:{request_id}"),
        ("job.update", f"job:{job_id}"),
        ("change_request.accept", f"change_request:{request_id}"),
        ("breakage.reverse", f"breakage:{breakage_id}"),
    ]


def test_station_events_append_nothing(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1")
    before = _last_id(lab)
    floor.send("EDGE-1", "J1", EventAction.start)
    floor.send("EDGE-1", "J1", EventAction.breakage, reason_code="B-CHIP")  # a Breakage row too
    floor.ship("J1")
    assert _entries(lab, before) == []


def test_people_and_tokens_made_on_the_server_are_the_operators(lab: Lab) -> None:
    lab_id = lab.manager().lab_id
    before = _last_id(lab)
    with lab.context.db.session() as session:
        store_id = session.scalars(select(Store.id).where(Store.code == "NORTH")).one()
        person = Person(
            lab_id=lab_id,
            username="east",
            name="Eve East",
            role=Role.store_staff,
            store_id=store_id,
        )
        session.add(person)
        auth.create_station_token(session, "EDGE-1")
        auth.create_lab_token(session, "lms")
    with lab.context.db.session() as session:
        auth.revoke_station_tokens(session, "EDGE-1")
        auth.revoke_lab_token(session, "lms")
    entries = _entries(lab, before)
    assert [entry.action for entry in entries] == [
        "person.create",
        "station_token.create",
        "lab_token.create",
        "station_token.revoke",
        "lab_token.revoke",
    ]
    assert entries[0].detail == {"username": "east"}
    assert entries[3].subject == entries[1].subject  # the very token created
    operator = audit.local_actor()
    assert {(e.actor_kind, e.actor_name, e.source) for e in entries} == {
        ("system", operator.name, "local")
    }


def test_loading_the_lab_config_records_what_it_changed(lab: Lab, lab_config: LabConfig) -> None:
    north, *others = lab_config.stores
    north = north.model_copy(update={"name": "Northside Optics"})
    renamed = lab_config.model_copy(update={"stores": [north, *others]})
    before = _last_id(lab)
    with lab.context.db.session() as session:
        apply_lab_config(session, renamed)
    store_entries = [e for e in _entries(lab, before) if e.action.startswith("store.")]
    assert [(e.action, e.detail) for e in store_entries] == [
        ("store.update", {"code": north.code, "fields": ["name"]})
    ]


def test_an_update_statement_on_an_audited_table_is_recorded_too(lab: Lab) -> None:
    before = _last_id(lab)
    with lab.context.db.session() as session:
        session.execute(update(Store).values(notify_email="desk@example.com"))
    [entry] = _entries(lab, before)
    assert (entry.action, entry.subject, entry.detail) == ("store.update", "store", {"rows": 2})


def test_a_change_rolled_back_leaves_no_entry(lab: Lab) -> None:
    before = _last_id(lab)
    with pytest.raises(RuntimeError), lab.context.db.session() as session:
        auth.create_lab_token(session, "lms")
        session.flush()  # noted in this transaction...
        raise RuntimeError("the request failed")  # ...and gone with it
    assert _entries(lab, before) == []


def test_a_change_in_a_savepoint_rolled_back_leaves_no_entry(lab: Lab) -> None:
    before = _last_id(lab)
    with lab.context.db.session() as session:
        auth.create_lab_token(session, "before")
        session.flush()
        with contextlib.suppress(RuntimeError), session.begin_nested():
            auth.create_lab_token(session, "gone")
            session.flush()
            raise RuntimeError("this part failed")
        auth.create_lab_token(session, "after")
    assert [e.detail for e in _entries(lab, before)] == [{"name": "before"}, {"name": "after"}]


def test_a_savepoint_whose_flush_fails_takes_only_its_own_changes(lab: Lab) -> None:
    """A flush that fails rolls back from its own inner transaction, not the savepoint: what
    the transaction flushed before the savepoint stays in the trail (the group writer runs
    each inspection in a savepoint that may fail)."""
    before = _last_id(lab)
    with lab.context.db.session() as session:
        auth.create_lab_token(session, "before")
        session.flush()
        with pytest.raises(IntegrityError), session.begin_nested():
            session.scalars(select(Store)).first().code = None  # type: ignore[union-attr]
            session.flush()
        auth.create_lab_token(session, "after")
    assert [e.detail for e in _entries(lab, before)] == [{"name": "before"}, {"name": "after"}]


def test_the_chain_verifies_and_names_an_edited_entry(lab: Lab) -> None:
    intact = _verify(lab)
    assert intact.bad_id is None and intact.checked == len(_entries(lab)) > 3
    third = _entries(lab)[2]
    with lab.context.db.engine.begin() as connection:
        connection.execute(
            update(AuditEntry).where(AuditEntry.id == third.id).values(detail={"fields": []})
        )
    assert _verify(lab).bad_id == third.id


def test_the_chain_names_the_entry_after_a_deleted_one(lab: Lab) -> None:
    second, third = _entries(lab)[1:3]
    with lab.context.db.engine.begin() as connection:
        connection.execute(delete(AuditEntry).where(AuditEntry.id == second.id))
    verdict = _verify(lab)
    assert (verdict.bad_id, verdict.checked) == (third.id, 1)


def test_concurrent_appends_on_postgresql_do_not_fork_the_chain(lab: Lab) -> None:
    if lab.context.db.dialect != "postgresql":
        pytest.skip("SQLite serialises every writer at BEGIN IMMEDIATE")
    both_commit = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def make_tokens(name: str) -> None:
        try:
            for round_number in range(3):
                with lab.context.db.session() as session:
                    auth.create_lab_token(session, f"{name}-{round_number}")
                    both_commit.wait()  # both transactions append (at commit) at once
        except BaseException as error:  # reported by the test below
            errors.append(error)
            both_commit.abort()

    threads = [threading.Thread(target=make_tokens, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = _entries(lab)
    assert len({entry.prev_hash for entry in entries}) == len(entries)  # no two share a parent
    assert _verify(lab).bad_id is None


async def test_a_store_persons_view_of_a_job_is_logged_and_the_labs_is_not(
    lab: Lab, client: httpx.AsyncClient
) -> None:
    job_id = lab.make_job("J1")
    await lab.log_in(client, *MANAGER)
    before = _last_id(lab)
    assert (await client.get(f"/api/jobs/{job_id}")).status_code == 200
    assert _entries(lab, before) == []
    await lab.log_in(client, *NORTH)
    assert (await client.get(f"/api/jobs/{job_id}")).status_code == 200
    assert (await client.get("/api/jobs/lookup/J1")).status_code == 200
    entries = _entries(lab, before)
    north = lab.person("north")
    assert [(e.action, e.subject, e.actor_id, e.source) for e in entries] == [
        ("prescription.view", f"job:{job_id}", north.person_id, "127.0.0.1")
    ] * 2
    assert _verify(lab).bad_id is None


async def test_a_view_that_cannot_be_logged_is_still_answered(
    lab: Lab,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job_id = lab.make_job("J1")
    await lab.log_in(client, *NORTH)

    def write_lock_busy(*_args: object) -> None:
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    monkeypatch.setattr(audit, "append", write_lock_busy)
    assert (await client.get(f"/api/jobs/{job_id}")).status_code == 200
    assert "could not log a prescription view" in caplog.text


async def test_another_stores_job_is_not_logged_as_viewed(
    lab: Lab, client: httpx.AsyncClient
) -> None:
    job_id = lab.make_job("S1", store="SOUTH")
    await lab.log_in(client, *NORTH)
    before = _last_id(lab)
    assert (await client.get(f"/api/jobs/{job_id}")).status_code == 404
    assert _entries(lab, before) == []


def test_lenstrack_audit_verify_catches_an_edited_row(
    tmp_path: Path, lab_config: LabConfig
) -> None:
    cli = Cli(tmp_path)
    migrate.upgrade(cli.database_url)
    context = ServerContext(Settings(database_url=cli.database_url, data_dir=tmp_path))
    with context.db.session() as session:
        apply_lab_config(session, lab_config)
    assert "audit trail intact" in cli.ok("audit", "verify")
    shown = [
        json.loads(line) for line in cli.ok("audit", "show", "--subject", "lab:1").splitlines()
    ]
    assert [entry["action"] for entry in shown] == ["lab.create", "lab.update"]
    with context.db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_entry SET actor_name = 'someone else' WHERE id = 2"))
    context.db.dispose()
    tampered = cli.run("audit", "verify")
    assert tampered.returncode == 1
    assert "entry 2" in tampered.stderr
