"""New staff PINs from the console, sealed to this edge (``protocol.sealing``), become keyed
verifiers in the store; the PIN itself lives only in memory for the moment it takes.

The edge's X25519 key pair is ``box.key`` in the enrolment directory (0600, created when
absent); its public key goes to the server signed with the device's key at every connection
(``EdgeBoxKey``)."""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge.staff.pins import valid_pin, verifier
from edge.store import EdgeStore
from protocol.errors import ProtocolError
from protocol.messages import StaffPinReceipt, StaffPins
from protocol.sealing import open_sealed, pin_aad

log = logging.getLogger(__name__)

BOX_KEY_FILE = "box.key"


class BoxKeyError(Exception):
    pass


def load_box_key(path: Path) -> X25519PrivateKey:
    """The edge's X25519 private key (raw 32 bytes, 0600), created when absent. Blocking."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BoxKeyError(f"{path}: readable by other users (mode {oct(mode & 0o777)}): chmod 600")
    raw = path.read_bytes()
    if len(raw) != 32:
        raise BoxKeyError(f"{path}: expected 32 bytes, found {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


@dataclass
class PinInstaller:
    store: EdgeStore
    box: X25519PrivateKey
    pin_key: bytes

    async def install(self, msg: StaffPins) -> list[StaffPinReceipt]:
        """Open each sealed PIN and store its verifier (a newer version only); a seal that does
        not open is acknowledged as not opened (the console shows it), never retried forever."""
        receipts = []
        school, device = self.store.school, self.store.device
        for sealed in msg.pins:
            aad = pin_aad(school, device, sealed.staff_id, sealed.version)
            try:
                pin = open_sealed(self.box, sealed.enc, sealed.ct, aad).decode("ascii")
            except (ProtocolError, UnicodeDecodeError) as err:
                log.warning("a sealed staff PIN did not open: %s", err)
                receipts.append(
                    StaffPinReceipt(staff_id=sealed.staff_id, version=sealed.version, opened=False)
                )
                continue
            if not valid_pin(pin):
                receipts.append(
                    StaffPinReceipt(staff_id=sealed.staff_id, version=sealed.version, opened=False)
                )
                continue
            stored = await self.store.set_staff_pin(
                sealed.staff_id,
                verifier(self.pin_key, sealed.staff_id, pin),
                sealed.version,
                int(time.time() * 1000),
            )
            del pin
            log.info(
                "staff PIN version %d %s",
                sealed.version,
                "installed" if stored else "already installed (or older)",
            )
            receipts.append(
                StaffPinReceipt(staff_id=sealed.staff_id, version=sealed.version, opened=True)
            )
        return receipts
