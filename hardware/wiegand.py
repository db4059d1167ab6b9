"""Wiegand frames to credential strings, pure functions.

Standard 26-bit (H10301): ``E FFFFFFFF CCCCCCCCCCCCCCCC O`` — an even parity bit over the
first 12 data bits, an 8-bit facility code, a 16-bit card number, an odd parity bit over the
last 12 data bits. The 34-bit format used by many readers sold here has the same shape with a
16-bit facility code and a 16-bit card number (parity over 16 data bits each).

``W26:FFF:CCCCC`` and ``W34:FFFFF:CCCCCCC`` are zero-padded decimal (see hardware.base).
Any other length becomes ``WR:<bits>:<HEX>`` with the raw value in upper-case hex without
leading zeros; no parity is checked because the layout is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass


class WiegandError(ValueError):
    """The frame cannot be a valid Wiegand read (parity error, impossible length)."""


@dataclass(frozen=True, slots=True)
class WiegandFrame:
    bits: int  # number of bits on the wire
    value: int  # the bits, first received bit most significant

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 256:
            raise WiegandError(f"impossible Wiegand length {self.bits}")
        if self.value < 0 or self.value >> self.bits:
            raise WiegandError(f"value does not fit in {self.bits} bits")


def frame_from_bytes(data: bytes, bits: int) -> WiegandFrame:
    """Bits packed MSB first and left-aligned in ``data`` (OSDP raw Wiegand card data)."""
    if bits > len(data) * 8 or bits <= 0:
        raise WiegandError(f"{bits} bits do not fit in {len(data)} bytes")
    value = int.from_bytes(data, "big") >> (len(data) * 8 - bits)
    return WiegandFrame(bits, value)


def frame_to_bytes(frame: WiegandFrame) -> bytes:
    """Inverse of :func:`frame_from_bytes`."""
    nbytes = (frame.bits + 7) // 8
    return (frame.value << (nbytes * 8 - frame.bits)).to_bytes(nbytes, "big")


def _ones(value: int) -> int:
    return bin(value).count("1")


def _check_parity(frame: WiegandFrame) -> None:
    """Leading even parity over the first half, trailing odd parity over the second half."""
    half = frame.bits // 2  # 13 of 26, 17 of 34: parity bit + the data bits it covers
    first = frame.value >> (frame.bits - half)
    last = frame.value & ((1 << half) - 1)
    if _ones(first) % 2 != 0:
        raise WiegandError(f"W{frame.bits} even parity error")
    if _ones(last) % 2 != 1:
        raise WiegandError(f"W{frame.bits} odd parity error")


def decode(frame: WiegandFrame) -> str:
    """The credential string of a Wiegand frame; raises :class:`WiegandError` on bad parity."""
    if frame.bits == 26:
        _check_parity(frame)
        data = (frame.value >> 1) & 0xFFFFFF
        return f"W26:{data >> 16:03d}:{data & 0xFFFF:05d}"
    if frame.bits == 34:
        _check_parity(frame)
        data = (frame.value >> 1) & 0xFFFFFFFF
        return f"W34:{data >> 16:05d}:{data & 0xFFFF:07d}"
    return f"WR:{frame.bits}:{frame.value:X}"


def encode(bits: int, facility: int, card: int) -> WiegandFrame:
    """A valid 26- or 34-bit frame with correct parity (for simulators and tests)."""
    if bits == 26:
        fbits = 8
    elif bits == 34:
        fbits = 16
    else:
        raise WiegandError("only 26 and 34 bit frames can be encoded from facility/card")
    if not 0 <= facility < (1 << fbits) or not 0 <= card < (1 << 16):
        raise WiegandError("facility or card number out of range")
    data = (facility << 16) | card
    ndata = bits - 2
    half = ndata // 2
    first, last = data >> half, data & ((1 << half) - 1)
    even = _ones(first) % 2  # makes the first half even
    odd = 1 - _ones(last) % 2  # makes the second half odd
    return WiegandFrame(bits, (even << (bits - 1)) | (data << 1) | odd)
