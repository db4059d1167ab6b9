"""AES-GCM encryption of face templates at rest.

The key lives in a file readable only by the daemon's user (created 0600 when absent; a key file
that the group or others can read, or that another user owns, is refused). Each ciphertext's
associated data names the student it belongs to, so a row moved to another student (or a
template pasted from one student to another) fails authentication instead of matching the
wrong child.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENCODING_DIM = 128
KEY_BYTES = 32
NONCE_BYTES = 12
_FORMAT = b"\x01"  # ciphertext layout version, first byte of every blob
_AAD_PREFIX = b"qaqpa/face-template/v1\x00"
_PLAIN_BYTES = ENCODING_DIM * 8  # float64, little-endian

Encoding = npt.NDArray[np.float64]


class FaceKeyError(Exception):
    """The template key file is missing, malformed, or readable by someone else."""


class TemplateIntegrityError(Exception):
    """A stored template failed authentication (tampered, truncated, or another student's)."""


def load_or_create_key(path: Path) -> bytes:
    """The 256-bit template key from ``path``, created (mode 0600, exclusive) when absent.

    Refuses a key file that is group/world accessible or owned by another user: whoever can read
    it can decrypt every child's template.
    """
    if not path.exists():
        _create_key(path)
    try:
        st = os.stat(path)
    except OSError as err:
        raise FaceKeyError(f"{path}: cannot stat the face template key ({err})") from err
    if not stat.S_ISREG(st.st_mode):
        raise FaceKeyError(f"{path}: the face template key is not a regular file")
    if st.st_mode & 0o077:
        raise FaceKeyError(
            f"{path}: the face template key is accessible to group/others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it"
        )
    if st.st_uid != os.geteuid():
        raise FaceKeyError(f"{path}: the face template key belongs to uid {st.st_uid}, not us")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise FaceKeyError(f"{path}: the face template key has {len(key)} bytes, not {KEY_BYTES}")
    return key


def _create_key(path: Path) -> None:
    # Written whole to a private temporary file, then linked into place: a crash never leaves
    # an empty key file, and a concurrent creator's key is never overwritten (link fails).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, AESGCM.generate_key(bit_length=KEY_BYTES * 8))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _aad(student_id: str) -> bytes:
    return _AAD_PREFIX + student_id.encode("utf-8")


class TemplateCipher:
    """Encrypts one encoding for one student; decrypts only with the same student id."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise FaceKeyError(f"a face template key has {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_key_file(cls, path: Path) -> TemplateCipher:
        return cls(load_or_create_key(path))

    def encrypt(self, student_id: str, encoding: npt.ArrayLike) -> bytes:
        plain = as_encoding(encoding).astype("<f8").tobytes()
        nonce = os.urandom(NONCE_BYTES)  # random 96-bit nonces: fine far beyond 2^32 templates
        return _FORMAT + nonce + self._aead.encrypt(nonce, plain, _aad(student_id))

    def decrypt(self, student_id: str, blob: bytes) -> Encoding:
        if len(blob) != 1 + NONCE_BYTES + _PLAIN_BYTES + 16 or blob[:1] != _FORMAT:
            raise TemplateIntegrityError("a face template blob has the wrong size or format")
        nonce = blob[1 : 1 + NONCE_BYTES]
        try:
            plain = self._aead.decrypt(nonce, blob[1 + NONCE_BYTES :], _aad(student_id))
        except InvalidTag as err:
            raise TemplateIntegrityError(
                "a face template failed authentication (tampered or not this student's)"
            ) from err
        return np.frombuffer(plain, dtype="<f8").astype(np.float64)


def as_encoding(encoding: npt.ArrayLike) -> Encoding:
    """A finite 128-d float64 vector, or ValueError."""
    arr = np.asarray(encoding, dtype=np.float64)
    if arr.shape != (ENCODING_DIM,):
        raise ValueError(f"a face encoding has shape ({ENCODING_DIM},), not {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("a face encoding must be finite")
    return arr
