"""Lab alerts e-mailed to the lab managers (issue #16): enqueued with the alert, once per
alert and manager however often it is scanned or enqueued, sent by the notify worker to a
local SMTP sink with the chart, rule, value, limits and links and nothing of a patient,
checked again when sent, and the demo's planted EDGE-2 drift reaches the demo's manager."""

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from lenstrack.cli import main as lenstrack
from lenstrack.mail_sink import MailSink
from server.domain import spc
from server.domain.auth import set_password
from server.domain.bulk_seed import DRIFT_STATION
from server.domain.seed import EMAILS
from server.models import (
    LabAlert,
    NotificationDelivery,
    Person,
    Role,
    Station,
    Store,
    utcnow,
)
from server.notify import manage
from server.notify.enqueue import LAB_ALERT, enqueue_alert
from server.notify.worker import DeliveryWorker
from tests.liveserver import LiveServer, free_port
from tests.server.conftest import Lab

MANAGER_EMAIL = EMAILS["manager"]
PATIENT = "P-1"  # the patient reference Lab.make_job gives every job


def _smtp(lab: Lab, port: int) -> None:
    lab.context.settings = lab.context.settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "smtp_password": SecretStr(""),
            "public_url": "https://lab.example",
        }
    )


def _add_person(lab: Lab, username: str, role: Role, email: str | None, **fields: object) -> int:
    with lab.context.db.session() as session:
        person = Person(
            lab_id=lab.manager().lab_id,
            username=username,
            name=username.title(),
            role=role,
            email=email,
            **fields,
        )
        set_password(person, "a-long-password")
        session.add(person)
        session.flush()
        return person.id


def _finding(lab: Lab, job_id: int, at: datetime, rule: int = 2) -> spc._Finding:
    """What a scan finds on EDGE-2's sphere chart: a mean above 2σ (drawn by hand, so the
    test needs no month of history; test_spc draws real ones)."""
    with lab.context.db.session() as session:
        station = session.scalars(select(Station).where(Station.name == DRIFT_STATION)).one()
        station_id, stage = station.id, station.stage.name
    key = spc.ChartKey(measure="sph", station=DRIFT_STATION)
    point = spc.ChartPoint(job_id=job_id, job_number="J1", at=at, eye=None, value=0.0412, spread=0)
    chart = spc.ChartOut(
        key=key,
        kind=spc.ALERT_KIND,
        subgroup=spc.ALERT_SUBGROUP,
        measure_name=spc.MEASURE_NAMES["sph"],
        stage=stage,
        since=at - spc.PHASE_TWO,
        points=[point],
        baseline=0,
        limits=spc.LimitsOut(
            centre=0.0012,
            sigma=0.0104,
            lower=-0.03,
            upper=0.0324,
            spread_centre=0.02,
            spread_lower=0,
            spread_upper=0.05,
        ),
        violations=[
            spc.ViolationOut(
                rule=rule,
                description="2 of 3 points beyond 2σ on one side",
                index=0,
                side="above",
                job_id=job_id,
                job_number="J1",
                at=at,
            )
        ],
    )
    return spc._Finding(station_id, chart, chart.violations[0])


def _raise(lab: Lab, findings: list[spc._Finding], now: datetime) -> list[int]:
    with lab.context.db.session() as session:
        alerts = spc.raise_alerts(session, lab.manager().lab_id, findings, now)
        return [alert.id for alert in alerts]


def _alert_deliveries(lab: Lab) -> list[NotificationDelivery]:
    with lab.context.db.session() as session:
        return list(
            session.scalars(
                select(NotificationDelivery)
                .where(NotificationDelivery.channel == LAB_ALERT)
                .order_by(NotificationDelivery.id)
            )
        )


