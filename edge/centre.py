"""The centre's public keys this edge trusts, pinned at enrolment (DESIGN invariant 8).

``centre.json`` in the enrolment directory holds the pinned key and, during a rotation, the
next key the centre announced in a message signed by the pinned one. The first message signed
by the next key makes it the pinned key for good (the old one is then refused), and the file is
rewritten atomically. Keys are public: the file holds no secret, but it is what the edge trusts,
so it is written 0600 like the rest of the enrolment.
"""

from __future__ import annotations

import enum
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.centre import key_id, load_public_key_b64, public_key_b64
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

CENTRE_FILE = "centre.json"


class DownlinkSignatures(enum.StrEnum):
    """How an edge treats the centre's signatures (the rollout setting, README)."""

    OFF = "off"  # verify nothing (the behaviour of edges before signed downlink)
    ACCEPT = "accept"  # verify what is signed when a key is pinned; apply unsigned messages
    REQUIRE = "require"  # apply only what a pinned key signed for this device


class CentreKeyError(ValueError):
    """The centre key file is unreadable or holds something that is not a centre key."""


@dataclass(slots=True)
class CentreTrust:
    """The pinned key, the announced next key, and where they are kept (None: memory only)."""

    current: Ed25519PublicKey | None = None
    next: Ed25519PublicKey | None = None
    path: Path | None = None
    _ids: dict[str, Ed25519PublicKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._reindex()

    def _reindex(self) -> None:
        self._ids = {key_id(k): k for k in (self.current, self.next) if k is not None}

    @property
    def pinned(self) -> bool:
        return self.current is not None

    def keys(self) -> dict[str, Ed25519PublicKey]:
        """Key id -> key, for ``protocol.centre.verify_centre``."""
        return dict(self._ids)

    def current_id(self) -> str | None:
        return key_id(self.current) if self.current is not None else None

    def is_current(self, kid: str) -> bool:
        return self.current is not None and kid == key_id(self.current)

    def announce(self, public: Ed25519PublicKey) -> bool:
        """Keep ``public`` as the next key (the announcement was checked by the caller)."""
        if self.next is not None and key_id(self.next) == key_id(public):
            return False
        if self.is_current(key_id(public)):
            return False
        self.next = public
        self._reindex()
        self.save()
        log.info("centre announced its next key %s", key_id(public))
        return True

    def used(self, kid: str) -> bool:
        """A verified message was signed by ``kid``: promote the next key at its first use."""
        if self.next is None or kid != key_id(self.next):
            return False
        self.current, self.next = self.next, None
        self._reindex()
        self.save()
        log.warning("centre key rotated: now trusting only %s", kid)
        return True

    # ---------------------------------------------------------------------------- the file

    @classmethod
    def from_b64(cls, current: str, path: Path | None = None) -> CentreTrust:
        try:
            return cls(current=load_public_key_b64(current), path=path)
        except ProtocolError as err:
            raise CentreKeyError(f"not a centre key: {err}") from err

    @classmethod
    def load(cls, path: Path) -> CentreTrust | None:
        """The trust kept in ``path``; None when there is no such file (an old enrolment)."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise CentreKeyError(f"{path}: unreadable centre key file: {err}") from err
        try:
            current = load_public_key_b64(data["current"])
            nxt = load_public_key_b64(data["next"]) if data.get("next") else None
        except (KeyError, TypeError, ProtocolError) as err:
            raise CentreKeyError(f"{path}: not a centre key file: {err}") from err
        return cls(current=current, next=nxt, path=path)

    def save(self) -> None:
        if self.path is None or self.current is None:
            return
        data = {
            "current": public_key_b64(self.current),
            "current_id": key_id(self.current),
            "next": public_key_b64(self.next) if self.next is not None else None,
        }
        write_private(self.path, json.dumps(data, indent=2).encode())


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by this user only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
