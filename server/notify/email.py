"""The e-mail adapter: a plain-text message over SMTP (STARTTLS, implicit TLS or plain), for
a store's notices and a lab manager's alerts alike."""

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from server.notify.notice import Notice
from server.notify.outcome import Outcome
from server.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mail:
    """What one e-mail says; who it goes to and from whom is the sender's business."""

    subject: str
    text: str


def notice_lines(notice: Notice) -> list[str]:
    """The notice as the lines of a message: job, milestone, when, and what the store acts on."""
    lines = [
        f"Job: {notice.job_number}",
        f"Store: {notice.store_code}",
        f"Event: {notice.headline}",
        f"At: {notice.occurred_at.isoformat()}",
    ]
    if notice.flag:
        lines.append(f"Flag: {notice.flag}")
    if notice.reason:
        lines.append(f"Reason: {notice.reason}")
    if notice.carrier:
        lines.append(f"Carrier: {notice.carrier}")
    if notice.tracking_number:
        lines.append(f"Tracking number: {notice.tracking_number}")
    if notice.box:
        lines.append(f"Box: {notice.box}")
    if notice.eta:
        lines.append(f"Estimated completion: {notice.eta.isoformat()}")
    return lines


def store_mail(notices: list[Notice]) -> Mail:
    """One notice, or a store's daily digest of several (one block each, oldest first)."""
    store = notices[0].store_code
    if len(notices) == 1:
        return Mail(
            f"[LensTrack {store}] {notices[0].subject}", "\n".join(notice_lines(notices[0])) + "\n"
        )
    blocks = ["\n".join(notice_lines(notice)) for notice in notices]
    return Mail(
        f"[LensTrack {store}] Daily digest: {len(notices)} updates", "\n\n".join(blocks) + "\n"
    )


def send_email(settings: Settings, to: str, mail: Mail) -> Outcome:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = mail.subject
    message.set_content(mail.text)
    timeout = settings.webhook_timeout_seconds
    try:
        if settings.smtp_security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=timeout,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with smtp:
            if settings.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        return Outcome.failure(f"recipient refused: {error.recipients}", retry=False)
    except (smtplib.SMTPException, OSError) as error:
        log.info("e-mail %r: %r", mail.subject, error)
        return Outcome.undeliverable()  # the lab's mail server is none of the store's business
    return Outcome(delivered=True)
