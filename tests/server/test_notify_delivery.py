"""Webhooks and e-mail end to end: a real local receiver and SMTP sink on 127.0.0.1.

The worker's round (`run_once`) is driven directly on a controlled clock, so retries need
no sleeping.
"""

import asyncio
import base64
import ipaddress
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from server.context import ServerContext
from server.models import (
    EventAction,
    JobUpdate,
    NotificationDelivery,
    Store,
    StoreWebhook,
    utcnow,
)
from server.notify import manage, outbound
from server.notify.schemas import WebhookIn
from server.notify.webhook import verify_signature
from server.notify.worker import DeliveryWorker
from server.schemas import JobUpdateOut
from tests.liveserver import free_port
from tests.server.conftest import Floor, Lab

SECRET = "receiver-secret-0123456789"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def verified(self, secret: str = SECRET, now: datetime | None = None) -> bool:
        return verify_signature(
            secret,
            self.headers["x-lenstrack-timestamp"],
            self.body,
            self.headers["x-lenstrack-signature"],
            now=(now or utcnow()).timestamp(),
        )


@dataclass
class Receiver:
    """Records every POST; answers the statuses in `fail_with` first, then 200."""

    requests: list[Received] = field(default_factory=list)
    fail_with: list[int] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@contextmanager
def serving(server: socketserver.TCPServer) -> Iterator[int]:
    """Serves on a thread of its own until the block ends; gives the port."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def local_receivers_allowed(lab: Lab) -> None:
    """The receivers here listen on 127.0.0.1, which only an allow-list lets webhooks reach."""
    lab.context.settings = lab.context.settings.model_copy(
        update={"webhook_allow_http": True, "webhook_allowed_hosts": ["127.0.0.1"]}
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {key.lower(): value for key, value in self.headers.items()}
            state.requests.append(Received(headers, body))
            self.send_response(state.fail_with.pop(0) if state.fail_with else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as port:
        state.port = port
        yield state


def _add_webhook(lab: Lab, url: str, store: str = "NORTH", **fields: object) -> int:
    with lab.context.db.session() as session:
        row = session.scalar(select(Store).where(Store.code == store))
        assert row is not None
        hook, _ = manage.add_webhook(
            session, row, WebhookIn.model_validate({"url": url, "secret": SECRET, **fields})
        )
        return hook.id


def _updates(lab: Lab, kind: str) -> list[JobUpdateOut]:
    with lab.context.db.session() as session:
        rows = session.scalars(
            select(JobUpdate).where(JobUpdate.kind == kind).order_by(JobUpdate.id)
        )
        return [JobUpdateOut.model_validate(row) for row in rows]


def _deliveries(lab: Lab) -> list[NotificationDelivery]:
    with lab.context.db.session() as session:
        return list(session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)))


def _hold(lab: Lab, floor: Floor, worker: DeliveryWorker) -> JobUpdateOut:
    """A job put on hold at edging: its on_hold flag_raised update, enqueued."""
    lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.hold, reason_code="H-FRAME")
    (raised,) = _updates(lab, "flag_raised")
    worker.enqueue(raised)
    return raised


async def test_a_hold_at_a_station_reaches_the_store_receiver_signed(
    lab: Lab, floor: Floor, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await lab.log_in(client, "north", "demo-store-pass")
    created = await client.post(
        "/api/stores/me/webhooks", json={"url": receiver.url, "secret": SECRET}
    )
    assert created.status_code == 201, created.text
    worker = DeliveryWorker(lab.context)
    lab.context.bus.subscribe(worker.on_update)  # as the running server wires it

    lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.hold, reason_code="H-FRAME")
    await lab.context.bus.catch_up()
    assert worker.run_once() == 1

    (request,) = receiver.requests
    assert request.verified()
    body = json.loads(request.body)
    assert request.headers["x-lenstrack-delivery"] == str(body["delivery_id"])
    assert body["kind"] == "flag_raised"
    assert (body["job_number"], body["store_code"]) == ("J1", "NORTH")
    assert (body["flag"], body["reason"]) == ("on_hold", "On hold at Edging: waiting for frame.")
    # What leaves the lab is an allow-list: no patient reference, no prescription.
    assert set(body) == {
        "delivery_id", "kind", "milestone", "occurred_at", "store_code", "job_number", "flag",
        "reason", "eta", "carrier", "tracking_number", "box",
    }  # fmt: skip
    assert body["milestone"] is None  # a hold is no milestone; the webhook asked for its kind
    assert b"P-1" not in request.body and b"sph" not in request.body

    log = (await client.get("/api/stores/me/deliveries")).json()
    assert log["total"] == 1
    assert log["items"][0] | {"created_at": None, "delivered_at": None} == {
        "id": body["delivery_id"],
        "channel": "webhook",
        "destination_id": created.json()["id"],
        "kind": "flag_raised",
        "milestone": None,
        "job_number": "J1",
        "status": "delivered",
        "attempts": 1,
        "response_status": 200,
        "last_error": None,
        "next_attempt_at": None,
        "created_at": None,
        "delivered_at": None,
    }


def test_enqueueing_the_same_update_twice_or_from_two_processes_makes_one_row(
    lab: Lab, floor: Floor, worker: DeliveryWorker, receiver: Receiver
) -> None:
    _add_webhook(lab, receiver.url)
    raised = _hold(lab, floor, worker)
    assert worker.enqueue(raised) == 0
    other_process = ServerContext(lab.context.settings)
    try:
        assert DeliveryWorker(other_process).enqueue(raised) == 0
        threads = [
            threading.Thread(target=DeliveryWorker(other_process).enqueue, args=(raised,))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        other_process.db.dispose()
    assert len(_deliveries(lab)) == 1


def test_only_matching_kinds_and_active_webhooks_of_the_store_are_enqueued(
    lab: Lab, floor: Floor, worker: DeliveryWorker, receiver: Receiver
) -> None:
    _add_webhook(lab, receiver.url, kinds=["job_ready"])
    _add_webhook(lab, receiver.url, store="SOUTH")
    removed = _add_webhook(lab, receiver.url)
    with lab.context.db.session() as session:
        manage.remove_webhook(session, session.get_one(Store, 1), removed)
    _hold(lab, floor, worker)
    (eta_or_changed, *_) = _updates(lab, "job_changed")
    assert worker.enqueue(eta_or_changed) == 0  # not a notified kind
    assert _deliveries(lab) == []


def test_a_claimed_delivery_is_not_claimed_again_by_another_process(
    lab: Lab, floor: Floor, worker: DeliveryWorker, receiver: Receiver
) -> None:
    _add_webhook(lab, receiver.url)
    _hold(lab, floor, worker)
    now = utcnow()
    other_process = ServerContext(lab.context.settings)
    try:
        assert len(worker._claim(now)) == 1
        assert DeliveryWorker(other_process)._claim(now) == []
    finally:
        other_process.db.dispose()
    # Unsent (this process died mid-send): due again once the lease is over.
    assert worker.run_once(now + worker.lease + timedelta(seconds=1)) == 1
    assert len(receiver.requests) == 1


def test_two_failures_then_success_is_delivered_on_the_third_attempt(
    lab: Lab, floor: Floor, worker: DeliveryWorker, receiver: Receiver
) -> None:
    _add_webhook(lab, receiver.url)
    _hold(lab, floor, worker)
    receiver.fail_with = [500, 503]
    now = utcnow()
    assert worker.run_once(now) == 1
    (delivery,) = _deliveries(lab)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 1, 500)
    assert delivery.last_error == "HTTP 500"
    assert timedelta(seconds=24) <= delivery.next_attempt_at - now <= timedelta(seconds=36)
    assert worker.run_once(now + timedelta(seconds=20)) == 0  # not due yet

    now += timedelta(seconds=40)
    assert worker.run_once(now) == 1
    (delivery,) = _deliveries(lab)
    assert (delivery.attempts, delivery.last_error) == (2, "HTTP 503")
    assert timedelta(seconds=48) <= delivery.next_attempt_at - now <= timedelta(seconds=72)

    now += timedelta(seconds=80)
    assert worker.run_once(now) == 1
    (delivery,) = _deliveries(lab)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 3, 200)
    assert delivery.last_error == "HTTP 503"  # the log keeps why it took three
    assert delivery.delivered_at == now.replace(microsecond=delivery.delivered_at.microsecond)
    # Each retry is signed afresh with its own time, and carries the same delivery id.
    assert len(receiver.requests) == 3
    assert len({request.headers["x-lenstrack-delivery"] for request in receiver.requests}) == 1
    assert receiver.requests[-1].verified(now=now)


def test_it_gives_up_after_the_configured_attempts(
    lab: Lab, floor: Floor, worker: DeliveryWorker, receiver: Receiver
) -> None:
    lab.context.settings = lab.context.settings.model_copy(update={"notify_max_attempts": 3})
    _add_webhook(lab, receiver.url)
    _hold(lab, floor, worker)
    receiver.fail_with = [500] * 10
    now = utcnow()
    for _ in range(5):
        worker.run_once(now)
        now += timedelta(hours=2)
    (delivery,) = _deliveries(lab)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 3, "HTTP 500")
    assert len(receiver.requests) == 3


def test_a_dead_port_is_recorded_as_undeliverable_and_retried(
    lab: Lab, floor: Floor, worker: DeliveryWorker
) -> None:
    _add_webhook(lab, f"http://127.0.0.1:{free_port()}/hook")
    _hold(lab, floor, worker)
    now = utcnow()
    assert worker.run_once(now) == 1
    (delivery,) = _deliveries(lab)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 1, None)
    assert delivery.last_error == "could not deliver"
    assert worker.run_once(now + timedelta(minutes=1)) == 1
    assert _deliveries(lab)[0].attempts == 2


def test_the_log_tells_no_network_failure_from_another(
    lab: Lab, floor: Floor, worker: DeliveryWorker
) -> None:
    """Refused, timed out or not allowed all read alike: the log is no port scanner."""
    lab.context.settings = lab.context.settings.model_copy(update={"webhook_timeout_seconds": 0.5})
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        hooks = [
            f"http://127.0.0.1:{free_port()}/hook",  # connection refused
            f"http://127.0.0.1:{silent.getsockname()[1]}/hook",  # read timeout
            "http://169.254.169.254/latest/meta-data",  # not allowed
        ]
        for url in hooks:
            _add_webhook(lab, url)
        _hold(lab, floor, worker)
        assert worker.run_once() == len(hooks)
    deliveries = _deliveries(lab)
    assert [(row.last_error, row.response_status) for row in deliveries] == [
        ("could not deliver", None)
    ] * len(hooks)


def _resolving(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    monkeypatch.setattr(outbound, "resolve", lambda _host, _port: [ipaddress.ip_address(address)])


def test_a_name_that_now_resolves_inside_is_refused_and_the_checked_address_is_used(
    lab: Lab,
    floor: Floor,
    worker: DeliveryWorker,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: registered while public, the name later answers 127.0.0.1."""
    lab.context.settings = lab.context.settings.model_copy(update={"webhook_allowed_hosts": []})
    url = f"http://hooks.example:{receiver.port}/hook"
    _resolving(monkeypatch, "93.184.215.14")
    outbound.check(url, outbound.OutboundPolicy.from_settings(lab.context.settings))
    _add_webhook(lab, url)
    _hold(lab, floor, worker)

    _resolving(monkeypatch, "127.0.0.1")
    now = utcnow()
    assert worker.run_once(now) == 1
    (delivery,) = _deliveries(lab)
    assert (delivery.status, delivery.last_error) == ("pending", "could not deliver")
    assert receiver.requests == []

    # Once the lab allows the address, the request goes to the very address checked (the
    # name itself resolves nowhere here), and the receiver still sees its own name.
    lab.context.settings = lab.context.settings.model_copy(
        update={"webhook_allowed_hosts": ["127.0.0.0/8"]}
    )
    assert worker.run_once(now + timedelta(minutes=2)) == 1
    assert _deliveries(lab)[0].status == "delivered"
    (request,) = receiver.requests
    assert request.headers["host"] == f"hooks.example:{receiver.port}"


