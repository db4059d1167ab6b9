"""Staff PINs for manual passes: stored only as a salted PBKDF2 hash.

A 4-6 digit PIN is a second factor in front of a turnstile, not a secret that survives theft of
the database; the hash keeps PINs out of plain sight and the iteration count keeps a check cheap
enough (~3 ms) to run inside a decision.
"""

from __future__ import annotations

import hashlib
import hmac

ITERATIONS = 10_000


def hash_pin(pin: str, salt: bytes) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, ITERATIONS)
    return f"pbkdf2-sha256${ITERATIONS}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    try:
        scheme, iterations, salt_hex, digest_hex = stored.split("$")
        if scheme != "pbkdf2-sha256":
            return False
        salt, expected, rounds = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex), int(iterations)
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, rounds)
    return hmac.compare_digest(got, expected)
