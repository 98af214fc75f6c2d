"""A local SMTP sink (aiosmtpd) for the demo and the tests: it accepts every message on
127.0.0.1 and keeps it, in memory and, given a directory, as one `.eml` file each with a line
in `index.txt` (who it went to and its subject), so what the stores were sent can be read."""

import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession

from server.group_cli import free_port


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The plain-text body, its CRLF line ends read as plain newlines."""
        body = self.message.get_body(("plain",))
        content = body.get_content() if isinstance(body, EmailMessage) else ""
        return str(content).replace("\r\n", "\n")


@dataclass
class MailSink:
    directory: Path | None = None
    port: int = field(default_factory=free_port)
    mails: list[ReceivedMail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    async def handle_DATA(self, _server: SMTP, _session: SmtpSession, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        mail = ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message)
        with self._lock:
            self.mails.append(mail)
            if self.directory is not None:
                number = len(self.mails)
                (self.directory / f"{number:05d}.eml").write_bytes(content)
                with (self.directory / "index.txt").open("a") as index:
                    index.write(f"{number:05d}.eml\t{','.join(mail.recipients)}\t{mail.subject}\n")
        return "250 Message accepted for delivery"

    def start(self) -> Self:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def settings(self) -> dict[str, Any]:
        """The server settings that send to this sink (plain SMTP, no log-in)."""
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_security": "none"}
