"""The edge daemon's configuration: a TOML file, overridable by ``QAQPA_EDGE_*`` variables."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edge.brokers import parse_broker_url
from edge.core.reasons import Lang
from edge.tls import TlsSetupError, mqtt_tls_context
from edge.validation import first_problem
from hardware.config import GateConfig, LineReaderConfig, LogGateConfig, ReaderConfig
from protocol.messages import Direction, Id, TerminalKind


class ConfigError(ValueError):
    """A configuration that cannot be used: names the file, the field and the problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TerminalConfig(_Section):
    id: Id = Field(
        description="terminal id, unique in the school, e.g. gate-1-in (it travels in events: "
        "1-64 of A-Z a-z 0-9 _ . : -)"
    )
    kind: TerminalKind = Field(description="turnstile, canteen or library")
    direction: Direction | None = Field(None, description="for a turnstile reader: in or out")
    reader: ReaderConfig | None = Field(
        None, description="the credential reader, chosen by `type` (none for face_only)"
    )
    gate: GateConfig | None = Field(None, description="relay or turnstile output, chosen by `type`")
    passage_timeout: float = Field(5.0, gt=0, le=60, description="seconds to wait for passage")
    face_mode: Literal["card_only", "card_and_face", "face_only"] = Field(
        "card_only",
        description="card_only; card_and_face (the face must be the card owner's); "
        "face_only (students with biometric consent, identified 1:N)",
    )
    camera: str | None = Field(
        None,
        description="camera of a face terminal: a device index (0), a stream URL (rtsp://...) "
        "or a folder of frames (the simulator); required unless face_mode is card_only",
    )
    face_tolerance: float = Field(
        0.5, gt=0, lt=2, description="largest face distance that can match (stricter than 0.6)"
    )
    face_margin: float = Field(
        0.06, ge=0, lt=1, description="a second student this close to the best is no match"
    )
    face_debounce: float = Field(
        3.0, ge=0, le=600, description="seconds during which the same face is not a new tap"
    )
    face_window: float = Field(
        2.0, gt=0, le=10, description="card_and_face: seconds to find the card owner's face"
    )

    @model_validator(mode="after")
    def _name_devices(self) -> TerminalConfig:
        """A line reader or a file gate without an id of its own is named after its terminal."""
        if isinstance(self.reader, LineReaderConfig) and self.reader.reader_id is None:
            self.reader = self.reader.model_copy(update={"reader_id": self.id})
        if isinstance(self.gate, LogGateConfig) and self.gate.gate_id is None:
            self.gate = self.gate.model_copy(update={"gate_id": self.id})
        return self

    @property
    def uses_faces(self) -> bool:
        return self.face_mode != "card_only"


TRIVIAL_TOKENS = frozenset({"changeme", "change-me", "password", "kiosk", "qaqpa", "secret"})


