"""A store's milestone messages end to end: chosen per store, derived from what happens on
the floor, sent by e-mail (a real aiosmtpd sink) and signed webhook (a real receiver), at once
or in a daily digest; never with the prescription or the patient's name."""

import json
from datetime import timedelta

from pydantic import SecretStr
from sqlalchemy import select

from lenstrack.mail_sink import MailSink
from server.domain.jobs import create_job, mark_ready_for_pickup
from server.domain.lab_time import lab_zone
from server.models import EventAction, JobUpdate, NotificationDelivery, utcnow
from server.notify import manage
from server.notify.enqueue import DIGEST
from server.notify.preferences import Milestone, next_digest_at
from server.notify.schemas import StoreNotifications
from server.notify.worker import DeliveryWorker
from server.schemas import JobCreate, JobUpdateOut
from tests.liveserver import free_port
from tests.server.conftest import Floor, Lab
from tests.server.payloads import job_body
from tests.server.test_notify_delivery import (  # noqa: F401 (fixtures)
    Receiver,
    _add_webhook,
    local_receivers_allowed,
    receiver,
)

PATIENT = "Jane Patient-Doe"
SHIPMENT = {"carrier": "DHL", "tracking_number": "JD0146000012345", "box": "BOX-7"}


def _choose(lab: Lab, mode: str, smtp_port: int, milestones: list[Milestone]) -> None:
    """NORTH's manager chooses; the lab's mail server is the one on `smtp_port`."""
    lab.context.settings = lab.context.settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "smtp_security": "none",
            "smtp_password": SecretStr(""),
        }
    )
    wanted = StoreNotifications(
        notify_email="orders@north.test", milestones=milestones, email_mode=mode, digest_hour=7
    )
    with lab.context.db.session() as session:
        manage.update_settings(session, lab.person("north"), None, wanted)


def _order(lab: Lab, number: str, promised_in: timedelta) -> int:
    now = utcnow()
    body = job_body(number, patient_ref=PATIENT, promised_at=(now + promised_in).isoformat())
    with lab.context.db.session() as session:
        job = create_job(session, lab.manager(), JobCreate.model_validate(body))
        session.flush()
        return job.id


def _enqueue_feed(lab: Lab, worker: DeliveryWorker) -> None:
    """What the live bus does: every feed entry offered to the worker, in order (each is
    enqueued once however often it is offered)."""
    with lab.context.db.session() as session:
        rows = session.scalars(select(JobUpdate).order_by(JobUpdate.id))
        updates = [JobUpdateOut.model_validate(row) for row in rows]
    for update in updates:
        worker.enqueue(update)


def _deliveries(lab: Lab) -> list[NotificationDelivery]:
    with lab.context.db.session() as session:
        return list(session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)))


def _deliver(lab: Lab, worker: DeliveryWorker) -> None:
    _enqueue_feed(lab, worker)
    while worker.run_once():
        pass


