"""Weak settings refuse to start: a short, default or trivial HMAC key (payment provider, voucher
QR codes), an https console with insecure cookies. The refusal never prints the secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from server.canteen.settings import CanteenSettings
from server.settings import ServerSettings

STRONG = "kq3Vd8-Zx1pLr7Tn0bYw5Hc2Jm9Fs4Ue"


@pytest.mark.parametrize("field", ["provider_secret", "qr_secret"])
@pytest.mark.parametrize(
    "weak", ["a", "changeme", "secret", "short-but-random-9x", "ab" * 20, "CHANGEME"]
)
def test_weak_keys_are_refused(field: str, weak: str) -> None:
    with pytest.raises(ValidationError) as err:
        CanteenSettings(**{field: SecretStr(weak)})
    text = str(err.value)
    assert f"QAQPA_CANTEEN_{field.upper()}" in text
    assert "input_value" not in text and "short-but-random" not in text


def test_strong_or_absent_keys_are_accepted() -> None:
    s = CanteenSettings(provider_secret=SecretStr(STRONG), qr_secret=SecretStr(STRONG[::-1]))
    assert s.provider_secret is not None
    assert CanteenSettings().qr_secret is None  # the feature is off, not weak


def test_https_console_needs_secure_cookies() -> None:
    with pytest.raises(ValidationError, match="CONSOLE_SECURE_COOKIES"):
        ServerSettings(console_base_url="https://console.example.kz")
    ServerSettings(console_base_url="https://console.example.kz", console_secure_cookies=True)
    ServerSettings(console_base_url="http://127.0.0.1:8000")  # the demo


@pytest.mark.parametrize(
    "env",
    [
        {"QAQPA_CANTEEN_PROVIDER_SECRET": "weakling"},
        {"QAQPA_CANTEEN_QR_SECRET": "weakling"},
        {"QAQPA_SERVER_CONSOLE_BASE_URL": "https://console.example.kz"},
    ],
)
def test_the_api_refuses_to_start(tmp_path: Path, env: dict[str, str]) -> None:
    qaqpa = Path(sys.executable).parent / "qaqpa"
    proc = subprocess.run(
        [str(qaqpa), "server", "api", "--host", "127.0.0.1", "--port", "1"],
        env={
            **os.environ,
            "QAQPA_SERVER_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "refusing to start" in proc.stderr and "weakling" not in proc.stderr
