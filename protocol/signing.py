"""Ed25519 device signatures over event batches (DESIGN invariant 8)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.codec import Envelope, encode, open_envelope
from protocol.errors import ProtocolError
from protocol.messages import EventBatch, Message


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ProtocolError("the device key is not an Ed25519 key", context="key")
    return key


def public_key_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise ProtocolError(f"an Ed25519 public key is 32 bytes, got {len(raw)}", context="key")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign_batch(batch: EventBatch, key: Ed25519PrivateKey) -> bytes:
    """The envelope bytes of ``batch`` with the device's signature."""
    unsigned = open_envelope(encode(batch))
    return encode(batch, signature=key.sign(unsigned.signed_bytes()))


def sign_message(msg: Message, key: Ed25519PrivateKey) -> bytes:
    """The envelope bytes of any message with the device's signature (an uplink control
    message: the edge's box key, its receipt of staff PINs)."""
    unsigned = open_envelope(encode(msg))
    return encode(msg, signature=key.sign(unsigned.signed_bytes()))


def verify(envelope: Envelope, public_key: Ed25519PublicKey) -> None:
    """Raise ``ProtocolError`` unless the envelope carries a valid signature by ``public_key``."""
    if envelope.signature is None:
        raise ProtocolError("message is not signed", context="signature")
    try:
        public_key.verify(envelope.signature, envelope.signed_bytes())
    except InvalidSignature as err:
        raise ProtocolError("signature does not verify", context="signature") from err


def open_signed_batch(buf: bytes, public_key: Ed25519PublicKey) -> EventBatch:
    """Verify the signature first, then parse: an unsigned or forged body is never parsed."""
    env = open_envelope(buf)
    verify(env, public_key)
    return env.message(EventBatch)
