"""Canteen settings: environment variables ``QAQPA_CANTEEN_*`` (pydantic-settings)."""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.settings import MIN_SECRET_LENGTH, weak_secret_reason


class CanteenSettings(BaseSettings):
    """The payment provider's and the social wallet's endpoints and secrets, and money rules."""

    # hide_input_in_errors: a refused secret is never printed.
    model_config = SettingsConfigDict(
        env_prefix="QAQPA_CANTEEN_", extra="forbid", hide_input_in_errors=True
    )

    provider_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key shared with the payment provider for its callbacks; "
        "None: top-up callbacks are refused (503) rather than accepted unsigned",
    )
    provider_checkout_url: str | None = Field(
        default=None,
        description="Base URL of the provider's payment page (the simulator's, or the real "
        "provider's); None: parents see no top-up button",
    )
    wallet_url: str | None = Field(
        default=None,
        description="Base URL of the social-wallet service (the simulator, or the adapter of "
        "the real state service); None: the wallet pages say it is not configured",
    )
    wallet_key: SecretStr | None = Field(
        default=None, description="API key sent to the social wallet as a Bearer token"
    )
    wallet_timeout_s: float = Field(default=10.0, gt=0, le=120, description="One wallet call")
    qr_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key signing the voucher QR codes; None: no QR codes are issued",
    )
    qr_ttl_s: int = Field(default=300, ge=30, le=3600, description="A QR code's lifetime")
    voucher_meal_tiyn: int = Field(
        default=60_000, ge=1, description="What one voucher meal costs the social wallet (tiyn)"
    )
    low_balance_tiyn: int = Field(
        default=50_000, ge=0, description="A balance below this is low: the parent is told"
    )
    post_batch: int = Field(default=500, ge=1, description="Meal events posted per transaction")
    fault_kill_before_commit: int = Field(
        default=0,
        ge=0,
        description="Fault injection for tests: SIGKILL the meal poster before its Nth commit",
    )

    @field_validator("provider_secret", "qr_secret")
    @classmethod
    def _strong(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """None turns the feature off; a key that is set must be a real one."""
        if value is not None:
            reason = weak_secret_reason(value.get_secret_value())
            if reason is not None:
                name = f"QAQPA_CANTEEN_{str(info.field_name).upper()}"
                raise ValueError(
                    f"{name} is {reason}: use a random key of at least {MIN_SECRET_LENGTH} "
                    "characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        return value
