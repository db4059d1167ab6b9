"""Local stand-ins for the notification gateways: an SMS gateway (an HTTP sink taking the JSON
apprise's ``json://`` scheme posts) and an SMTP server (aiosmtpd). Both record what arrived, so
tests and the demo can look; the SMS sink can be told to fail N times or to be slow.

    python -m simulators.notify_sinks [--sms-port 9025] [--smtp-port 8025]

The SMS sink honours an ``Idempotency-Key`` header the way a real gateway that supports one
does: a repeated key is answered 200 and not delivered again (``requests`` counts every POST,
``delivered`` only the first of each key).
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True, slots=True)
class SmsRequest:
    path: str
    key: str | None
    to: str
    message: str
    at: float  # time.time() when it arrived
    duplicate: bool


class SmsSink:
    """An HTTP SMS gateway on 127.0.0.1 (port 0: a free one) that records every POST."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.requests: list[SmsRequest] = []
        self.arrived = 0  # POSTs received, counted as they arrive (before a slow answer)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._fail = 0
        self._fail_status = 503
        self._delay_s = 0.0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                status = sink._receive(self.path, self.headers.get("idempotency-key"), raw)
                body = b'{"ok":true}' if status == 200 else b'{"ok":false}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """No request log: it would carry parents' phone numbers."""

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.host = host
        self._thread: threading.Thread | None = None

    # --- control
    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` POSTs with ``status`` (and deliver nothing)."""
        with self._lock:
            self._fail, self._fail_status = n, status

    def slow(self, seconds: float) -> None:
        """Wait this long before answering each POST."""
        self._delay_s = seconds

    def url(self, path: str = "/sms") -> str:
        """The apprise URL of this gateway."""
        return f"json://{self.host}:{self.port}{path}"

    # --- what arrived
    @property
    def delivered(self) -> list[SmsRequest]:
        with self._lock:
            return [r for r in self.requests if not r.duplicate]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[SmsRequest]:
        """Block until ``n`` messages were delivered (or the timeout): what was delivered."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for r in self.requests if not r.duplicate) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return [r for r in self.requests if not r.duplicate]

    def _receive(self, path: str, key: str | None, raw: bytes) -> int:
        with self._lock:
            self.arrived += 1
        if self._delay_s:
            time.sleep(self._delay_s)
        at = time.time()
        try:
            doc = json.loads(raw)
        except ValueError:
            return 400
        if not isinstance(doc, dict):
            return 400
        with self._cond:
            if self._fail > 0:
                self._fail -= 1
                return self._fail_status
            dup = key is not None and any(r.key == key for r in self.requests)
            self.requests.append(
                SmsRequest(
                    path=path.split("?")[0],
                    key=key,
                    to=str(doc.get("to", "")),
                    message=str(doc.get("message", "")),
                    at=at,
                    duplicate=dup,
                )
            )
            self._cond.notify_all()
        return 200

    # --- life cycle
    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sms-sink", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    at: float

    @property
    def subject(self) -> str:
        return str(self.message["subject"] or "")

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain", "html"))
        return str(part.get_content()).strip() if part is not None else ""


class SmtpSink:
    """A local SMTP server (aiosmtpd, no auth, no TLS) that records each message."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.messages: list[Mail] = []
        self._cond = threading.Condition()
        sink = self

        class Handler:
            async def handle_DATA(
                self, _server: SMTP, _session: Session, envelope: Envelope
            ) -> str:
                raw = envelope.original_content or b""
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(msg, EmailMessage)
                with sink._cond:
                    sink.messages.append(
                        Mail(
                            sender=str(envelope.mail_from or ""),
                            recipients=[str(r) for r in envelope.rcpt_tos],
                            message=msg,
                            at=time.time(),
                        )
                    )
                    sink._cond.notify_all()
                return "250 OK"

        if port == 0:
            port = _free_port(host)
        self.host, self.port = host, port
        self._controller = Controller(Handler(), hostname=host, port=port)

    def url(self, sender: str = "qaqpa@localhost") -> str:
        """The apprise URL of this server (recipients are added per message)."""
        return f"mailto://{self.host}:{self.port}?from={sender}&mode=insecure"

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Mail]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.messages)

    def start(self) -> Self:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def demo_notifications(database_url: str, workers: int = 2) -> Iterator[tuple[SmsSink, SmtpSink]]:
    """For ``qaqpa demo``: both sinks and the notify service (planner + workers) delivering to
    them, for as long as the ``with`` lasts."""
    from server.notify.service import NotifyService
    from server.notify.settings import NotifySettings

    with SmsSink() as sms, SmtpSink() as smtp:
        settings = NotifySettings(sms_url=sms.url(), email_url=smtp.url(), workers=workers)
        with NotifyService(database_url, settings):
            yield sms, smtp


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.notify_sinks")
    p.add_argument("--sms-port", type=int, default=9025)
    p.add_argument("--smtp-port", type=int, default=8025)
    args = p.parse_args(argv)
    with SmsSink(args.sms_port) as sms, SmtpSink(args.smtp_port) as smtp:
        print(f"SMS gateway: QAQPA_NOTIFY_SMS_URL={sms.url()}", flush=True)
        print(f"SMTP server: QAQPA_NOTIFY_EMAIL_URL={smtp.url()}", flush=True)
        seen_sms = seen_mail = 0
        try:
            while True:
                time.sleep(0.5)
                for r in sms.delivered[seen_sms:]:
                    print(f"SMS to {r.to}: {r.message}", flush=True)
                    seen_sms += 1
                for m in smtp.messages[seen_mail:]:
                    print(f"mail to {', '.join(m.recipients)}: {m.text}", flush=True)
                    seen_mail += 1
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
