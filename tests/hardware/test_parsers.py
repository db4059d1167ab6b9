"""Pure parsers: Wiegand parity and decoding, EM checksum and framing, track 2 LRC, backoff."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware import wiegand
from hardware.magstripe import decode_track2, decode_track2_text, track2_lrc, track2_swipe
from hardware.serial_reader import (
    Frame,
    FrameError,
    Framer,
    Garbage,
    decode_em,
    decode_wiegand_line,
    em_checksum,
    em_frame,
)
from hardware.support import backoff_delay


def test_wiegand_26_known_vector() -> None:
    # H10301 facility 12 card 34567 = 0x8707. First 12 data bits 000011001000 have three ones,
    # so the even parity bit is 1; last 12 bits 011100000111 have six, so the odd parity is 1.
    frame = wiegand.encode(26, 12, 34567)
    assert frame.value == 0b1_00001100_1000011100000111_1
    assert wiegand.frame_to_bytes(frame) == bytes([0x86, 0x43, 0x83, 0xC0])
    assert wiegand.decode(frame) == "W26:012:34567"


@given(st.integers(0, 255), st.integers(0, 65535))
def test_wiegand_26_round_trip(facility: int, card: int) -> None:
    frame = wiegand.encode(26, facility, card)
    assert wiegand.decode(frame) == f"W26:{facility:03d}:{card:05d}"
    assert wiegand.frame_from_bytes(wiegand.frame_to_bytes(frame), 26) == frame


@given(st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 33))
def test_wiegand_34_any_single_bit_flip_is_a_parity_error(
    facility: int, card: int, bit: int
) -> None:
    frame = wiegand.encode(34, facility, card)
    assert wiegand.decode(frame) == f"W34:{facility:05d}:{card:07d}"
    with pytest.raises(wiegand.WiegandError):
        wiegand.decode(wiegand.WiegandFrame(34, frame.value ^ (1 << bit)))


def test_wiegand_other_lengths_are_raw_hex() -> None:
    assert wiegand.decode(wiegand.WiegandFrame(37, 0x1A2B3C4D5)) == "WR:37:1A2B3C4D5"
    with pytest.raises(wiegand.WiegandError):
        wiegand.WiegandFrame(8, 0x1FF)


def test_em_frame_vector() -> None:
    assert em_frame(4567891, 0x0A) == b"\x020A0045B353AF\x03"
    assert em_checksum(bytes.fromhex("0A0045B353")) == 0xAF
    assert decode_em(b"0A0045B353AF", True) == "EM:0004567891"
    with pytest.raises(FrameError, match="checksum"):
        decode_em(b"0A0045B353AE", True)
    assert decode_em(b"0004567891", False) == "EM:0004567891"
    assert decode_em(b"069,45395", False) == f"EM:{(69 << 16) | 45395:010d}"
    with pytest.raises(FrameError):
        decode_em(b"9999999999", False)  # > 32 bits


@given(st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_framer_never_crashes_and_recovers_on_the_next_frame(noise: bytes, card: int) -> None:
    framer = Framer()
    list(framer.feed(noise))
    out = list(framer.feed(em_frame(card)))
    frames = [p for p in out if isinstance(p, Frame)]
    assert frames and decode_em(frames[-1].payload, frames[-1].framed) == f"EM:{card:010d}"


def test_framer_reports_half_frames_and_lines() -> None:
    out = list(Framer().feed(b"\x020A00\x02" + em_frame(5)[1:] + b"\r\n0000000005\r\n"))
    assert isinstance(out[0], Garbage)
    assert [p.framed for p in out if isinstance(p, Frame)] == [True, False]


def test_wiegand_line_formats() -> None:
    value = wiegand.encode(26, 1, 2).value
    for line in (f"W26:{value:X}", f"26:{value:x}", f"w26 {value:X}", f"W26,{value:X}"):
        assert decode_wiegand_line(line.encode(), False) == "W26:001:00002"
    with pytest.raises(FrameError):
        decode_wiegand_line(b"hello", False)


def test_track2_lrc_vector() -> None:
    # ";1234567890=?" : XOR of 0xB,1..9,0,0xD,0xF = 0xC... computed independently below
    body = ";1234567890=?"
    lrc = 0
    for char in body:
        lrc ^= ord(char) & 0x0F
    assert track2_lrc(body) == chr(0x30 + lrc)
    assert decode_track2((body + chr(0x30 + lrc)).encode(), False) == "MS:1234567890"


@given(st.text("0123456789", min_size=1, max_size=19), st.text("0123456789", max_size=20))
def test_track2_round_trip_and_corruption(pan: str, extra: str) -> None:
    swipe = track2_swipe(pan, extra)
    assert decode_track2(swipe.encode(), False) == f"MS:{pan}"
    bad = swipe[:-1] + chr(0x30 + ((ord(swipe[-1]) - 0x30) ^ 1))
    with pytest.raises(FrameError, match="LRC"):
        decode_track2(bad.encode(), False)


def test_track2_wedge_without_lrc() -> None:
    assert decode_track2_text(";6001=99?", require_lrc=False) == "MS:6001"
    with pytest.raises(FrameError, match="LRC missing"):
        decode_track2_text(";6001=99?", require_lrc=True)
    with pytest.raises(FrameError, match="sentinel"):
        decode_track2_text("6001=99", require_lrc=False)


@given(st.integers(0, 200), st.floats(0, 0.999))
def test_backoff_is_capped_and_jittered(attempt: int, jitter: float) -> None:
    delay = backoff_delay(attempt, base=0.5, cap=30.0, jitter=jitter)
    full = min(30.0, 0.5 * 2**attempt)
    assert full / 2 <= delay <= full
    assert delay <= 30.0
