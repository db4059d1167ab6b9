"""The server's TLS contexts for MQTT and AMQP: the broker's certificate checked against one
pinned CA.

Kept apart from ``server.mqtt`` (paho) so the settings can check the files at start. The edge has
the same few lines in ``edge/tls.py`` (edge and server share only ``protocol``, which does no
I/O); the rule of when TLS is needed is ``protocol.link``.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from protocol.link import MIN_TLS_VERSION


class TlsSetupError(ValueError):
    """A TLS file that cannot be used; the message names the setting and the file."""


def readable_file(field: str, path: Path) -> Path:
    """``path`` if it is a readable file; otherwise a ``TlsSetupError`` naming ``field``."""
    try:
        with path.open("rb"):
            pass
    except OSError as err:
        raise TlsSetupError(f"{field}: {path}: cannot read: {err.strerror}") from err
    if not path.is_file():
        raise TlsSetupError(f"{field}: {path}: not a file")
    return path


def mqtt_tls_context(
    ca_file: Path, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """Verify the broker against ``ca_file`` only (no system CAs), check its host name, TLS 1.2
    or newer; present ``cert_file`` + ``key_file`` when the broker asks for a client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    ctx.minimum_version = getattr(ssl.TLSVersion, MIN_TLS_VERSION)
    try:
        ctx.load_verify_locations(cafile=readable_file("mqtt_ca_file", ca_file))
    except ssl.SSLError as err:
        raise TlsSetupError(
            f"mqtt_ca_file: {ca_file}: not a PEM CA certificate ({err.reason})"
        ) from err
    if (cert_file is None) != (key_file is None):
        raise TlsSetupError("mqtt_cert_file and mqtt_key_file: set both or neither")
    if cert_file is not None and key_file is not None:
        readable_file("mqtt_cert_file", cert_file)
        readable_file("mqtt_key_file", key_file)
        try:
            # an encrypted key is refused, never prompted for on a terminal
            ctx.load_cert_chain(cert_file, key_file, password=b"")
        except ssl.SSLError as err:
            raise TlsSetupError(
                f"mqtt_cert_file / mqtt_key_file: {cert_file}, {key_file}: not a PEM certificate "
                f"and its unencrypted key ({err.reason})"
            ) from err
    return ctx


def amqp_tls_context(ca_file: Path) -> ssl.SSLContext:
    """Ingest's AMQP connections to RabbitMQ: the node's certificate checked against ``ca_file``
    only (no system CAs), its host name checked, TLS 1.2 or newer."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    ctx.minimum_version = getattr(ssl.TLSVersion, MIN_TLS_VERSION)
    try:
        ctx.load_verify_locations(cafile=readable_file("amqp_ca_file", ca_file))
    except ssl.SSLError as err:
        raise TlsSetupError(
            f"amqp_ca_file: {ca_file}: not a PEM CA certificate ({err.reason})"
        ) from err
    return ctx


def link_error(message: str) -> PydanticCustomError:
    """A settings error whose message already names its field (no "Value error," prefix)."""
    return PydanticCustomError("mqtt_link", "{message}", {"message": message})


def link_problem(err: ValidationError) -> str:
    """``field: problem`` of the first error of a settings model (the field may be in the text)."""
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"])
    return f"{loc}: {first['msg']}" if loc else str(first["msg"])