def test_an_alert_is_enqueued_once_for_each_active_lab_manager_with_an_address(
    lab: Lab,
) -> None:
    second = _add_person(lab, "boss2", Role.lab_manager, "boss2@lab.example")
    admin = _add_person(lab, "root2", Role.admin, "root2@lab.example")
    _add_person(lab, "gone", Role.lab_manager, "gone@lab.example", active=False)
    _add_person(lab, "quiet", Role.lab_manager, None)
    _add_person(lab, "tech9", Role.technician, "tech9@lab.example")
    with lab.context.db.session() as session:
        north = session.scalars(select(Store.id).where(Store.code == "NORTH")).one()
    _add_person(lab, "east", Role.store_staff, "east@store.example", store_id=north)
    manager = lab.manager().person_id
    now = utcnow()
    job_id = lab.make_job("J1")
    findings = [_finding(lab, job_id, now - timedelta(hours=1))]

    (alert_id,) = _raise(lab, findings, now)
    deliveries = _alert_deliveries(lab)
    assert sorted(d.destination_id for d in deliveries) == sorted([manager, second, admin])
    assert {(d.lab_alert_id, d.job_update_id, d.status) for d in deliveries} == {
        (alert_id, None, "pending")
    }
    # The next scan finds the same violation: no alert, no e-mail; nor a second process
    # enqueueing the alert again.
    assert _raise(lab, findings, now + timedelta(minutes=10)) == []
    with lab.context.db.session() as session:
        assert enqueue_alert(session, session.get_one(LabAlert, alert_id), now) == 0
    # Acknowledged, the same violation stays seen to; a later one is a new alert, mailed.
    with lab.context.db.session() as session:
        spc.acknowledge_alert(session, lab.manager(), alert_id, now)
    assert _raise(lab, findings, now + timedelta(minutes=20)) == []
    later = [_finding(lab, job_id, now)]
    (next_id,) = _raise(lab, later, now + timedelta(minutes=30))
    assert len(_alert_deliveries(lab)) == 6
    assert {d.lab_alert_id for d in _alert_deliveries(lab)[3:]} == {next_id}
    # A store's delivery log never shows the lab's alert e-mails.
    with lab.context.db.session() as session:
        store = session.get_one(Store, north)
        assert manage.list_deliveries(session, store, 50, 0).total == 0


def test_the_manager_is_mailed_the_chart_rule_figures_and_links_and_no_patient(
    lab: Lab, worker: DeliveryWorker, mail_sink: MailSink
) -> None:
    _smtp(lab, mail_sink.port)
    now = utcnow()
    job_id = lab.make_job("J1")
    (alert_id,) = _raise(lab, [_finding(lab, job_id, now - timedelta(hours=1))], now)

    assert worker.run_once() == 1
    assert worker.run_once() == 0  # sent: nothing is due any more
    (delivery,) = _alert_deliveries(lab)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 1, None)
    (mail,) = mail_sink.mails
    assert mail.recipients == [MANAGER_EMAIL]
    assert mail.subject == "[LensTrack DEMO] SPC alert: Sphere (D) at EDGE-2, rule 2 (above)"
    lines = mail.text.splitlines()
    assert lines[:6] == [
        "Chart: Sphere (D) at EDGE-2 (Edging), means of 4 lenses (X̄/R)",
        "Shift: all",
        "Material: all",
        "Rule 2: 2 of 3 points beyond 2σ on one side, above the centre line",
        "Value: +0.0412",
        "Limits: -0.0300 to +0.0324, centre line +0.0012",
    ]
    assert lines[6].startswith("Point inspected: ") and lines[6].endswith("(Europe/Berlin)")
    assert lines[-2] == (
        "Control chart: https://lab.example/lab/spc?kind=xbar_r&measure=sph&station=EDGE-2"
    )
    assert lines[-1] == "WIP board (acknowledge it there): https://lab.example/wip"
    sent = mail.subject + mail.text
    assert PATIENT not in sent and "J1" not in sent and "/store/jobs" not in sent
    with lab.context.db.session() as session:
        assert session.get_one(LabAlert, alert_id).acknowledged_at is None  # the board's job


