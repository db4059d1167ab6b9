"""The dynamic QR voucher: a single-use meal voucher signed by its issuer's Ed25519 key.

The social wallet (the issuer) signs; a school verifies with the issuer's PUBLIC key, which it
receives through the signed downlink (``VoucherIssuerKey``). No shared secret exists, so no edge
(and nobody who breaks into one) can mint a voucher. Single use: the school journals the token
id with the meal it paid; the server sees every redemption and flags a token redeemed twice.

Text form (what the QR code holds, ASCII): ``QV1.<claims>.<signature>``, both parts unpadded
base64url; the claims are the canonical CBOR of a short map, the signature covers
``b"qaqpa-voucher-token\\x00" + claims bytes``. No I/O, no clock: ``today`` is passed in.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.codec import canonical, loads_plain
from protocol.errors import ProtocolError

PREFIX = "QV1"
MAX_TOKEN_CHARS = 600  # a QR code of this size still scans from a phone screen
_DOMAIN = b"qaqpa-voucher-token\x00"
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class TokenError(ValueError):
    """A QR voucher that must not be accepted; ``code`` is stable, the message is English."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class VoucherToken:
    token_id: str  # single use: the school journals it
    issuer: str
    student_id: str
    amount_tiyn: int
    valid_from: dt.date
    valid_to: dt.date  # inclusive
    meal_periods: tuple[str, ...] = ()  # empty: any meal period

    def claims(self) -> dict[str, object]:
        return {
            "t": self.token_id,
            "i": self.issuer,
            "s": self.student_id,
            "a": self.amount_tiyn,
            "f": self.valid_from.isoformat(),
            "u": self.valid_to.isoformat(),
            "p": list(self.meal_periods),
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise binascii.Error("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(token: VoucherToken, key: Ed25519PrivateKey) -> str:
    """The QR text of ``token`` signed by the issuer's private key (the issuer side only)."""
    body = canonical(token.claims())
    return f"{PREFIX}.{_b64(body)}.{_b64(key.sign(_DOMAIN + body))}"


def peek_token(text: str) -> VoucherToken:
    """The claims of a token WITHOUT checking its signature (to find the issuer's key, or to
    show whose it claims to be); never trust what this returns before ``verify_token``."""
    text = text.strip()
    if len(text) > MAX_TOKEN_CHARS:
        raise TokenError("malformed", "This is not a voucher QR code (too long).")
    parts = text.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("malformed", "This is not a voucher QR code.")
    try:
        raw = loads_plain(_unb64(parts[1]), context="voucher token")
        claims = VoucherToken(
            token_id=_text(raw["t"]),
            issuer=_text(raw["i"]),
            student_id=_text(raw["s"]),
            amount_tiyn=_amount(raw["a"]),
            valid_from=dt.date.fromisoformat(raw["f"]),
            valid_to=dt.date.fromisoformat(raw["u"]),
            meal_periods=tuple(_text(p) for p in raw["p"][:10]),
        )
    except (binascii.Error, ProtocolError, KeyError, TypeError, ValueError) as err:
        raise TokenError("malformed", "This is not a voucher QR code.") from err
    if claims.valid_to < claims.valid_from:
        raise TokenError("malformed", "This is not a voucher QR code (dates reversed).")
    return claims


def verify_token(
    text: str, issuer_keys: Mapping[str, Ed25519PublicKey], today: dt.date
) -> VoucherToken:
    """The claims of a genuine token valid on ``today``; a precise ``TokenError`` otherwise.

    ``issuer_keys``: the public keys of the issuers this school accepts (from the downlink).
    """
    claims = peek_token(text)
    key = issuer_keys.get(claims.issuer)
    if key is None:
        raise TokenError("unknown_issuer", "The voucher's issuer is not known at this school.")
    _, body_text, sig_text = text.strip().split(".")
    try:
        key.verify(_unb64(sig_text), _DOMAIN + _unb64(body_text))
    except (InvalidSignature, binascii.Error, ValueError) as err:
        raise TokenError("bad_signature", "The voucher's signature is wrong.") from err
    if today < claims.valid_from:
        raise TokenError("not_yet_valid", "The voucher is not valid yet.")
    if today > claims.valid_to:
        raise TokenError("expired", "The voucher has expired.")
    return claims


def _text(value: object) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError("bad id")
    return value


def _amount(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**9:
        raise ValueError("bad amount")
    return value
