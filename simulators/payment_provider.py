"""A local payment provider: it "takes" a parent's payment and calls the server's callback the
way a provider does, with its transaction id, the amount, the child's id and an HMAC-SHA256
signature over the body (``X-Qaqpa-Signature: sha256=<hex>``). It can repeat a callback (a
provider retries until it gets a 2xx) and sign with a wrong key, to test the server's refusals.

``python -m simulators.payment_provider --url http://127.0.0.1:8000/canteen/api/payments/callback
--secret S --student s1-3a-1 --amount 150000``
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

CALLBACK_PATH = "/canteen/api/payments/callback"


@dataclass
class Payment:
    txid: str
    student_ref: str
    amount_tiyn: int
    paid_at_ms: int

    def body(self) -> bytes:
        return json.dumps(
            {
                "txid": self.txid,
                "student_ref": self.student_ref,
                "amount_tiyn": self.amount_tiyn,
                "paid_at_ms": self.paid_at_ms,
            },
            separators=(",", ":"),
        ).encode()


@dataclass
class PaymentProviderSimulator:
    """``client`` may be any httpx.Client (a FastAPI TestClient in tests)."""

    callback_url: str
    secret: bytes
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))
    sent: list[Payment] = field(default_factory=list)

    def sign(self, body: bytes, secret: bytes | None = None) -> str:
        return "sha256=" + hmac.new(secret or self.secret, body, hashlib.sha256).hexdigest()

    def callback(self, payment: Payment, *, secret: bytes | None = None) -> httpx.Response:
        body = payment.body()
        return self.client.post(
            self.callback_url,
            content=body,
            headers={
                "content-type": "application/json",
                "x-qaqpa-signature": self.sign(body, secret),
            },
        )

    def pay(self, student_ref: str, amount_tiyn: int, *, txid: str | None = None) -> httpx.Response:
        """A parent pays: a new transaction, then its callback."""
        payment = Payment(
            txid or f"sim-{uuid.uuid4().hex[:16]}",
            student_ref,
            amount_tiyn,
            int(time.time() * 1000),
        )
        self.sent.append(payment)
        return self.callback(payment)

    def repeat(self, index: int = -1) -> httpx.Response:
        """The provider retries a callback it already sent (same body, same signature)."""
        return self.callback(self.sent[index])


class PaymentPage:
    """The provider's payment page over real HTTP: ``GET /pay?student_ref&amount_tiyn&return``
    shows what the parent pays, ``POST /pay`` takes the money, calls the server back and sends
    the parent to ``return`` (303); a refused callback shows the server's answer (502)."""

    def __init__(self, provider: PaymentProviderSimulator, port: int = 0) -> None:
        self.provider = provider
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="payment-page", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> PaymentPage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self.provider

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _page(self, status: int, body: str, location: str | None = None) -> None:
                data = f"<!doctype html><meta charset=utf-8><title>Pay</title>{body}".encode()
                self.send_response(status)
                if location:
                    self.send_header("location", location)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fields(self, query: str) -> dict[str, str]:
                return {k: v[0] for k, v in parse_qs(query).items()}

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                f = self._fields(url.query)
                if url.path != "/pay" or not {"student_ref", "amount_tiyn", "return"} <= set(f):
                    self._page(404, "<p>not found</p>")
                    return
                hidden = "".join(
                    f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
                    for k, v in f.items()
                )
                self._page(
                    200,
                    f"<p>Pay {int(f['amount_tiyn']) / 100:.2f} KZT for {html.escape(f['student_ref'])}</p>"
                    f'<form method="post" action="/pay">{hidden}<button>Pay</button></form>',
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                f = self._fields(self.rfile.read(length).decode())
                try:
                    r = provider.pay(f["student_ref"], int(f["amount_tiyn"]))
                except (KeyError, ValueError):
                    self._page(400, "<p>bad form</p>")
                    return
                if r.status_code != 200:
                    self._page(502, f"<p>The shop refused: {html.escape(r.text)}</p>")
                    return
                self._page(303, "<p>paid</p>", location=f["return"])

        return Handler


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m simulators.payment_provider", description=__doc__)
    ap.add_argument("--url", required=True, help="the server's callback URL")
    ap.add_argument("--secret", required=True, help="the shared HMAC key")
    ap.add_argument("--student", required=True, help="the child's id (Student.ref)")
    ap.add_argument("--amount", type=int, required=True, help="tiyn")
    ap.add_argument("--txid", default=None)
    args = ap.parse_args()
    sim = PaymentProviderSimulator(args.url, args.secret.encode())
    r = sim.pay(args.student, args.amount, txid=args.txid)
    print(r.status_code, r.text)


if __name__ == "__main__":
    main()