def test_410_gone_fails_the_delivery_and_deactivates_the_webhook(
    lab: Lab, floor: Floor, worker: DeliveryWorker, receiver: Receiver
) -> None:
    hook_id = _add_webhook(lab, receiver.url)
    _hold(lab, floor, worker)
    receiver.fail_with = [410]
    worker.run_once()
    (delivery,) = _deliveries(lab)
    assert (delivery.status, delivery.response_status) == ("failed", 410)
    with lab.context.db.session() as session:
        assert not session.get_one(StoreWebhook, hook_id).active
    floor.send("EDGE-1", "J1", EventAction.release)
    (cleared,) = _updates(lab, "flag_cleared")
    assert worker.enqueue(cleared) == 0


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class SmtpSink:
    mails: list[Mail] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """Just enough ESMTP for smtplib: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""
    sink = SmtpSink()

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            self.reply("220 sink ESMTP")
            sender, recipients = "", []
            for _ in range(50):  # one short conversation per message
                command = self.rfile.readline().decode().strip()
                verb, _, argument = command.partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    self.reply("250-sink\r\n250 AUTH PLAIN")
                elif verb == "AUTH":
                    login = base64.b64decode(argument.split()[1]).split(b"\0")
                    sink.logins.append(f"{login[1].decode()}:{login[2].decode()}")
                    self.reply("235 ok")
                elif verb == "MAIL":
                    sender = argument.split(":", 1)[1].strip("<> ")
                    self.reply("250 ok")
                elif verb == "RCPT":
                    recipients.append(argument.split(":", 1)[1].strip("<> "))
                    self.reply("250 ok")
                elif verb == "DATA":
                    self.reply("354 go on")
                    lines = []
                    for _ in range(1000):
                        line = self.rfile.readline()
                        if line in (b".\r\n", b""):
                            break
                        lines.append(line)
                    sink.mails.append(Mail(sender, recipients, b"".join(lines)))
                    self.reply("250 queued")
                elif verb in ("QUIT", ""):
                    self.reply("221 bye")
                    return
                else:
                    self.reply("250 ok")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with serving(server) as port:
        sink.port = port
        yield sink


def _email_on(lab: Lab, port: int) -> None:
    lab.context.settings = lab.context.settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "smtp_username": "lab",
            "smtp_password": SecretStr("mail-pass"),
            "smtp_from": "lab@lenstrack.test",
        }
    )
    with lab.context.db.session() as session:
        store = session.scalar(select(Store).where(Store.code == "NORTH"))
        assert store is not None
        store.notify_email = "north@store.test"


def _breakage(lab: Lab, floor: Floor, worker: DeliveryWorker, job: str = "J1") -> JobUpdateOut:
    """A job broken at edging: its breakage flag_raised update (a milestone), enqueued."""
    lab.make_job(job)
    floor.send("EDGE-1", job, EventAction.start)
    floor.send("EDGE-1", job, EventAction.breakage, reason_code="B-CHIP")
    (raised,) = [
        update for update in _updates(lab, "flag_raised") if update.detail["flag"] == "breakage"
    ]
    worker.enqueue(raised)
    return raised


def test_the_store_gets_an_email_through_smtp(
    lab: Lab, floor: Floor, worker: DeliveryWorker, smtp_sink: SmtpSink
) -> None:
    _email_on(lab, smtp_sink.port)
    _hold(lab, floor, worker)
    assert _deliveries(lab) == []  # a hold is no milestone: e-mail tells milestones only
    _breakage(lab, floor, worker, "J2")
    assert worker.run_once() == 1
    (delivery,) = _deliveries(lab)
    assert (delivery.channel, delivery.status) == ("email", "delivered")
    (mail,) = smtp_sink.mails
    assert smtp_sink.logins == ["lab:mail-pass"]
    assert (mail.sender, mail.recipients) == ("lab@lenstrack.test", ["north@store.test"])
    text = mail.data.decode()
    assert "Subject: [LensTrack NORTH] Job J2: rework or breakage (breakage)" in text
    assert "Reason: Broke at Edging" in text
    assert "P-1" not in text


def test_email_is_off_without_an_smtp_host_and_retried_when_smtp_is_down(
    lab: Lab, floor: Floor, worker: DeliveryWorker
) -> None:
    with lab.context.db.session() as session:
        session.get_one(Store, 1).notify_email = "north@store.test"
    raised = _breakage(lab, floor, worker)
    assert _deliveries(lab) == []  # smtp_host empty: e-mail is off
    _email_on(lab, free_port())
    assert worker.enqueue(raised) == 1
    assert worker.run_once() == 1
    (delivery,) = _deliveries(lab)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error == "could not deliver"  # nothing of the lab's mail server


async def test_the_running_service_sends_as_soon_as_the_bus_reads_the_update(
    lab: Lab, floor: Floor, receiver: Receiver
) -> None:
    _add_webhook(lab, receiver.url)
    worker = DeliveryWorker(lab.context, interval=timedelta(minutes=10))  # no polling help
    await lab.context.bus.start()
    await worker.start()
    try:
        lab.make_job("J1")
        floor.send("EDGE-1", "J1", EventAction.hold, reason_code="H-FRAME")
        lab.context.bus.wake()  # what ServerContext.session does after the commit
        for _ in range(100):
            if receiver.requests:
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
        await lab.context.bus.stop()
    assert len(receiver.requests) == 1 and receiver.requests[0].verified()
    assert lab.context.bus.subscriber_count == 0
