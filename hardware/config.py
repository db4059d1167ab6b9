"""Configuration of readers and gates, and the factories that open them.

Each kind of device is a pydantic model chosen by its ``type`` key, so the edge configuration
embeds :data:`ReaderConfig` / :data:`GateConfig` (discriminated unions) in a terminal table::

    [terminal.reader]
    type = "osdp"
    port = "/dev/serial/by-id/usb-FTDI_RS485-if00-port0"
    address = 1
    scbk = "6a1f..."            # 32 hex digits, see hardware.osdp for the install-mode set-up

    [terminal.gate]
    type = "osdp_output"        # the turnstile on the same PD's output and input

==================  ============================================  ===========================
``type``            device                                        opened as
==================  ============================================  ===========================
``osdp``            one OSDP PD (turnstile reader) on a bus        ``OsdpPdReader``
``em_marine``       125 kHz EM-Marine ASCII serial reader          ``SerialLineReader``
``wiegand_serial``  Wiegand-to-serial converter (``W26:...``)      ``SerialLineReader``
``magstripe``       serial ISO 7811 track 2 reader (with LRC)      ``SerialLineReader``
``pcsc``            PC/SC contactless desk reader (pcscd)          ``PcscMonitor``
``line``            keyboard-wedge reader: one card per text line  ``LineReader``
``osdp_output``     gate: the OSDP reader's output + input         ``OsdpGate``
``relay_serial``    gate: LCUS serial relay board channel          ``RelayGate``
``log``             gate: a file, one fsynced line per actuation   ``LogGate``
==================  ============================================  ===========================

Several ``osdp`` readers on the same ``port`` share one bus (one control panel): open them
through one :class:`OsdpBuses` so they do. A ``line`` reader or a ``log`` gate configured without
an id takes its terminal's (the edge configuration fills it in).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hardware.base import Feedback, Reader
from hardware.log_gate import LogGate
from hardware.magstripe import magstripe_reader
from hardware.osdp import (
    OsdpBus,
    OsdpFeedback,
    OsdpGate,
    OsdpPdReader,
    OsdpReaderSpec,
    serial_channel_factory,
)
from hardware.pcsc import PcscMonitor, PcscSlot
from hardware.relay import RelayGate
from hardware.serial_reader import em_marine_reader, serial_port_factory, wiegand_serial_reader
from hardware.support import Backoff
from hardware.wedge import LineReader

# Keys that must never protect a deployed reader: OSDP's install-mode default SCBK-D and
# trivially guessable ones.
FORBIDDEN_SCBKS = frozenset(
    {
        bytes(range(0x30, 0x40)),  # SCBK-D, 30 31 ... 3F
        bytes(16),
        bytes([0xFF] * 16),
    }
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SerialPort(_Model):
    port: str = Field(description="serial device, e.g. /dev/serial/by-id/... or /dev/ttyUSB0")
    baudrate: int = Field(9600, gt=0, description="line speed in baud (8N1)")


class _SerialReader(_SerialPort):
    backoff_cap: float = Field(
        30.0, gt=0, le=600, description="longest wait in seconds between reopen attempts"
    )


class OsdpReaderConfig(_Model):
    type: Literal["osdp"] = Field(description="an OSDP turnstile reader (PD) on an RS-485 bus")
    reader_id: str = Field(description="id of this reader in events; unique in the school")
    port: str = Field(description="RS-485 adapter's serial device; readers on it share a bus")
    baudrate: int = Field(9600, gt=0, description="bus speed in baud; same for every PD on it")
    address: int = Field(ge=0, le=126, description="the PD's OSDP address on the bus")
    secure: bool = Field(True, description="secure channel; false only for a lab reader")
    scbk: SecretStr | None = Field(
        None, description="the PD's 16-byte secure channel base key as 32 hex digits"
    )
    output_no: int = Field(0, ge=0, le=15, description="PD output that releases the turnstile")
    passage_input_no: int = Field(0, ge=0, le=15, description="PD input of the passage sensor")
    fire_input_no: int | None = Field(
        None,
        ge=0,
        le=15,
        description="PD input wired to the fire-alarm panel's dry contact: while active every "
        "turnstile of the school is held free (README, fire alarm)",
    )
    release_ms: int = Field(5000, ge=100, le=25500, description="output on-time in ms")
    silence_timeout: float = Field(
        2.0, gt=0.2, le=30, description="seconds without a reply before the PD is offline"
    )

    @field_validator("scbk")
    @classmethod
    def _key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            key = bytes.fromhex(value.get_secret_value())
        except ValueError as err:
            raise ValueError("scbk must be 32 hex digits") from err
        if len(key) != 16:
            raise ValueError("scbk must be 32 hex digits (16 bytes)")
        if key in FORBIDDEN_SCBKS:
            raise ValueError("scbk is a default or trivial key; set the reader's own key")
        return value

    @model_validator(mode="after")
    def _secure_needs_key(self) -> OsdpReaderConfig:
        if self.secure and self.scbk is None:
            raise ValueError("secure channel is on: scbk is required (or set secure = false)")
        if not self.secure and self.scbk is not None:
            raise ValueError("scbk given but secure = false")
        return self

    def key(self) -> bytes | None:
        return bytes.fromhex(self.scbk.get_secret_value()) if self.scbk is not None else None

    def spec(self) -> OsdpReaderSpec:
        return OsdpReaderSpec(
            self.reader_id,
            self.address,
            self.key(),
            output_no=self.output_no,
            passage_input_no=self.passage_input_no,
            fire_input_no=self.fire_input_no,
            release_ms=self.release_ms,
        )


class EmMarineConfig(_SerialReader):
    type: Literal["em_marine"] = Field(description="125 kHz EM-Marine reader sending ASCII")
    reader_id: str = Field(description="id of this reader in events; unique in the school")


class WiegandSerialConfig(_SerialReader):
    type: Literal["wiegand_serial"] = Field(description="Wiegand-to-serial converter, W26:HEX")
    reader_id: str = Field(description="id of this reader in events; unique in the school")


class MagstripeConfig(_SerialReader):
    type: Literal["magstripe"] = Field(description="serial magnetic stripe reader, track 2")
    reader_id: str = Field(description="id of this reader in events; unique in the school")


class PcscConfig(_Model):
    type: Literal["pcsc"] = Field(description="contactless desk reader through pcscd")
    reader_id: str = Field(description="id of this reader in events; unique in the school")
    reader_name: str = Field(description="PC/SC reader name, exact or a prefix of it")
    wait_ms: int = Field(500, ge=50, le=5000, description="longest single PC/SC wait in ms")


class LineReaderConfig(_Model):
    type: Literal["line"] = Field(description="keyboard-wedge style reader: one card per line")
    reader_id: str | None = Field(
        None, description="id of this reader in events; the terminal's id when left out"
    )
    path: Path = Field(description="tty, pty or FIFO the reader writes lines to")
    default_prefix: str = Field("EM", description="prefix for lines without one")


class OsdpOutputGateConfig(_Model):
    type: Literal["osdp_output"] = Field(
        description="turnstile on the terminal's OSDP reader: its output_no and passage input"
    )


class RelaySerialGateConfig(_SerialPort):
    type: Literal["relay_serial"] = Field(description="LCUS serial relay board (A0 ch st sum)")
    channel: int = Field(1, ge=1, le=8, description="relay channel wired to the gate, from 1")
    pulse_ms: int = Field(500, ge=20, le=10_000, description="how long the contact closes, ms")


class LogGateConfig(_Model):
    type: Literal["log"] = Field(description="a file that receives one line per actuation")
    gate_id: str | None = Field(
        None, description="name of this gate in its lines; the terminal's id when left out"
    )
    path: Path = Field(description="file that receives one fsynced line per actuation")


ReaderConfigUnion = (
    OsdpReaderConfig
    | EmMarineConfig
    | WiegandSerialConfig
    | MagstripeConfig
    | PcscConfig
    | LineReaderConfig
)
GateConfigUnion = OsdpOutputGateConfig | RelaySerialGateConfig | LogGateConfig
ReaderConfig = Annotated[ReaderConfigUnion, Field(discriminator="type")]
GateConfig = Annotated[GateConfigUnion, Field(discriminator="type")]


class OsdpBuses:
    """One :class:`OsdpBus` per serial port, shared by every ``osdp`` reader configured on it.

    Register all OSDP readers (``add``) before opening any of them: the bus's PD list is fixed
    when it is first opened.
    """

    def __init__(self) -> None:
        self._configs: dict[str, list[OsdpReaderConfig]] = {}
        self._buses: dict[str, OsdpBus] = {}
        # told when a fire-alarm input changes on any bus: (reader_id, active)
        self.on_fire_input: Callable[[str, bool], None] | None = None

    def add(self, cfg: OsdpReaderConfig) -> None:
        peers = self._configs.setdefault(cfg.port, [])
        if cfg in peers:
            return
        if cfg.port in self._buses:
            raise RuntimeError(f"OSDP bus on {cfg.port} already built; add readers first")
        if any(p.reader_id == cfg.reader_id or p.address == cfg.address for p in peers):
            raise ValueError(f"two OSDP readers on {cfg.port} share an id or an address")
        if any(p.baudrate != cfg.baudrate for p in peers):
            raise ValueError(f"OSDP readers on {cfg.port} disagree on the baud rate")
        peers.append(cfg)

    def bus(self, port: str) -> OsdpBus:
        if port not in self._buses:
            cfgs = self._configs[port]
            self._buses[port] = OsdpBus(
                f"osdp:{port}",
                serial_channel_factory(port, cfgs[0].baudrate),
                [cfg.spec() for cfg in cfgs],
                silence_timeout=min(cfg.silence_timeout for cfg in cfgs),
            )
            self._buses[port].on_fire_input = self._fire_input
        return self._buses[port]

    def _fire_input(self, reader_id: str, active: bool) -> None:
        if self.on_fire_input is not None:
            self.on_fire_input(reader_id, active)

    def reader(self, cfg: OsdpReaderConfig) -> OsdpPdReader:
        self.add(cfg)
        return self.bus(cfg.port).reader(cfg.reader_id)


def open_reader(cfg: ReaderConfigUnion, osdp_buses: OsdpBuses | None = None) -> Reader:
    """The Reader for one configured device (not yet entered: use ``async with``).

    ``osdp`` readers need the shared ``osdp_buses`` when several are on one port; without it
    each gets a bus of its own.
    """
    if isinstance(cfg, OsdpReaderConfig):
        return (osdp_buses or OsdpBuses()).reader(cfg)
    if isinstance(cfg, PcscConfig):
        return PcscMonitor(
            cfg.reader_id, [PcscSlot(cfg.reader_id, cfg.reader_name)], wait_ms=cfg.wait_ms
        )
    if isinstance(cfg, LineReaderConfig):
        return LineReader(
            cfg.reader_id or str(cfg.path), cfg.path, default_prefix=cfg.default_prefix
        )
    factory = serial_port_factory(cfg.port, cfg.baudrate)
    backoff = Backoff(cap=cfg.backoff_cap)
    if isinstance(cfg, EmMarineConfig):
        return em_marine_reader(cfg.reader_id, factory, backoff=backoff)
    if isinstance(cfg, WiegandSerialConfig):
        return wiegand_serial_reader(cfg.reader_id, factory, backoff=backoff)
    return magstripe_reader(cfg.reader_id, factory, backoff=backoff)


def open_gate(cfg: GateConfigUnion, reader: Reader | None = None) -> OsdpGate | RelayGate | LogGate:
    """The gate for a terminal: an async context manager (enter it). ``osdp_output`` and
    ``relay_serial`` are a :class:`~hardware.base.Gate` (``release()`` on a grant); a ``log``
    gate is told every decision (``actuate(seq, granted)``).

    ``osdp_output`` drives the terminal's own OSDP reader, which must be passed as ``reader``.
    """
    if isinstance(cfg, LogGateConfig):
        return LogGate(cfg.gate_id or cfg.path.name, cfg.path)
    if isinstance(cfg, OsdpOutputGateConfig):
        if not isinstance(reader, OsdpPdReader):
            raise ValueError("an osdp_output gate needs the terminal's reader to be osdp")
        return reader.gate()
    return RelayGate(
        f"relay:{cfg.port}:{cfg.channel}",
        serial_port_factory(cfg.port, cfg.baudrate),
        channel=cfg.channel,
        pulse_ms=cfg.pulse_ms,
    )


def open_feedback(reader: Reader) -> Feedback | None:
    """LED/buzzer feedback of a reader that has it (OSDP); None for readers without."""
    if isinstance(reader, OsdpPdReader):
        feedback: OsdpFeedback = reader.feedback()
        return feedback
    return None
