"""Server configuration: environment variables ``QAQPA_SERVER_*`` read by pydantic-settings."""

from __future__ import annotations

import ssl
import zoneinfo
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from protocol.link import is_loopback, parse_broker_url, plain_refusal
from server.tls import TlsSetupError, amqp_tls_context, link_error, mqtt_tls_context

# A key shared with another party or signing what parents hold (HMAC): at least this long, and
# neither a known default nor a trivial string.
MIN_SECRET_LENGTH = 24
KNOWN_DEFAULTS = frozenset({"changeme", "change-me", "change_me", "secret", "password", "qaqpa"})


def weak_secret_reason(value: str) -> str | None:
    """Why ``value`` is not acceptable as a secret, or None. Never quotes the value."""
    if value.strip().lower() in KNOWN_DEFAULTS or ("change" in value.lower() and "me" in value):
        return "a known default"
    if len(value) < MIN_SECRET_LENGTH:
        return f"shorter than {MIN_SECRET_LENGTH} characters"
    if len(set(value)) < 6:
        return "too few different characters"
    return None


class ServerSettings(BaseSettings):
    """Everything the server processes (ingest, downlink, API, CLI) need to find their peers."""

    model_config = SettingsConfigDict(
        env_prefix="QAQPA_SERVER_", extra="forbid", hide_input_in_errors=True
    )

    database_url: str = Field(
        default="sqlite:///var/qaqpa-server.db",
        description="SQLAlchemy URL: postgresql+psycopg://... in production, sqlite:///... for the demo",
    )
    database_replica_url: str | None = Field(
        default=None,
        description="Read-only URL of a streaming hot standby of database_url; reports and "
        "dashboards read from it (None: from the primary). Unreachable or too far behind: the "
        "pages read from the primary and say so (deploy/DEPLOYMENT.md)",
    )
    database_replica_max_lag_s: float = Field(
        default=300,
        gt=0,
        description="A standby further behind than this many seconds is not read from",
    )
    mqtt_host: str = Field(default="127.0.0.1", description="MQTT broker host")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port")
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT version; 3.1.1 (no shared subscriptions: ONE MQTT ingest worker) for "
        "amqtt and for a RabbitMQ or NATS cluster (whose ingest reads the queue: any number)",
    )
    mqtt_brokers: list[str] = Field(
        default_factory=list,
        description='The MQTT nodes of a broker cluster ("mqtts://mq1:8883", ...): the '
        "server's MQTT clients (downlink) start at a random one and reconnect to the next; "
        "when set, mqtt_host/mqtt_port are not used",
    )
    mqtt_username: str | None = Field(
        default=None, description="The server's own MQTT user (None: anonymous broker)"
    )
    mqtt_password: str | None = Field(default=None, description="The server's MQTT password")
    mqtt_receive_maximum: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="MQTT 5 Receive Maximum of the server's clients (None: the broker's default)",
    )
    mqtt_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed the broker's certificate, the only CA "
        "trusted; set: TLS 1.2 or newer, certificate and host name checked. Required for a "
        "broker off loopback unless mqtt_allow_plain (README, link security)",
    )
    mqtt_cert_file: Path | None = Field(
        default=None,
        description="The server's client certificate (PEM) for a broker that requires one; "
        "needs mqtt_key_file and mqtt_ca_file",
    )
    mqtt_key_file: Path | None = Field(
        default=None, description="The unencrypted private key (PEM, 0600) of mqtt_cert_file"
    )
    mqtt_allow_plain: bool = Field(
        default=False,
        description="Allow a plain (unencrypted) connection to a broker off loopback: a private "
        "network only. A loopback broker (127.0.0.1, ::1, localhost) may always be plain",
    )
    topic_prefix: str = Field(default="qaqpa/v1", description="MQTT topic prefix (tests vary it)")
    ingest_group: str = Field(default="ingest", description="Shared-subscription group of workers")
    ingest_max_messages_per_tx: int = Field(
        default=200, ge=1, description="MQTT messages written in one database transaction at most"
    )
    ingest_batch_wait_ms: int = Field(
        default=20,
        ge=0,
        le=1000,
        description="How long an ingest worker waits for more messages after the first one "
        "before it writes them (at most ingest_max_messages_per_tx) in one transaction: at a "
        "peak of single-event messages, one transaction for many costs far less than one each",
    )
    ingest_source: Literal["mqtt", "amqp"] = Field(
        default="mqtt",
        description="Where ingest takes the edges' batches from: mqtt = a (shared) MQTT "
        "subscription (Mosquitto, one node); amqp = the replicated quorum queue of a RabbitMQ "
        "cluster (README, the broker cluster)",
    )
    amqp_urls: list[str] = Field(
        default_factory=list,
        description="With ingest_source amqp: the AMQP URLs of the RabbitMQ nodes "
        "(amqps://user:password@host:5671/%2F with amqp_ca_file); ingest moves to the next one "
        "when a node fails",
    )
    amqp_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed the RabbitMQ nodes' certificates, the only "
        "CA trusted; set: every amqp_urls entry must be amqps:// (plain AMQP is refused), TLS 1.2 "
        "or newer, certificate and host name checked. Required for a node off loopback unless "
        "amqp_allow_plain (README, the broker cluster)",
    )
    amqp_allow_plain: bool = Field(
        default=False,
        description="Allow plain (unencrypted) AMQP to a RabbitMQ node off loopback: a private "
        "network only. A loopback node may always be plain",
    )
    amqp_queue: str = Field(
        default="qaqpa.ingest",
        min_length=1,
        max_length=200,
        description="With ingest_source amqp: the quorum queue the edges' batches are routed to",
    )
    broker_http_auth: bool = Field(
        default=False,
        description="Serve RabbitMQ's HTTP auth backend (POST /broker-auth/rabbitmq/user, "
        "vhost, resource, topic) from the devices table: per-device logins and topics on a "
        "RabbitMQ cluster, as the Mosquitto password and ACL files do on one node",
    )
    snapshot_threshold: int = Field(
        default=50,
        ge=1,
        description="An edge more than this many versions behind gets a snapshot, not deltas",
    )
    downlink_poll_s: float = Field(
        default=0.3,
        gt=0,
        le=60,
        description="How often the downlink service looks for versions the console appended",
    )
    policy_check_s: float = Field(
        default=300,
        gt=0,
        description="How often the due-policy job (run beside the downlink) publishes meal "
        "policies that came into force",
    )
    default_timezone: str = Field(
        default="Asia/Almaty",
        min_length=1,
        max_length=64,
        description="IANA zone of a school that names none (a school's day starts at its "
        "local midnight)",
    )

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown IANA timezone {value!r}") from err
        return value

    console_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The console's public URL, used in invitation links",
    )
    console_secure_cookies: bool = Field(
        default=False, description="Mark session cookies Secure (set True behind HTTPS)"
    )
    console_session_ttl_s: int = Field(
        default=12 * 3600, ge=60, description="A console session's lifetime"
    )
    console_invite_ttl_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="An invitation link's lifetime"
    )
    enrol_token_ttl_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="Lifetime of a one-time enrolment token"
    )
    mosquitto_password_file: Path | None = Field(
        default=None, description="Mosquitto password file the server maintains (None: none)"
    )
    mosquitto_acl_file: Path | None = Field(
        default=None, description="Mosquitto ACL file the server maintains (None: none)"
    )
    mosquitto_pid_file: Path | None = Field(
        default=None, description="PID file of Mosquitto, sent SIGHUP after the files change"
    )
    downlink_signatures: Literal["off", "accept", "require"] = Field(
        default="require",
        description="Signing of everything sent to edges (deltas, snapshots, acks): require = "
        "sign, and refuse to start without centre_key_file; accept = sign when a key is set; "
        "off = send unsigned (README, link security: the rollout)",
    )
    centre_key_file: Path | None = Field(
        default=None,
        description="The centre's Ed25519 private key (PEM, 0600) that signs the downlink; "
        "create it with `qaqpa server centre-key new`",
    )
    centre_next_key_file: Path | None = Field(
        default=None,
        description="During a key rotation: the next key, announced to every edge under the "
        "current one (README, key rotation)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ServerSettings:
        # Behind HTTPS a session cookie without Secure could still leak over plain HTTP.
        if self.console_base_url.lower().startswith("https://") and not self.console_secure_cookies:
            raise ValueError(
                "console_base_url is https but console_secure_cookies is false: set "
                "QAQPA_SERVER_CONSOLE_SECURE_COOKIES=true"
            )
        return self

    fault_kill_after_insert: int = Field(
        default=0,
        ge=0,
        description="Fault injection for tests: SIGKILL the ingest worker after its Nth "
        "transaction commits and before the acks are published (0: off)",
    )
    fault_kill_before_commit: int = Field(
        default=0,
        ge=0,
        description="Fault injection for tests: SIGKILL the ingest worker in its Nth "
        "transaction, after the events are inserted and before the commit (0: off)",
    )

    @model_validator(mode="after")
    def _mqtt_link_is_safe(self) -> ServerSettings:
        """Off loopback TLS only, and TLS files that load: checked before any connection."""
        try:
            nodes = self.mqtt_nodes()
        except ValueError as err:
            raise link_error(f"mqtt_brokers: {err}") from err
        for host, _port in nodes:
            refusal = plain_refusal(
                host, tls=self.mqtt_ca_file is not None, allow_plain=self.mqtt_allow_plain
            )
            if refusal is not None:
                raise link_error(
                    f"{'mqtt_brokers' if self.mqtt_brokers else 'mqtt_host'}: {refusal}"
                )
        if self.mqtt_ca_file is None:
            if self.mqtt_cert_file is not None or self.mqtt_key_file is not None:
                raise link_error(
                    "mqtt_cert_file: a client certificate is sent over TLS only: set mqtt_ca_file"
                )
        else:
            try:
                self.mqtt_tls_context()
            except TlsSetupError as err:
                raise link_error(str(err)) from err
        return self

    @model_validator(mode="after")
    def _amqp_link_is_safe(self) -> ServerSettings:
        """AMQP over TLS exactly when amqp_ca_file is set; plain only on loopback (or allowed)."""
        tls = self.amqp_ca_file is not None
        for k, url in enumerate(self.amqp_urls):
            refusal = amqp_url_refusal(url, tls=tls, allow_plain=self.amqp_allow_plain)
            if refusal is not None:
                raise link_error(f"amqp_urls.{k}: {refusal}")
        if self.amqp_ca_file is not None:
            try:
                amqp_tls_context(self.amqp_ca_file)
            except TlsSetupError as err:
                raise link_error(str(err)) from err
        return self

    def amqp_tls_context(self) -> ssl.SSLContext | None:
        """The TLS context of ingest's AMQP connections; None for plain ones."""
        if self.amqp_ca_file is None:
            return None
        return amqp_tls_context(self.amqp_ca_file)

    def mqtt_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of each MQTT node: ``mqtt_brokers``, or ``mqtt_host:mqtt_port`` alone."""
        if not self.mqtt_brokers:
            return [(self.mqtt_host, self.mqtt_port)]
        tls = self.mqtt_ca_file is not None
        return [parse_broker_url(url, tls=tls) for url in self.mqtt_brokers]

    def mqtt_tls_context(self) -> ssl.SSLContext | None:
        """The TLS context of the server's broker connections; None for plain ones."""
        if self.mqtt_ca_file is None:
            return None
        return mqtt_tls_context(self.mqtt_ca_file, self.mqtt_cert_file, self.mqtt_key_file)


def amqp_url_refusal(url: str, *, tls: bool, allow_plain: bool) -> str | None:
    """Why ingest must not use the AMQP URL ``url`` as configured, or None when it may. The
    message names the node (host:port), never the URL (it holds the password)."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError as err:
        return f"not an AMQP URL ({err})"
    if parts.scheme not in ("amqp", "amqps"):
        return "the scheme must be amqps:// (or amqp:// without amqp_ca_file)"
    if not host:
        return "no host"
    node = f"{host}:{port or (5671 if parts.scheme == 'amqps' else 5672)}"
    if tls and parts.scheme == "amqp":
        return (
            f"plain AMQP to {node} is refused: amqp_ca_file is set, so every node is reached "
            "over TLS (amqps://)"
        )
    if not tls and parts.scheme == "amqps":
        return (
            f"amqps:// to {node} needs amqp_ca_file: the CA that signed the nodes' certificates "
            "(README, the broker cluster)"
        )
    if not tls and not allow_plain and not is_loopback(host):
        return (
            f"a plain (unencrypted) AMQP connection to {node} is refused off loopback: give "
            "amqps:// URLs and amqp_ca_file, or, on a private network only, amqp_allow_plain = "
            "true (README, the broker cluster)"
        )
    return None
