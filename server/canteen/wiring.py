"""The canteen's collaborators, built once when the app starts: its settings, the payment
provider (None without a secret) and the social wallet (None without a URL). Routes take them
as a dependency (``canteen: CanteenDep``); tests install others with ``install``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from server.canteen.provider import HmacPaymentProvider, PaymentProvider
from server.canteen.settings import CanteenSettings
from server.canteen.wallet import HttpSocialWallet, SocialWallet


@dataclass(frozen=True, slots=True)
class Canteen:
    settings: CanteenSettings
    provider: PaymentProvider | None
    wallet: SocialWallet | None

    @classmethod
    def build(cls, settings: CanteenSettings) -> Canteen:
        provider = (
            HmacPaymentProvider(
                settings.provider_secret.get_secret_value().encode(),
                settings.provider_checkout_url,
            )
            if settings.provider_secret is not None
            else None
        )
        wallet = (
            HttpSocialWallet(
                settings.wallet_url,
                settings.wallet_key.get_secret_value() if settings.wallet_key is not None else "",
                timeout_s=settings.wallet_timeout_s,
            )
            if settings.wallet_url is not None
            else None
        )
        return cls(settings, provider, wallet)


def install(app: FastAPI, settings: CanteenSettings | None = None) -> Canteen:
    """Build the canteen's collaborators for ``app`` (from the environment by default)."""
    canteen = Canteen.build(settings if settings is not None else CanteenSettings())
    app.state.canteen = canteen
    return canteen


def get_canteen(request: Request) -> Canteen:
    canteen: Canteen = request.app.state.canteen
    return canteen


CanteenDep = Annotated[Canteen, Depends(get_canteen)]
