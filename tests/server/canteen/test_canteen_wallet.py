"""The social wallet round trip over real HTTP with its simulator: the month's eligibility list
funds the children's vouchers once, a parent's dynamic QR code pays one meal once (expired,
forged and repeated codes get precise errors), card voucher meals from the school are
confirmed with the wallet, and the monthly settlement matches the meals served."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.canteen import ledger, service
from server.canteen.ledger import AccountKind, QrClaim
from server.canteen.models import LedgerEntry, Posting
from server.canteen.settings import CanteenSettings
from server.canteen.wallet import HttpSocialWallet
from server.canteen.wiring import install as install_canteen
from server.clock import now_ms
from simulators.social_wallet import SocialWalletSimulator
from tests.support.canteen import add_device, add_meal, canteen_settings
from tests.support.console import World

KEY = "wallet-test-key"
TOKEN_RE = re.compile(r'id="qr-token">([^<]+)<')


@pytest.fixture
def wallet_sim() -> Iterator[SocialWalletSimulator]:
    with SocialWalletSimulator(KEY) as sim:
        yield sim


@pytest.fixture
def wcs(app: Any, wallet_sim: SocialWalletSimulator) -> CanteenSettings:
    s = canteen_settings(
        wallet_url=wallet_sim.url, wallet_key=SecretStr(KEY), voucher_meal_tiyn=60_000
    )
    install_canteen(app, s)
    return s


def test_social_wallet_round_trip(
    world: World,
    db: Session,
    wcs: CanteenSettings,
    wallet_sim: SocialWalletSimulator,
    make_browser: Any,
) -> None:
    month = service.local_date(now_ms(), service.zone_of(db, "S1")).strftime("%Y-%m")
    wallet_sim.state.add_eligible(month, "s1-3a-1", 120_000)
    wallet_sim.state.add_eligible(month, "s1-7b-1", 60_000)
    wallet_sim.state.add_eligible(month, "s3-3a-1", 60_000)  # another school's child
    wallet_sim.state.add_eligible(month, "not-ours", 60_000)
    manager = make_browser("canteen1")
    assert manager.get(f"/canteen/wallet?school=S1&month={month}").status_code == 200
    for _ in range(2):  # funding twice pays each child once
        r = manager.post("/canteen/wallet/fund", {"school": "S1", "month": month})
        assert r.status_code == 303, r.text
    own, other = world.students["s1-3a-1"], world.students["s1-7b-1"]
    db.expire_all()
    assert service.balance(db, own, AccountKind.STUDENT_VOUCHER) == 120_000
    assert service.balance(db, other, AccountKind.STUDENT_VOUCHER) == 60_000
    assert service.balance(db, world.students["s3-3a-1"], AccountKind.STUDENT_VOUCHER) == 0

    # a parent's dynamic QR code pays one meal, once
    parent = make_browser("parent1")
    page = parent.get(f"/canteen/voucher/qr/{own}")
    assert page.status_code == 200
    token = TOKEN_RE.search(page.text).group(1)  # type: ignore[union-attr]
    assert parent.get(f"/canteen/voucher/qr/{world.students['s1-3a-2']}").status_code == 404
    ok = manager.post("/canteen/voucher/redeem", {"token": token})
    assert ok.status_code == 200 and 'id="redeemed"' in ok.text
    again = manager.post("/canteen/voucher/redeem", {"token": token})
    assert again.status_code == 409 and 'data-code="qr_redeemed"' in again.text
    key = wcs.qr_secret.get_secret_value().encode()  # type: ignore[union-attr]
    expired = ledger.qr_sign(QrClaim("s1-3a-1", 60_000, "old-nonce", now_ms() - 1), key)
    r = manager.post("/canteen/voucher/redeem", {"token": expired})
    assert r.status_code == 410 and 'data-code="qr_expired"' in r.text
    forged = ledger.qr_sign(QrClaim("s1-3a-1", 60_000, "forged", now_ms() + 60_000), b"not the key")
    r = manager.post("/canteen/voucher/redeem", {"token": forged})
    assert r.status_code == 400 and 'data-code="qr_bad_signature"' in r.text
    # another school's manager cannot redeem this school's child
    admin3 = make_browser("admin3")
    fresh = TOKEN_RE.search(parent.get(f"/canteen/voucher/qr/{own}").text).group(1)  # type: ignore[union-attr]
    assert admin3.post("/canteen/voucher/redeem", {"token": fresh}).status_code == 404
    # the other child: one meal, then the voucher is empty
    claim = QrClaim("s1-7b-1", 60_000, "n-7b-1", now_ms() + 60_000)
    assert (
        manager.post("/canteen/voucher/redeem", {"token": ledger.qr_sign(claim, key)}).status_code
        == 200
    )
    claim2 = QrClaim("s1-7b-1", 60_000, "n-7b-2", now_ms() + 60_000)
    r = manager.post("/canteen/voucher/redeem", {"token": ledger.qr_sign(claim2, key)})
    assert r.status_code == 409 and 'data-code="voucher_low"' in r.text

    # a voucher meal served by card at the school, posted from its event
    dev = add_device(db, "S1")
    add_meal(db, dev, 1, "s1-3a-1", 60_000, None, meal="voucher")
    db.commit()
    assert service.post_meals(db, wcs) == 1
    db.commit()
    wallet = HttpSocialWallet(wallet_sim.url, KEY)
    try:
        before = service.settlement(db, wallet, "S1", month)
        assert not before.matches
        assert [line.problem for line in before.lines] == [
            "In the ledger, not confirmed by the wallet"
        ]
        r = manager.post("/canteen/wallet/fund", {"school": "S1", "month": month})  # confirms it
        assert r.status_code == 303
        db.expire_all()
        after = service.settlement(db, wallet, "S1", month)
        assert (
            after.matches and after.meals == 3 and after.ours_tiyn == after.wallet_tiyn == 180_000
        )
        assert (
            wallet.voucher_balance("s1-3a-1")
            == 0
            == service.balance(db, own, AccountKind.STUDENT_VOUCHER)
        )
        assert (
            wallet.voucher_balance("s1-7b-1")
            == 0
            == service.balance(db, other, AccountKind.STUDENT_VOUCHER)
        )
    finally:
        wallet.close()
    page = manager.get(f"/canteen/wallet?school=S1&month={month}")
    assert page.status_code == 200 and "badge ok" in page.text
    assert db.scalar(select(func.sum(Posting.amount_tiyn))) == 0
    kinds = sorted(db.scalars(select(LedgerEntry.kind)))
    assert kinds == ["voucher_fund", "voucher_fund", "voucher_meal", "voucher_meal", "voucher_meal"]
    report = manager.get("/canteen/reports?school=S1")
    assert 'id="total-voucher">3<' in report.text


def test_wallet_redemption_is_idempotent_at_the_simulator(
    wallet_sim: SocialWalletSimulator,
) -> None:
    wallet_sim.state.add_eligible("2026-11", "kid", 100_000)
    w = HttpSocialWallet(wallet_sim.url, KEY)
    try:
        first = w.redeem("r1", "kid", 60_000, 1_795_000_000_000)
        assert w.redeem("r1", "kid", 60_000, 1_795_000_000_000) == first
        assert w.voucher_balance("kid") == 40_000
        with pytest.raises(Exception) as e:
            w.redeem("r1", "kid", 1, 1)
        assert getattr(e.value, "code", "") == "conflict"
        with pytest.raises(Exception) as e:
            w.redeem("r2", "kid", 60_000, 1)
        assert getattr(e.value, "code", "") == "insufficient"
        assert [r.redemption_id for r in w.settlement("2026-11")] == ["r1"]
        bad = HttpSocialWallet(wallet_sim.url, "wrong")
        with pytest.raises(Exception) as e:
            bad.eligibility("2026-11")
        assert getattr(e.value, "code", "") == "unauthorized"
        bad.close()
    finally:
        w.close()
