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
