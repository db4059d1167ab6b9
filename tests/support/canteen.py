"""Canteen settings for tests at the centre: the payment provider's secret, small batches."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from server.canteen.settings import CanteenSettings

SECRET = b"provider-test-secret-0123456789"


def canteen_settings(**kw: Any) -> CanteenSettings:
    base: dict[str, Any] = {
        "provider_secret": SecretStr(SECRET.decode()),
        "qr_secret": SecretStr("qr-test-secret-0123456789abcdef"),
        "low_balance_tiyn": 50_000,
        "post_batch": 3,
    }
    return CanteenSettings(**(base | kw))
