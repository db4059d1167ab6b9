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
import json
import time
import uuid
from dataclasses import dataclass, field

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
            headers={"content-type": "application/json", "x-qaqpa-signature": self.sign(body, secret)},
        )

    def pay(self, student_ref: str, amount_tiyn: int, *, txid: str | None = None) -> httpx.Response:
        """A parent pays: a new transaction, then its callback."""
        payment = Payment(txid or f"sim-{uuid.uuid4().hex[:16]}", student_ref, amount_tiyn, int(time.time() * 1000))
        self.sent.append(payment)
        return self.callback(payment)

    def repeat(self, index: int = -1) -> httpx.Response:
        """The provider retries a callback it already sent (same body, same signature)."""
        return self.callback(self.sent[index])


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