def test_each_send_checks_again_and_retries_as_store_mail_does(
    lab: Lab, worker: DeliveryWorker, mail_sink: MailSink
) -> None:
    second = _add_person(lab, "boss2", Role.lab_manager, "boss2@lab.example")
    now = utcnow()
    job_id = lab.make_job("J1")

    def raise_seeing(minutes: int) -> int:
        (alert_id,) = _raise(lab, [_finding(lab, job_id, now + timedelta(minutes=minutes))], now)
        return alert_id

    def acknowledge(alert_id: int) -> None:
        with lab.context.db.session() as session:
            spc.acknowledge_alert(session, lab.manager(), alert_id, now)

    first = raise_seeing(-60)
    assert worker.run_once(now) == 0  # e-mail is off: nothing sent, the log says why
    assert {(d.status, d.last_error) for d in _alert_deliveries(lab)} == {
        ("failed", "e-mail is off (smtp_host is empty)")
    }

    acknowledge(first)
    raise_seeing(0)
    _smtp(lab, free_port())  # the lab's mail server is down
    with lab.context.db.session() as session:  # and boss2 left after the alert was raised
        session.get_one(Person, second).active = False
    assert worker.run_once(now) == 1
    manager, boss2 = _alert_deliveries(lab)[2:]
    assert (boss2.status, boss2.last_error) == (
        "failed",
        "the person is no active lab manager with an e-mail address any more",
    )
    assert (manager.status, manager.attempts, manager.last_error) == (
        "pending",
        1,
        "could not deliver",
    )
    assert manager.next_attempt_at > now  # backed off, as a store's e-mail is

    _smtp(lab, mail_sink.port)  # the mail server is back: the retry goes out when due
    assert worker.run_once(now + timedelta(seconds=10)) == 0
    assert worker.run_once(now + timedelta(minutes=2)) == 1
    (mail,) = mail_sink.mails
    assert mail.recipients == [MANAGER_EMAIL]
    assert _alert_deliveries(lab)[2].status == "delivered"

    acknowledge(_alert_deliveries(lab)[2].lab_alert_id or 0)
    third = raise_seeing(5)
    acknowledge(third)  # seen to on the board before its e-mail went out
    assert worker.run_once(now + timedelta(minutes=3)) == 0
    (last,) = _alert_deliveries(lab)[4:]  # boss2 is inactive now: not enqueued
    assert (last.status, last.last_error) == (
        "failed",
        "the alert was acknowledged before it was sent",
    )
    assert len(mail_sink.mails) == 1


def test_a_person_email_is_set_checked_and_cleared_by_the_cli(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = lab.context.settings
    monkeypatch.setenv("LENSTRACK_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("LENSTRACK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LENSTRACK_SETTINGS_FILE", str(settings.data_dir / "none.toml"))

    def email_of(username: str) -> str | None:
        with lab.context.db.session() as session:
            return session.scalars(select(Person.email).where(Person.username == username)).one()

    assert lenstrack(["user", "email", "--username", "qc", "--email", "quinn@lab.example"]) == 0
    assert email_of("qc") == "quinn@lab.example"
    for bad in ["quinn", "Quinn <q@lab.example>", "q@lab.example\nBcc: x@y.example"]:
        assert lenstrack(["user", "email", "--username", "qc", "--email", bad]) == 1
        assert "is no e-mail address" in capsys.readouterr().err
    assert email_of("qc") == "quinn@lab.example"
    assert lenstrack(["user", "email", "--username", "nobody", "--email", "a@b.example"]) == 1
    assert "unknown user 'nobody'" in capsys.readouterr().err
    assert lenstrack(["user", "email", "--username", "qc", "--email", ""]) == 0
    assert email_of("qc") is None


def test_the_demo_manager_is_mailed_the_planted_edge_2_drift(tmp_path: Path) -> None:
    """The demo's way: bulk history with the drift, the server's first sweep scans it, and
    the demo's mail sink gets the alert for its lab manager."""
    server = LiveServer(tmp_path / "server")
    server.cli("seed-demo", "--jobs", "500", "--bulk", "20")
    with MailSink(directory=tmp_path / "mail") as sink:
        server.env |= {f"LENSTRACK_{k.upper()}": str(v) for k, v in sink.settings().items()}
        server.start()
        try:
            for _ in range(60):
                if any(DRIFT_STATION in mail.subject for mail in sink.mails):
                    break
                time.sleep(1)
        finally:
            server.stop()
    drift = [mail for mail in sink.mails if DRIFT_STATION in mail.subject]
    assert drift, [mail.subject for mail in sink.mails]
    assert all(mail.recipients == [MANAGER_EMAIL] for mail in drift)
    assert "above the centre line" in drift[0].text
    index = (tmp_path / "mail" / "index.txt").read_text()
    assert f"{MANAGER_EMAIL}\t[LensTrack DEMO] SPC alert: Sphere (D) at {DRIFT_STATION}" in index
