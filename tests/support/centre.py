"""The centre key of the tests: a fixed, public key (never use it anywhere else), written once
per test run to a private file for ``ServerSettings.centre_key_file``."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.centre import key_id, public_key_b64
from protocol.signing import private_key_pem

CENTRE_KEY = Ed25519PrivateKey.from_private_bytes(bytes([0xC0] * 32))
CENTRE_PUBLIC_B64 = public_key_b64(CENTRE_KEY)
CENTRE_KEY_ID = key_id(CENTRE_KEY)


def write_key_file(key: Ed25519PrivateKey, path: Path) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_key_pem(key))
    return path


@functools.cache
def centre_key_file() -> Path:
    d = Path(tempfile.mkdtemp(prefix="qaqpa-centre-"))
    return write_key_file(CENTRE_KEY, d / "centre.key")
