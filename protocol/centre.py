"""The centre's signatures on everything it sends to an edge (DESIGN invariant 8, downlink).

Every downlink message (``sync_delta``, ``sync_snapshot``, ``centre_key``) and every
``event_ack`` is signed with the centre's Ed25519 key, for one device. The envelope is the usual
``{"v", "t", "b", "s"}`` (see ``protocol.codec``); for a centre signature ``"s"`` holds the
canonical CBOR of ``[key_id, issued_at_ms, signature]``. Edges of the release before this one
ignore ``"s"`` on the downlink, so a signing server still talks to them (the rollout).

The signature covers ``["qaqpa-centre", v, t, body, school, device, key_id, issued_at_ms]``:
- ``school`` and ``device`` are the receiver's: a message signed for another device (or school)
  does not verify at this one, even when its body looks right;
- ``key_id`` (``key_id()``: the first 8 bytes of SHA-256 of the raw public key, in hex) names
  the key, so an edge can hold the pinned key and the announced next one during a rotation;
- ``issued_at_ms`` (the centre's clock) lets an edge tell a replay of an old message from a
  duplicate delivered twice.
The prefix ``"qaqpa-centre"`` keeps these signatures apart from the devices' batch signatures.

Pure: no I/O, no clock (the caller passes ``issued_at_ms``).
"""

from __future__ import annotations

import base64
import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.codec import (
    SCHEMA_VERSION,
    Envelope,
    body_bytes,
    canonical,
    loads_plain,
    open_envelope,
)
from protocol.errors import ProtocolError
from protocol.messages import TYPE_NAMES, Message
from protocol.signing import load_public_key, public_key_raw

SIGNED_DOWNLINK_TYPES = frozenset(
    {"sync_delta", "sync_snapshot", "centre_key", "event_ack", "staff_pins"}
)


class Refusal(enum.StrEnum):
    """Why an edge refused a message from the centre. Stable: alarms and logs carry it."""

    UNSIGNED = "unsigned"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"  # forged, altered, or signed for another device
    WRONG_ADDRESS = "wrong_address"  # a valid signature, but the body names another device
    REPLAY = "replay"  # issued well before the newest message already accepted
    ACK_BEYOND_SENT = "ack_beyond_sent"  # an ack of seqs this edge never sent


class DownlinkRefused(ProtocolError):
    """A message from the centre that must not be applied; ``reason`` says why."""

    def __init__(self, reason: Refusal, message: str) -> None:
        self.reason = reason
        super().__init__(message, context=f"downlink {reason.value}")


def key_id(key: bytes | Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The key's id: first 8 bytes of SHA-256 of its raw public bytes, in hex."""
    raw = key if isinstance(key, bytes) else public_key_raw(key)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    return base64.b64encode(public_key_raw(key)).decode()


def load_public_key_b64(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as err:
        raise ProtocolError("the centre key is not base64", context="key") from err
    return load_public_key(raw)


@dataclass(frozen=True, slots=True)
class CentreSignature:
    key_id: str
    issued_at_ms: int
    signature: bytes


def centre_signed_bytes(
    version: int,
    type_name: str,
    body: bytes,
    school: str,
    device: str,
    kid: str,
    issued_at_ms: int,
) -> bytes:
    return canonical(["qaqpa-centre", version, type_name, body, school, device, kid, issued_at_ms])


def sign_for_device(
    msg: Message,
    key: Ed25519PrivateKey,
    *,
    school: str,
    device: str,
    issued_at_ms: int,
) -> bytes:
    """The envelope bytes of ``msg`` signed by the centre for one device."""
    type_name = TYPE_NAMES[type(msg)]
    if type_name not in SIGNED_DOWNLINK_TYPES:
        raise ProtocolError(f"{type_name} is not a centre message", context="signature")
    body = body_bytes(msg)
    kid = key_id(key)
    sig = key.sign(
        centre_signed_bytes(SCHEMA_VERSION, type_name, body, school, device, kid, issued_at_ms)
    )
    block = canonical([kid, issued_at_ms, sig])
    return canonical({"v": SCHEMA_VERSION, "t": type_name, "b": body, "s": block})


def centre_signature(env: Envelope) -> CentreSignature:
    """The signature block of ``env``; ``DownlinkRefused`` when absent or malformed."""
    if env.signature is None:
        raise DownlinkRefused(Refusal.UNSIGNED, f"unsigned {env.type_name}")
    try:
        block = loads_plain(env.signature, context="signature")
    except ProtocolError as err:
        raise DownlinkRefused(Refusal.MALFORMED, f"signature block: {err}") from err
    if (
        not isinstance(block, list)
        or len(block) != 3
        or not isinstance(block[0], str)
        or not isinstance(block[1], int)
        or isinstance(block[1], bool)
        or not 0 <= block[1] < 2**62
        or not isinstance(block[2], bytes)
        or len(block[2]) != 64
    ):
        raise DownlinkRefused(Refusal.MALFORMED, "signature block is not [key_id, ms, sig]")
    return CentreSignature(block[0], block[1], block[2])


def verify_centre(
    env: Envelope, keys: Mapping[str, Ed25519PublicKey], *, school: str, device: str
) -> CentreSignature:
    """Check that ``env`` is signed by one of ``keys`` (by id) for (school, device)."""
    if env.type_name not in SIGNED_DOWNLINK_TYPES:
        raise DownlinkRefused(Refusal.MALFORMED, f"{env.type_name} is not a centre message")
    sig = centre_signature(env)
    public = keys.get(sig.key_id)
    if public is None:
        raise DownlinkRefused(Refusal.UNKNOWN_KEY, f"signed by unknown key {sig.key_id[:16]!r}")
    signed = centre_signed_bytes(
        env.version, env.type_name, env.body, school, device, sig.key_id, sig.issued_at_ms
    )
    try:
        public.verify(sig.signature, signed)
    except InvalidSignature as err:
        raise DownlinkRefused(Refusal.BAD_SIGNATURE, f"{env.type_name}: bad signature") from err
    return sig


def open_centre_signed(
    buf: bytes, keys: Mapping[str, Ed25519PublicKey], *, school: str, device: str
) -> tuple[Envelope, CentreSignature]:
    """Open and verify; the body is not parsed until the signature holds."""
    try:
        env = open_envelope(buf)
    except ProtocolError as err:
        raise DownlinkRefused(Refusal.MALFORMED, str(err)) from err
    return env, verify_centre(env, keys, school=school, device=device)
