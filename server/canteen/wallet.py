"""The social wallet (the state's account paying targeted meal money), behind an interface.

``SocialWallet`` is what the canteen needs from the state service: the month's eligibility list,
a child's voucher balance, an idempotent redemption (one redemption id is one meal, however
often it is sent) and the month's settlement. ``HttpSocialWallet`` speaks the contract of the
local simulator (``simulators/social_wallet.py``). The real service's API is not public: whoever
holds its contract writes another subclass (see server/canteen/README.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class Eligible:
    student_ref: str
    amount_tiyn: int  # the month's meal money for this child


@dataclass(frozen=True, slots=True)
class Redemption:
    redemption_id: str
    student_ref: str
    amount_tiyn: int
    at_ms: int


class WalletError(Exception):
    """The wallet refused or could not be reached; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SocialWallet(ABC):
    @abstractmethod
    def eligibility(self, month: str) -> list[Eligible]: ...

    @abstractmethod
    def voucher_balance(self, student_ref: str) -> int: ...

    @abstractmethod
    def redeem(
        self, redemption_id: str, student_ref: str, amount_tiyn: int, at_ms: int
    ) -> Redemption:
        """Idempotent on ``redemption_id``: a repeat returns the first redemption."""

    @abstractmethod
    def settlement(self, month: str) -> list[Redemption]:
        """Every redemption the wallet pays the canteen for in ``month``."""


class HttpSocialWallet(SocialWallet):
    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._client = client or httpx.Client(base_url=base_url, timeout=timeout_s)
        self._base = base_url.rstrip("/")
        self._headers = {"authorization": f"Bearer {key}"}

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self._client.request(method, self._base + path, headers=self._headers, **kw)
        except httpx.HTTPError as err:
            raise WalletError(
                "unreachable", f"The social wallet did not answer: {type(err).__name__}"
            ) from err
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code >= 400:
            code = (
                body.get("error", f"http_{r.status_code}")
                if isinstance(body, dict)
                else f"http_{r.status_code}"
            )
            message = body.get("message", "") if isinstance(body, dict) else ""
            raise WalletError(
                str(code), str(message) or f"The social wallet answered {r.status_code}"
            )
        return body

    def eligibility(self, month: str) -> list[Eligible]:
        body = self._call("GET", "/v1/eligibility", params={"month": month})
        return [Eligible(str(s["student_ref"]), int(s["amount_tiyn"])) for s in body["students"]]

    def voucher_balance(self, student_ref: str) -> int:
        return int(self._call("GET", f"/v1/vouchers/{student_ref}")["balance_tiyn"])

    def redeem(
        self, redemption_id: str, student_ref: str, amount_tiyn: int, at_ms: int
    ) -> Redemption:
        body = self._call(
            "POST",
            "/v1/redemptions",
            json={
                "redemption_id": redemption_id,
                "student_ref": student_ref,
                "amount_tiyn": amount_tiyn,
                "at_ms": at_ms,
            },
        )
        return _redemption(body)

    def settlement(self, month: str) -> list[Redemption]:
        body = self._call("GET", "/v1/settlements", params={"month": month})
        return [_redemption(r) for r in body["redemptions"]]


def _redemption(raw: dict[str, Any]) -> Redemption:
    return Redemption(
        str(raw["redemption_id"]),
        str(raw["student_ref"]),
        int(raw["amount_tiyn"]),
        int(raw["at_ms"]),
    )
