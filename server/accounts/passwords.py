"""argon2id password hashing (argon2-cffi's defaults follow RFC 9106's recommendation)."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_LENGTH = 10


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        # Same work as a real check, so timing does not tell which logins exist.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# Common in Kazakhstan and Russia besides zxcvbn's English-centred list.
LOCAL_COMMON = frozenset({"parol", "пароль", "йцукен", "qwerty", "admin", "qaqpa", "mektep"})


@functools.cache
def _common() -> frozenset[str]:
    """zxcvbn's 30,000 most common passwords (a maintained list, pinned in pyproject.toml)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"]) | LOCAL_COMMON


def is_common(password: str) -> bool:
    """A common password, or one with digits or symbols added at the end (``password12``)."""
    lower = password.lower()
    base = re.sub(r"[\W\d_]+$", "", lower)
    return lower in _common() or (len(base) >= 4 and base in _common())


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"at least {MIN_LENGTH} characters")
    if password.isdigit() or password.isalpha():
        raise WeakPassword("letters and digits, not only one kind")
    if is_common(password):
        raise WeakPassword("a common password")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
