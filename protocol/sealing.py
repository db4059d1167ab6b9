"""Sealing a staff PIN to one edge's X25519 key (an HPKE-like box; no I/O).

The centre never keeps a PIN or a hash of one: when the school admin sets a PIN, the server
seals it to each edge of the school and keeps only the ciphertexts, until each edge
acknowledges. Sealing: a one-time X25519 key pair; the shared secret with the edge's public key
goes through HKDF-SHA256 (salt: both public keys, info: this scheme's label) to a one-time
ChaCha20-Poly1305 key; the associated data binds the ciphertext to the school, the device, the
staff member and the PIN's version, so it cannot be replayed for another member, another edge,
or to bring back an older PIN. Only the edge's private key opens it."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.errors import ProtocolError

INFO = b"qaqpa staff pin seal v1"
_NONCE = bytes(12)  # every key is used once: a fixed nonce is safe


def pin_aad(school: str, device: str, staff_id: str, version: int) -> bytes:
    return "\x00".join(("qaqpa-pin", school, device, staff_id, str(version))).encode()


def raw_public(key: X25519PrivateKey | X25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, X25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ProtocolError(f"{what} is not base64", context="sealing") from err


def load_box_public(text: str) -> X25519PublicKey:
    return box_public_from_raw(unb64(text, "box key"))


def box_public_from_raw(raw: bytes) -> X25519PublicKey:
    if len(raw) != 32:
        raise ProtocolError(f"an X25519 public key is 32 bytes, got {len(raw)}", context="sealing")
    return X25519PublicKey.from_public_bytes(raw)


def _exchange(private: X25519PrivateKey, public: X25519PublicKey) -> bytes:
    try:
        shared = private.exchange(public)
    except ValueError as err:  # cryptography refuses a low-order point
        raise ProtocolError("the box key is a low-order point", context="sealing") from err
    if shared == bytes(32):
        raise ProtocolError("the box key is a low-order point", context="sealing")
    return shared


def _key(shared: bytes, enc: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=enc + recipient, info=INFO).derive(
        shared
    )


def seal(recipient: X25519PublicKey, plaintext: bytes, aad: bytes) -> tuple[str, str]:
    """``(enc, ct)`` in base64: the one-time public key and the ciphertext."""
    eph = X25519PrivateKey.generate()
    enc, rcpt = raw_public(eph), raw_public(recipient)
    key = _key(_exchange(eph, recipient), enc, rcpt)
    return b64(enc), b64(ChaCha20Poly1305(key).encrypt(_NONCE, plaintext, aad))


def open_sealed(private: X25519PrivateKey, enc_b64: str, ct_b64: str, aad: bytes) -> bytes:
    """The plaintext; ``ProtocolError`` when it was not sealed to this key with this ``aad``."""
    enc = unb64(enc_b64, "enc")
    if len(enc) != 32:
        raise ProtocolError("enc is not a 32-byte X25519 key", context="sealing")
    shared = _exchange(private, X25519PublicKey.from_public_bytes(enc))
    key = _key(shared, enc, raw_public(private))
    try:
        return ChaCha20Poly1305(key).decrypt(_NONCE, unb64(ct_b64, "ct"), aad)
    except InvalidTag as err:
        raise ProtocolError("the seal does not open with this key", context="sealing") from err
