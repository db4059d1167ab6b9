"""A virtual contactless card for pcscd's ``vpcd`` driver (Debian ``vsmartcard-vpcd``).

vpcd gives pcscd virtual readers ("Virtual PCD 00 00", "Virtual PCD 00 01") and listens on
127.0.0.1:35963 (reader 00) and :35964 (reader 01). A card is a TCP *client* of that port:
connecting inserts it, closing the connection removes it. Every message either way is a
2-byte big-endian length then a payload; a 1-byte payload from vpcd is a control code
(0 power off, 1 power on, 2 reset, 4 send the ATR), anything longer is an APDU to answer.

This card answers ``FF CA 00 00 00`` (PC/SC GET DATA, UID) with its UID + ``90 00``, like the
contactless readers' firmware does for MIFARE/NTAG cards, and everything else with
``6D 00`` (instruction not supported).

Usage::

    card = VirtualCard(bytes.fromhex("04A1B2C3D4E5F6"))
    card.insert()          # reader 0; insert(reader=1) for the second virtual reader
    ...
    card.remove()
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time

log = logging.getLogger(__name__)

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963
# A PC/SC part 3 ATR of a contactless storage card (MIFARE Classic 1K), as readers report it.
CONTACTLESS_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
GET_UID = bytes.fromhex("FFCA000000")

CTRL_OFF = 0
CTRL_ON = 1
CTRL_RESET = 2
CTRL_ATR = 4


def answer(apdu: bytes, uid: bytes) -> bytes:
    """The card's response to one command APDU."""
    if apdu[:4] == GET_UID[:4]:
        le = apdu[4] if len(apdu) > 4 else 0
        if le not in (0, len(uid)):
            return bytes([0x6C, len(uid)])  # wrong length, here is the right one
        return uid + b"\x90\x00"
    return b"\x6d\x00"


class VirtualCard:
    """A contactless card with a fixed UID that can be put on and taken off a vpcd reader."""

    def __init__(self, uid: bytes, *, atr: bytes = CONTACTLESS_ATR, host: str = VPCD_HOST) -> None:
        self.uid = uid
        self.atr = atr
        self.host = host
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.apdus: list[bytes] = []  # every APDU received, for tests

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def insert(self, reader: int = 0, timeout: float = 5.0) -> None:
        if self._sock is not None:
            raise RuntimeError("card already inserted")
        sock = socket.create_connection((self.host, VPCD_PORT + reader), timeout=timeout)
        sock.settimeout(None)
        self._sock = sock
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name=f"vpcd-card-{reader}", daemon=True
        )
        self._thread.start()

    def remove(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = self._recv_exact(sock, 2)
                if header is None:
                    return
                (length,) = struct.unpack(">H", header)
                payload = self._recv_exact(sock, length)
                if payload is None:
                    return
                if len(payload) == 1:
                    if payload[0] == CTRL_ATR:
                        self._send(sock, self.atr)
                    continue  # power on / off / reset need no answer
                self.apdus.append(payload)
                self._send(sock, answer(payload, self.uid))
        except OSError:
            return  # removed while vpcd was talking

    @staticmethod
    def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < size:
            chunk = sock.recv(size - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    @staticmethod
    def _send(sock: socket.socket, payload: bytes) -> None:
        sock.sendall(struct.pack(">H", len(payload)) + payload)


def wait_card_state(reader_name: str, present: bool, within: float = 5.0) -> bool:
    """Block until pcscd reports a card on ``reader_name`` (or none): True, or False after
    ``within`` s. Lets a test remove and re-insert a card only once pcscd saw the removal."""
    from smartcard import scard

    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return False
    try:
        state = scard.SCARD_STATE_UNAWARE
        deadline = time.monotonic() + within
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                return False
            hresult, results = scard.SCardGetStatusChange(ctx, left_ms, [(reader_name, state)])
            if hresult != scard.SCARD_S_SUCCESS:
                return False
            _, state, _ = results[0]
            if bool(state & scard.SCARD_STATE_PRESENT) == present:
                return True
            state &= ~scard.SCARD_STATE_CHANGED
    finally:
        scard.SCardReleaseContext(ctx)
