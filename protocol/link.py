"""The rule both ends of the MQTT link share (DESIGN invariant 8): off loopback, TLS only.

Pure: the host is judged as written, never resolved, so checking a setting sends nothing over
the network. Each side builds its own TLS context from its settings (edge/sync.py,
server/mqtt.py); this module only says when a plain connection is allowed.
"""

from __future__ import annotations

import ipaddress

# The TLS floor of every MQTT connection (ssl.TLSVersion.TLSv1_2 by name: no ssl import here).
MIN_TLS_VERSION = "TLSv1_2"


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (bracketed or not); any other name or address is not."""
    h = host.strip().rstrip(".").lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def plain_refusal(host: str, *, tls: bool, allow_plain: bool) -> str | None:
    """Why a connection to ``host`` must not be made as configured, or None when it may."""
    if tls or allow_plain or is_loopback(host):
        return None
    return (
        f"a plain (unencrypted) MQTT connection to {host!r} is refused off loopback: set "
        "mqtt_ca_file to the CA that signed the broker's certificate (TLS), or, on a private "
        "network only, mqtt_allow_plain = true (README, link security)"
    )


def parse_broker_url(url: str, *, tls: bool) -> tuple[str, int]:
    """``mqtts://host:port``, ``mqtt://host:port`` or ``host[:port]`` -> (host, port).

    The scheme must agree with the link (TLS when a CA is set): a plain URL on a TLS link, or
    the reverse, is refused rather than silently changed. The port defaults to 8883 / 1883.
    """
    text = url.strip()
    scheme = None
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"{url!r}: the scheme must be mqtt:// or mqtts://")
        if (scheme == "mqtts") != tls:
            want = "mqtts:// (mqtt_ca_file is set)" if tls else "mqtt:// (no mqtt_ca_file)"
            raise ValueError(f"{url!r}: this link needs {want}")
    text = text.rstrip("/")
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"{url!r}: no host")
    try:
        port = int(port_text) if port_text else (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{url!r}: port {port} out of range")
    return host, port
