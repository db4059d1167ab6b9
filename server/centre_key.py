"""The centre's signing key: every downlink message and every ack an edge receives is signed
with it, for that one device (``protocol.centre``; DESIGN invariant 8).

The private key lives in a PEM file (``centre_key_file``, 0600) on the machines that run the
ingest workers and the downlink service; edges pin its public key at enrolment. During a
rotation ``centre_next_key_file`` holds the next key, which the downlink announces to every edge
under the current one; the operator then makes the next key the current one (README).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.centre import key_id, public_key_b64, sign_for_device
from protocol.codec import encode
from protocol.errors import ProtocolError
from protocol.messages import CentreKeyAnnounce, Message
from protocol.signing import generate_key, load_private_key, private_key_pem
from server.settings import ServerSettings

log = logging.getLogger(__name__)


class CentreKeyError(RuntimeError):
    """No usable centre key where the settings require one."""


def _load(path: Path, what: str) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode & 0o077
        pem = path.read_bytes()
    except OSError as err:
        raise CentreKeyError(f"{what} {path}: {err}") from err
    if mode:
        raise CentreKeyError(f"{what} {path} is readable by others: chmod 600 it")
    try:
        return load_private_key(pem)
    except (ValueError, TypeError, ProtocolError) as err:
        raise CentreKeyError(f"{what} {path}: not an Ed25519 private key ({err})") from err


def new_key_file(path: Path) -> str:
    """Create a new centre key at ``path`` (refuses to overwrite one); returns its key id."""
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_key_pem(key))
    return key_id(key)


class CentreSigner:
    """Signs what the server sends to one device; ``None`` key: sends unsigned (rollout)."""

    def __init__(
        self, key: Ed25519PrivateKey | None, next_key: Ed25519PrivateKey | None = None
    ) -> None:
        self.key = key
        self.next_key = next_key

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> CentreSigner:
        mode = settings.downlink_signatures
        if mode == "off":
            return cls(None)
        if settings.centre_key_file is None:
            if mode == "require":
                raise CentreKeyError(
                    "downlink_signatures is 'require' but QAQPA_SERVER_CENTRE_KEY_FILE is not "
                    "set: create a key with `qaqpa server centre-key new --out FILE`"
                )
            log.warning("no centre key: the downlink and acks go out unsigned")
            return cls(None)
        key = _load(settings.centre_key_file, "centre key")
        nxt = (
            _load(settings.centre_next_key_file, "next centre key")
            if settings.centre_next_key_file is not None
            else None
        )
        return cls(key, nxt)

    @property
    def key_id(self) -> str | None:
        return key_id(self.key) if self.key is not None else None

    @property
    def public_b64(self) -> str | None:
        return public_key_b64(self.key) if self.key is not None else None

    def sign(self, msg: Message, school: str, device: str) -> bytes:
        if self.key is None:
            return encode(msg)
        return sign_for_device(
            msg, self.key, school=school, device=device, issued_at_ms=time.time_ns() // 1_000_000
        )

    def announcement(self, school: str, device: str) -> bytes | None:
        """The next key, signed by the current one, for one device (None: no rotation)."""
        if self.key is None or self.next_key is None:
            return None
        msg = CentreKeyAnnounce(
            school=school,
            device=device,
            key_id=key_id(self.next_key),
            public_key=public_key_b64(self.next_key),
        )
        return self.sign(msg, school, device)


def public_key_of(settings: ServerSettings) -> tuple[str, str] | None:
    """(key id, base64 public key) to give an enrolling edge; None when unsigned."""
    signer = CentreSigner.from_settings(settings)
    if signer.key is None:
        return None
    assert signer.key_id is not None and signer.public_b64 is not None
    return signer.key_id, signer.public_b64


@contextlib.contextmanager
def temporary_key_file() -> Iterator[Path]:
    """A fresh centre key in a private temporary directory (benches, one-off runs)."""
    with tempfile.TemporaryDirectory(prefix="qaqpa-centre-") as d:
        path = Path(d) / "centre.key"
        new_key_file(path)
        yield path