def test_every_milestone_reaches_email_and_webhook_without_rx_or_patient(
    lab: Lab,
    floor: Floor,
    worker: DeliveryWorker,
    receiver: Receiver,  # noqa: F811 (the fixture)
    mail_sink: MailSink,
) -> None:
    _choose(lab, "immediate", mail_sink.port, list(Milestone))
    _add_webhook(lab, receiver.url, kinds=["job_delivered"])  # gets the milestones anyway
    job_id = _order(lab, "J500", promised_in=-timedelta(minutes=30))  # received, and late
    _deliver(lab, worker)  # as it happens: the late message carries the ETA of that moment
    floor.send("EDGE-1", "J500", EventAction.start)  # in production
    floor.send("EDGE-1", "J500", EventAction.breakage, reason_code="B-CHIP")
    for station in ("EDGE-1", "FIT-1", "QC-1", "SHIP-1"):
        floor.send(station, "J500", EventAction.start)
        if station == "SHIP-1":
            floor.send(station, "J500", EventAction.complete, shipment=SHIPMENT)
        else:
            floor.complete(station, "J500")  # QC-1: passed
    with lab.context.db.session() as session:
        mark_ready_for_pickup(session, lab.person("north"), job_id)
    _deliver(lab, worker)

    assert {delivery.status for delivery in _deliveries(lab)} == {"delivered"}
    bodies = [json.loads(request.body) for request in receiver.requests]
    assert all(request.verified() for request in receiver.requests)
    assert {body["milestone"] for body in bodies} == set(Milestone)
    mails = {mail.subject: mail for mail in mail_sink.mails}
    assert len(mails) == len(bodies) == len(mail_sink.mails)
    for mail in mail_sink.mails:
        assert mail.recipients == ["orders@north.test"]
        assert "Job: J500\n" in mail.text and "Store: NORTH\n" in mail.text
    for milestone in ("order received", "in production", "passed quality control"):
        assert f"[LensTrack NORTH] Job J500: {milestone}" in mails
    shipped = mails["[LensTrack NORTH] Job J500: shipped"].text
    assert "Carrier: DHL\nTracking number: JD0146000012345\nBox: BOX-7\n" in shipped
    late = mails["[LensTrack NORTH] Job J500: late or at risk (late)"].text
    assert "Reason: Promised for" in late and "Now expected" in late
    assert "Estimated completion: " in late
    assert "[LensTrack NORTH] Job J500: rework or breakage (breakage)" in mails
    assert "[LensTrack NORTH] Job J500: ready for pickup" in mails
    # Neither the patient nor the prescription leaves the lab, in any message of any kind.
    sent = [request.body.decode() for request in receiver.requests]
    sent += [mail.message.as_string() for mail in mail_sink.mails]
    for text in sent:
        for secret in (PATIENT, "Patient", "sph", "cyl", "-1.25", "axis"):
            assert secret not in text


def test_a_digest_store_gets_one_email_at_its_hour_and_a_failed_one_is_retried(
    lab: Lab, floor: Floor, worker: DeliveryWorker, mail_sink: MailSink
) -> None:
    _choose(lab, "digest", free_port(), [Milestone.order_received, Milestone.in_production])
    _order(lab, "J601", promised_in=timedelta(days=2))
    _order(lab, "J602", promised_in=timedelta(days=2))
    floor.send("EDGE-1", "J601", EventAction.start)
    now = utcnow()
    _enqueue_feed(lab, worker)

    deliveries = _deliveries(lab)
    assert [delivery.channel for delivery in deliveries] == [DIGEST] * 3
    with lab.context.db.session() as session:
        zone = lab_zone(session, 1)
    due = next_digest_at(now, zone, 7)
    assert (due.astimezone(zone).hour, due.minute) == (7, 0) and now < due <= now + timedelta(1)
    assert {delivery.next_attempt_at for delivery in deliveries} == {due}
    assert worker.run_once(due - timedelta(minutes=1)) == 0  # not yet its hour

    assert worker.run_once(due) == 1  # one e-mail for the three; the mail server is down
    with lab.context.db.session() as session:
        page = manage.list_deliveries(
            session, manage.store_for(session, lab.manager(), "NORTH"), 50, 0
        )
    assert {(item.status, item.attempts, item.last_error) for item in page.items} == {
        ("pending", 1, "could not deliver")
    }
    assert len({item.next_attempt_at for item in page.items}) == 1  # retried together

    lab.context.settings = lab.context.settings.model_copy(update={"smtp_port": mail_sink.port})
    assert worker.run_once(due + timedelta(hours=2)) == 1
    (mail,) = mail_sink.mails
    assert mail.subject == "[LensTrack NORTH] Daily digest: 3 updates"
    assert mail.text.count("Event: order received") == 2
    assert mail.text.count("Event: in production") == 1
    assert {delivery.status for delivery in _deliveries(lab)} == {"delivered"}