class KioskConfig(_Section):
    listen: str = Field(
        "127.0.0.1:8080",
        description="host:port of the canteen kiosk page; 127.0.0.1 by default, 0.0.0.0:8080 to "
        "serve the school network (the page works with the internet down)",
    )
    token: SecretStr = Field(
        description="what canteen staff type once on the kiosk PC or tablet (at least 8 "
        "characters, not a default); the page keeps a cookie afterwards",
    )
    terminals: list[Id] = Field(
        default_factory=list,
        description="canteen terminals the page can show; empty: every canteen terminal",
    )
    language: Lang | None = Field(
        None, description="the page's first language (kk, ru, en); default: the edge's language"
    )
    session_hours: float = Field(
        12.0,
        gt=0,
        le=168,
        description="how long a device stays signed in after staff typed the token (default a "
        "school day; at most a week); `qaqpa edge kiosk-sessions revoke` ends one earlier",
    )
    tls_certfile: Path | None = Field(
        None,
        description="PEM certificate (with its chain) to serve the page over HTTPS, e.g. one "
        "signed by a CA the school installed on its kiosk devices; needs tls_keyfile",
    )
    tls_keyfile: Path | None = Field(
        None, description="PEM private key of tls_certfile (readable by the daemon only)"
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> KioskConfig:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: set both or neither")
        return self

    @property
    def tls(self) -> tuple[Path, Path] | None:
        if self.tls_certfile is None or self.tls_keyfile is None:
            return None
        return self.tls_certfile, self.tls_keyfile

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not host:port")
        return value

    @field_validator("token")
    @classmethod
    def _real_token(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if len(secret) < 8:
            raise ValueError("the kiosk token must have at least 8 characters")
        if secret.lower() in TRIVIAL_TOKENS or len(set(secret)) < 3:
            raise ValueError("the kiosk token is a default or trivial value: choose another")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class StaffPageConfig(_Section):
    listen: str = Field(
        "127.0.0.1:8090",
        description="host:port of the staff page (teacher's pass and other sections); "
        "0.0.0.0:8090 to serve the school network (it works with the internet down)",
    )
    sign_in_terminals: list[Id] = Field(
        default_factory=list,
        description="terminals whose readers staff may sign in at (card, then PIN on the page "
        "or the reader's keypad); empty: every terminal with a reader",
    )
    language: Lang | None = Field(
        None, description="the page's first language (kk, ru, en); default: the edge's language"
    )
    session_minutes: float = Field(
        30.0,
        gt=0,
        le=720,
        description="how long a member stays signed in on a device (default 30 minutes: staff "
        "sign in with their own card and PIN, and a shared tablet must not stay theirs)",
    )
    tls_certfile: Path | None = Field(
        None, description="PEM certificate (with its chain) to serve the page over HTTPS"
    )
    tls_keyfile: Path | None = Field(None, description="PEM private key of tls_certfile")

    @model_validator(mode="after")
    def _tls_pair(self) -> StaffPageConfig:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: set both or neither")
        return self

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not host:port")
        return value

    @property
    def tls(self) -> tuple[Path, Path] | None:
        if self.tls_certfile is None or self.tls_keyfile is None:
            return None
        return self.tls_certfile, self.tls_keyfile

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class CanteenConfig(_Section):
    overdraft_tiyn: int = Field(
        0,
        ge=0,
        le=200_000,
        description="how far below zero a paying student's balance may go, in tiyn (0: never; "
        "at most 2,000 tenge)",
    )


class EdgeConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QAQPA_EDGE_", extra="forbid")

    school: str = Field(description="school id as registered at the server")
    device: str = Field(description="this edge device's id")
    store: Path = Field(description="path of the edge SQLite store")
    policy: Path | None = Field(
        None, description="local policy.toml; when absent the policy comes from the server"
    )
    outbox_capacity: int = Field(
        100_000, ge=1_000, description="events the outbox holds before the 80 % alarm basis"
    )
    language: Lang = Field(Lang.KK, description="language of messages on terminals")
    sync_key_dir: Path | None = Field(
        None,
        description="directory written by `qaqpa edge enrol` (key + MQTT login); "
        "when absent the school runs stand-alone, journaling for a later sync",
    )
    mqtt_ca_file: Path | None = Field(
        None,
        description="PEM file of the CA that signed the broker's certificate, the only CA "
        "trusted (TLS 1.2+, host name checked); overrides the one recorded at enrolment. "
        "Without it a broker off loopback is refused unless mqtt_allow_plain",
    )
    mqtt_cert_file: Path | None = Field(
        None, description="this device's client certificate (PEM), when the broker requires one"
    )
    mqtt_key_file: Path | None = Field(
        None, description="the unencrypted private key (PEM, 0600) of mqtt_cert_file"
    )
    mqtt_allow_plain: bool = Field(
        False,
        description="allow a plain (unencrypted) connection to a broker off loopback: a "
        "private network only",
    )
    mqtt_brokers: list[str] | None = Field(
        None,
        description='the nodes of a broker cluster ("mqtts://host:port", ...); the edge '
        "starts at its preferred one (a stable hash of school/device) and moves on when a "
        "connection fails; overrides the broker recorded at enrolment",
    )
    failback_s: float | None = Field(
        None,
        ge=0,
        description="on a cluster node other than its preferred one, probe the preferred node "
        "about this often and move back once it answers (default 60; 0: stay put)",
    )
    mqtt_protocol: Literal["5", "3.1.1"] | None = Field(
        None,
        description="MQTT version of the deployment's broker: 3.1.1 for a RabbitMQ or NATS "
        "cluster; overrides the one recorded at enrolment (default 5)",
    )
    staff_pin_key_file: Path | None = Field(
        None,
        description="key of the staff PIN verifiers (HMAC; created 0600 when absent, readable "
        "by the daemon only; without it a stolen store does not give the PINs); default "
        "staff-pin.key beside the store",
    )
    face_key_file: Path | None = Field(
        None,
        description="AES key of the face templates (created 0600 when absent); "
        "required when a terminal uses faces",
    )
    card_key_file: Path | None = Field(
        None,
        description="HMAC key under which the store keeps card numbers (created 0600 when "
        "absent); default: card.key beside the store",
    )
    terminals: list[TerminalConfig] = Field(
        default_factory=list, alias="terminal", description="[[terminal]] tables"
    )
    kiosk: KioskConfig | None = Field(
        None, description="[kiosk]: the canteen staff's page served by this daemon"
    )
    canteen: CanteenConfig = Field(
        default_factory=CanteenConfig, description="[canteen]: money rules at the terminal"
    )
    staff: StaffPageConfig | None = Field(
        None, description="[staff]: the staff page (card + PIN sign-in, teacher's pass)"
    )

    @property
    def staff_sign_in_terminals(self) -> list[str]:
        if self.staff is None:
            return []
        with_reader = [t.id for t in self.terminals if t.reader is not None]
        return list(self.staff.sign_in_terminals) or with_reader

    @property
    def kiosk_terminals(self) -> list[str]:
        canteens = [t.id for t in self.terminals if t.kind is TerminalKind.CANTEEN]
        if self.kiosk is None:
            return []
        return list(self.kiosk.terminals) or canteens

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # QAQPA_EDGE_* variables override the file (which arrives as init arguments).
        return env_settings, init_settings, dotenv_settings, file_secret_settings


def load_config(path: Path) -> EdgeConfig:
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    try:
        cfg = EdgeConfig(**raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: {first_problem(err, whole='(file)')}") from err
    base = path.parent
    cfg.store = base / cfg.store if not cfg.store.is_absolute() else cfg.store
    if cfg.policy is not None and not cfg.policy.is_absolute():
        cfg.policy = base / cfg.policy
    if cfg.sync_key_dir is not None and not cfg.sync_key_dir.is_absolute():
        cfg.sync_key_dir = base / cfg.sync_key_dir
    if cfg.staff_pin_key_file is None:
        cfg.staff_pin_key_file = cfg.store.parent / "staff-pin.key"
    elif not cfg.staff_pin_key_file.is_absolute():
        cfg.staff_pin_key_file = base / cfg.staff_pin_key_file
    if cfg.face_key_file is not None and not cfg.face_key_file.is_absolute():
        cfg.face_key_file = base / cfg.face_key_file
    if cfg.card_key_file is None:
        cfg.card_key_file = cfg.store.with_name("card.key")
    elif not cfg.card_key_file.is_absolute():
        cfg.card_key_file = base / cfg.card_key_file
    _check_mqtt_tls(path, cfg)
    ids = [t.id for t in cfg.terminals]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: terminal: ids repeat: {ids}")
    if cfg.kiosk is not None:
        canteens = {t.id for t in cfg.terminals if t.kind is TerminalKind.CANTEEN}
        for j, tid in enumerate(cfg.kiosk.terminals):
            if tid not in canteens:
                raise ConfigError(
                    f"{path}: kiosk.terminals.{j}: {tid!r} is not a canteen terminal of this file"
                )
        for name in ("tls_certfile", "tls_keyfile"):
            file: Path | None = getattr(cfg.kiosk, name)
            if file is not None:
                file = file if file.is_absolute() else base / file
                setattr(cfg.kiosk, name, file)
                if not file.is_file():
                    raise ConfigError(f"{path}: kiosk.{name}: {file} is not a file")
    if cfg.staff is not None:
        _check_staff(path, cfg, cfg.staff)
    for i, t in enumerate(cfg.terminals):
        if t.kind is TerminalKind.TURNSTILE and t.direction is None:
            raise ConfigError(f"{path}: terminal.{i}.direction: a turnstile reader needs in or out")
        if t.reader is None and t.face_mode != "face_only":
            raise ConfigError(f"{path}: terminal.{i}.reader: a {t.face_mode} terminal needs one")
        if t.uses_faces and not t.camera:
            raise ConfigError(f"{path}: terminal.{i}.camera: required for face_mode {t.face_mode}")
        if t.uses_faces and cfg.face_key_file is None:
            raise ConfigError(
                f"{path}: face_key_file: required because terminal {t.id!r} uses faces "
                f"(face_mode {t.face_mode}): templates are encrypted with it"
            )
        if t.camera and "://" not in t.camera and not t.camera.isdigit():
            cam = Path(t.camera)
            t.camera = str(cam if cam.is_absolute() else base / cam)
    return cfg


def _check_staff(path: Path, cfg: EdgeConfig, staff: StaffPageConfig) -> None:
    base = path.parent
    with_reader = {t.id for t in cfg.terminals if t.reader is not None}
    for j, tid in enumerate(staff.sign_in_terminals):
        if tid not in with_reader:
            raise ConfigError(
                f"{path}: staff.sign_in_terminals.{j}: {tid!r} is not a terminal with a reader"
            )
    for name in ("tls_certfile", "tls_keyfile"):
        file: Path | None = getattr(staff, name)
        if file is not None:
            file = file if file.is_absolute() else base / file
            setattr(staff, name, file)
            if not file.is_file():
                raise ConfigError(f"{path}: staff.{name}: {file} is not a file")


def _check_mqtt_tls(path: Path, cfg: EdgeConfig) -> None:
    """Resolve the TLS files against the config's folder and load them now: a wrong path or a
    file that is not PEM stops the daemon at start, not at its first connection."""
    base = path.parent
    for name in ("mqtt_ca_file", "mqtt_cert_file", "mqtt_key_file"):
        value: Path | None = getattr(cfg, name)
        if value is not None and not value.is_absolute():
            setattr(cfg, name, base / value)
    if cfg.mqtt_brokers is not None:
        if not cfg.mqtt_brokers:
            raise ConfigError(f"{path}: mqtt_brokers: name at least one node, or leave it out")
        for j, url in enumerate(cfg.mqtt_brokers):
            try:
                parse_broker_url(url, tls=cfg.mqtt_ca_file is not None)
            except ValueError as err:
                raise ConfigError(f"{path}: mqtt_brokers.{j}: {err}") from err
    if cfg.mqtt_ca_file is None:
        if cfg.mqtt_cert_file is not None or cfg.mqtt_key_file is not None:
            raise ConfigError(
                f"{path}: mqtt_cert_file: a client certificate is sent over TLS only: "
                "set mqtt_ca_file"
            )
        return
    try:
        mqtt_tls_context(cfg.mqtt_ca_file, cfg.mqtt_cert_file, cfg.mqtt_key_file)
    except TlsSetupError as err:
        raise ConfigError(f"{path}: {err}") from err
