"""The payment provider's side of a parent's top-up, behind a small interface.

A provider (a bank's acquiring, Kaspi, a payment aggregator) calls the server back when a
parent has paid: the callback names the provider's transaction id, the amount and the child's
wire id (``Student.ref``, shown to the parent on the top-up page), and is signed. The server
books each transaction id once. ``HmacPaymentProvider`` is the contract of the local simulator
(``simulators/payment_provider.py``); a real provider gets its own subclass with its own
signature scheme and field names, nothing else changes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from server.canteen.ledger import MoneyError, check_amount

SIGNATURE_HEADER = "x-qaqpa-signature"
_TXID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_REF = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ProviderPayment:
    txid: str
    student_ref: str
    amount_tiyn: int
    paid_at_ms: int | None


class CallbackError(ValueError):
    """A callback that is refused; ``status`` is the HTTP answer, ``code`` stable."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class PaymentProvider(ABC):
    name: str

    @abstractmethod
    def checkout_url(self, student_ref: str, amount_tiyn: int, return_url: str) -> str:
        """Where to send a parent to pay ``amount_tiyn`` for the child; the provider calls the
        server back when the money is taken and sends the parent to ``return_url``."""

    @abstractmethod
    def parse_callback(self, body: bytes, headers: Mapping[str, str]) -> ProviderPayment:
        """The payment a genuine callback reports; ``CallbackError`` otherwise."""


def hmac_signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class HmacPaymentProvider(PaymentProvider):
    """JSON body ``{"txid", "student_ref", "amount_tiyn", "paid_at_ms"}`` signed with
    HMAC-SHA256 over the raw body in the ``X-Qaqpa-Signature: sha256=<hex>`` header."""

    name = "provider"

    def __init__(self, secret: bytes, checkout_base: str | None = None) -> None:
        self._secret = secret
        self._checkout = checkout_base

    def checkout_url(self, student_ref: str, amount_tiyn: int, return_url: str) -> str:
        if self._checkout is None:
            raise CallbackError(503, "no_checkout", "No payment page is configured.")
        query = urlencode(
            {"student_ref": student_ref, "amount_tiyn": amount_tiyn, "return": return_url}
        )
        return f"{self._checkout.rstrip('/')}/pay?{query}"

    def parse_callback(self, body: bytes, headers: Mapping[str, str]) -> ProviderPayment:
        sent = headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(sent.encode(), hmac_signature(self._secret, body).encode()):
            raise CallbackError(401, "bad_signature", "The callback's signature is wrong.")
        try:
            raw = json.loads(body)
        except ValueError as err:
            raise CallbackError(400, "malformed", f"The body is not JSON: {err}") from err
        if not isinstance(raw, dict):
            raise CallbackError(400, "malformed", "The body must be a JSON object.")
        txid, ref, amount = raw.get("txid"), raw.get("student_ref"), raw.get("amount_tiyn")
        if not isinstance(txid, str) or not _TXID.match(txid):
            raise CallbackError(400, "bad_txid", "txid: 1-100 characters A-Z a-z 0-9 _ . : -")
        if not isinstance(ref, str) or not _REF.match(ref):
            raise CallbackError(
                400, "bad_student_ref", "student_ref: the child's id, 1-64 characters"
            )
        try:
            check_amount(amount)  # type: ignore[arg-type]
        except MoneyError as err:
            raise CallbackError(422, f"amount_{err.code}", f"amount_tiyn: {err}") from err
        paid = raw.get("paid_at_ms")
        if paid is not None and (
            isinstance(paid, bool) or not isinstance(paid, int) or not 0 <= paid < 2**53
        ):
            raise CallbackError(400, "bad_paid_at", "paid_at_ms: milliseconds since the epoch")
        assert isinstance(amount, int)
        return ProviderPayment(txid, ref, amount, paid)
