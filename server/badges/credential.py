"""Open Badges 3.0 credentials for the medal: an ``OpenBadgeCredential`` signed as a VC-JWT
(JOSE, EdDSA over Ed25519), its verification, and a revocation status list.

The issuer's Ed25519 key lives in a PEM file (0600) created by
``qaqpa server badges issuer-key new`` -- never in the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from joserfc.jwk import OKPKey


class CredentialError(ValueError):
    """A credential, token or key that cannot be used (``reason`` says why)."""


def issuer_key_id(key: Ed25519PrivateKey) -> str:
    """The RFC 7638 thumbprint of the public key (the JWS ``kid``)."""
    return str(OKPKey.import_key(key.public_key()).thumbprint())


def new_issuer_key_file(path: Path) -> str:
    """Create a new Ed25519 issuer key at ``path`` (0600; refuses to overwrite); returns its id."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return issuer_key_id(key)


def load_issuer_key(path: Path) -> Ed25519PrivateKey:
    """The issuer key from its PEM file; refuses a file readable by others or another key type."""
    try:
        mode = path.stat().st_mode & 0o077
        pem = path.read_bytes()
    except OSError as err:
        raise CredentialError(f"issuer key {path}: {err}") from err
    if mode:
        raise CredentialError(f"issuer key {path} is readable by others: chmod 600 it")
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as err:
        raise CredentialError(f"issuer key {path}: not a PEM private key") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise CredentialError(f"issuer key {path}: not an Ed25519 key")
    return key
