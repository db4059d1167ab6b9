"""Canteen money at the centre, on the real PostgreSQL through the console: top-ups from the
payment provider's simulator (idempotent, signed, precise refusals), refunds and corrections
(audited), paid meals posted once, menus and parents' limits sent to the school, reconciliation,
reports (XLSX) and low-balance conditions."""

from __future__ import annotations

import html
import io
import json
import re
import zoneinfo
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.messages import BalanceCredit, BalanceDebit, MenuSet, ParentLimitsSet
from server.audit.models import AuditEntry
from server.canteen import service
from server.canteen.models import LedgerEntry, LowBalance, Posting
from server.canteen.settings import CanteenSettings
from server.canteen.wiring import install as install_canteen
from server.clock import now_ms
from server.models import ChangeLogEntry
from server.sync.changelog import load_changes
from simulators.payment_provider import CALLBACK_PATH, Payment, PaymentProviderSimulator
from tests.support.canteen import SECRET, add_device, add_meal, canteen_settings
from tests.support.console import World

ZONE = zoneinfo.ZoneInfo("Asia/Almaty")


def changes(db: Session, school: str) -> list[Any]:
    db.expire_all()
    rows = db.scalars(
        select(ChangeLogEntry.changes)
        .where(ChangeLogEntry.school_id == school)
        .order_by(ChangeLogEntry.version)
    )
    return load_changes(list(rows))


def ledger_balance(db: Session, student_pk: int) -> int:
    db.expire_all()
    return service.balance(db, student_pk)


# ------------------------------------------------------------------------------- top-ups


def test_topup_is_booked_once_and_sent_to_the_school(
    world: World, db: Session, provider: PaymentProviderSimulator
) -> None:
    r = provider.pay("s1-3a-1", 150_000, txid="tx-1")
    assert r.status_code == 200 and r.json()["status"] == "booked", r.text
    lid = r.json()["ledger_id"]
    again = provider.repeat()
    assert again.status_code == 200 and again.json() == {"status": "duplicate", "ledger_id": lid}
    pk = world.students["s1-3a-1"]
    assert ledger_balance(db, pk) == 150_000
    assert db.scalar(select(func.count()).select_from(LedgerEntry)) == 1
    assert db.scalar(select(func.sum(Posting.amount_tiyn))) == 0
    credits = [c for c in changes(db, "S1") if isinstance(c, BalanceCredit)]
    assert credits == [BalanceCredit(ledger_id=lid, student_id="s1-3a-1", amount_tiyn=150_000)]


def test_bad_callbacks_book_nothing(
    world: World, db: Session, provider: PaymentProviderSimulator
) -> None:
    unknown = provider.pay("nobody-here", 1000)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_student"
    negative = provider.callback(Payment("tx-neg", "s1-3a-1", -500, now_ms()))
    assert negative.status_code == 422 and negative.json()["error"] == "amount_not_positive"
    zero = provider.callback(Payment("tx-zero", "s1-3a-1", 0, now_ms()))
    assert zero.status_code == 422
    forged = provider.callback(Payment("tx-forged", "s1-3a-1", 1000, now_ms()), secret=b"wrong")
    assert forged.status_code == 401 and forged.json()["error"] == "bad_signature"
    body = b"not json"
    garbage = provider.client.post(
        CALLBACK_PATH, content=body, headers={"x-qaqpa-signature": provider.sign(body)}
    )
    assert garbage.status_code == 400 and garbage.json()["error"] == "malformed"
    assert provider.pay("s1-3a-1", 1000, txid="tx-ok").status_code == 200
    conflict = provider.callback(Payment("tx-ok", "s1-3a-1", 9999, now_ms()))
    assert conflict.status_code == 409 and conflict.json()["error"] == "txid_conflict"
    assert db.scalar(select(func.count()).select_from(LedgerEntry)) == 1
    assert ledger_balance(db, world.students["s1-3a-1"]) == 1000
    assert len([c for c in changes(db, "S1") if isinstance(c, BalanceCredit)]) == 1


def test_callback_refused_without_a_configured_secret(
    world: World, app: Any, make_browser: Any
) -> None:
    install_canteen(app, CanteenSettings())
    sim = PaymentProviderSimulator(CALLBACK_PATH, SECRET, client=make_browser().client)
    r = sim.pay("s1-3a-1", 1000)
    assert r.status_code == 503


# ------------------------------------------------------------------- refunds, corrections


def test_refund_and_corrections_are_audited_and_reasoned(
    world: World,
    db: Session,
    cs: CanteenSettings,
    make_browser: Any,
    provider: PaymentProviderSimulator,
) -> None:
    pk = world.students["s1-3a-1"]
    provider.pay("s1-3a-1", 200_000)
    # A paid meal of 300 ₸: what a refund may give back at most.
    add_meal(db, add_device(db, "S1"), 1, "s1-3a-1", 30_000, 70_000)
    db.commit()
    b = make_browser("canteen1")
    assert b.get(f"/canteen/student/{pk}").status_code == 200
    assert b.post("/canteen/post-meals", {"school": "S1"}).status_code == 303  # the paid meal
    no_reason = b.post(
        f"/canteen/student/{pk}/book", {"kind": "refund", "amount": "100", "reason": " "}
    )
    assert (
        no_reason.status_code == 422 and "Себебін көрсетіңіз." in no_reason.text
    )  # Kazakh by default
    negative_refund = b.post(
        f"/canteen/student/{pk}/book", {"kind": "refund", "amount": "-100", "reason": "x"}
    )
    assert negative_refund.status_code == 422
    assert (
        b.post(
            f"/canteen/student/{pk}/book",
            {"kind": "refund", "amount": "250,50", "reason": "soup was cold"},
        ).status_code
        == 303
    )
    assert (
        b.post(
            f"/canteen/student/{pk}/book",
            {"kind": "correction", "amount": "-700", "reason": "double top-up"},
        ).status_code
        == 303
    )
    assert ledger_balance(db, pk) == 200_000 - 30_000 + 25_050 - 70_000
    kinds = [c for c in changes(db, "S1") if isinstance(c, BalanceCredit)]
    assert [c.amount_tiyn for c in kinds] == [200_000, 25_050]
    debits = [c for c in changes(db, "S1") if isinstance(c, BalanceDebit)]
    assert [c.amount_tiyn for c in debits] == [70_000]  # the debit reaches the school too
    audits = list(
        db.scalars(
            select(AuditEntry.summary)
            .where(AuditEntry.student_pk == pk, AuditEntry.action == "canteen.book")
            .order_by(AuditEntry.pk)
        )
    )
    assert [a.split()[0] for a in audits] == ["refund", "correction"]
    # the balance fell below the threshold (50 000 tiyn): one low-balance condition
    lows = list(db.scalars(select(LowBalance)))
    assert lows == []  # 125 050 tiyn is still above the 50 000 threshold
    # scope: another school's manager may not book, a class teacher may not see
    assert (
        make_browser("admin3")
        .post(f"/canteen/student/{pk}/book", {"kind": "refund", "amount": "1", "reason": "x"})
        .status_code
        == 404
    )
    assert make_browser("teacher1").get(f"/canteen/student/{pk}").status_code in (403, 404)


def test_a_refund_cannot_exceed_what_was_paid(
    world: World, db: Session, make_browser: Any, provider: PaymentProviderSimulator
) -> None:
    pk = world.students["s1-3a-1"]
    provider.pay("s1-3a-1", 100_000)
    dev = add_device(db, "S1")
    add_meal(db, dev, 1, "s1-3a-1", 30_000, 70_000)
    add_meal(db, dev, 2, "s1-3a-1", 20_000, 50_000)
    db.commit()
    b = make_browser("canteen1")
    assert b.get(f"/canteen/student/{pk}").status_code == 200
    assert b.post("/canteen/post-meals", {"school": "S1"}).status_code == 303  # 500 ₸ paid

    def refund(amount: str):  # type: ignore[no-untyped-def]
        return b.post(
            f"/canteen/student/{pk}/book", {"kind": "refund", "amount": amount, "reason": "x"}
        )

    # A top-up is not a meal: 1 000 ₸ on the balance does not make 1 000 ₸ refundable.
    assert refund("9000").status_code == 422
    assert refund("500,01").status_code == 422
    assert refund("300").status_code == 303
    assert refund("200,01").status_code == 422  # 500 paid less 300 refunded
    assert refund("200").status_code == 303
    assert refund("0,01").status_code == 422
    assert ledger_balance(db, pk) == 100_000 - 50_000 + 50_000


# --------------------------------------------------------------------------- meal poster


def test_paid_meals_are_posted_once_and_low_balance_recorded(
    world: World, db: Session, cs: CanteenSettings, provider: PaymentProviderSimulator
) -> None:
    pk = world.students["s1-3a-1"]
    provider.pay("s1-3a-1", 100_000)
    dev = add_device(db, "S1")
    add_meal(db, dev, 1, "s1-3a-1", 30_000, 70_000)
    add_meal(db, dev, 2, "s1-3a-1", 30_000, 40_000)  # crosses 50 000
    add_meal(db, dev, 3, "s1-3a-1", 0, None, meal="free")
    add_meal(db, dev, 4, "ghost", 5_000, 0)  # a student the server does not know: suspense
    db.commit()
    assert service.post_meals(db, cs) == 3
    db.commit()
    assert service.post_meals(db, cs) == 0
    assert ledger_balance(db, pk) == 40_000
    assert db.scalar(select(func.sum(Posting.amount_tiyn))) == 0
    lows = list(db.scalars(select(LowBalance)))
    assert [(lo.student_pk, lo.balance_tiyn) for lo in lows] == [(pk, 40_000)]
    rows = {r.student_ref: r for r in service.reconciliation(db, "S1")}
    assert (
        rows["s1-3a-1"].recon.ledger_tiyn == 40_000 and rows["s1-3a-1"].recon.school_tiyn == 40_000
    )
    assert rows["s1-3a-1"].recon.agrees
    assert rows["-"].recon.ledger_tiyn == -5_000  # debited to suspense: shown, never lost


# ------------------------------------------------------------------------ menus and limits


def test_menu_is_validated_and_sent(world: World, db: Session, make_browser: Any) -> None:
    """The menu editor: one row a dish (name, price, allergen checkboxes); every problem is
    shown on its row, nothing is saved from a menu with errors; a saved menu redirects to
    its page (a refresh sends nothing again); a script may still send the text form."""
    b = make_browser("canteen1")
    page = b.get("/canteen/menu?school=S1")
    assert page.status_code == 200 and 'name="allergen" value="0:milk"' in page.text
    assert "<textarea" not in page.text  # no more "id; name; price; allergens" text box
    day = "2026-12-01"
    rows = {
        "school": "S1",
        "date": day,
        "dish_id": ["", "", "", ""],
        "name": ["Сорпа", "Бәліш", "Шай", ""],
        "price": ["300", "", "-5", ""],
        "other": ["", "", "", ""],
    }
    bad = b.post("/canteen/menu", rows)
    assert bad.status_code == 422
    # Kazakh by default: "dish 2, price: the dish has no price", "dish 3: must not be negative"
    assert "Тағам 2, бағасы: Тағамның бағасы жоқ." in bad.text
    assert "Тағам 3, бағасы: Баға теріс болмауы керек." in bad.text
    assert bad.text.count('class="error row-error"') == 2  # one message per problem, on its row
    assert 'data-row="2"' in bad.text.split('class="error row-error"')[0]
    assert 'value="Бәліш"' in bad.text and 'value="-5"' in bad.text  # rows come back as typed
    assert not [c for c in changes(db, "S1") if isinstance(c, MenuSet)]
    # add a row, remove a row: no script, nothing saved
    more = b.post("/canteen/menu", rows | {"op": "add"})
    assert more.status_code == 200 and more.text.count('name="name"') == 5
    fewer = b.post("/canteen/menu", rows | {"op": "remove:1"})
    assert fewer.text.count('name="name"') == 3 and 'value="Бәліш"' not in fewer.text
    assert not [c for c in changes(db, "S1") if isinstance(c, MenuSet)]
    good = {
        "school": "S1",
        "date": day,
        "dish_id": ["", "", ""],
        "name": ["Сорпа", "Сүт ботқасы", ""],
        "price": ["300", "350,50", ""],
        "allergen": ["1:milk", "1:gluten"],
        "other": ["", "kumys", ""],
    }
    ok = b.post("/canteen/menu", good)
    assert ok.status_code == 303, ok.text
    assert ok.headers["location"] == f"/canteen/menu?school=S1&date={day}"
    menus = [c for c in changes(db, "S1") if isinstance(c, MenuSet)]
    assert len(menus) == 1 and menus[0].local_date == day
    assert [(i.id, i.name, i.price_tiyn, i.allergens) for i in menus[0].items] == [
        ("dish-1", "Сорпа", 30_000, []),
        ("dish-2", "Сүт ботқасы", 35_050, ["milk", "gluten", "kumys"]),
    ]
    shown = b.get(ok.headers["location"]).text
    assert 'id="flash"' in shown and 'value="Сүт ботқасы"' in shown
    assert 'value="1:milk" checked' in shown and 'value="kumys"' in shown
    # a refresh of the page it landed on saves nothing again
    b.get(ok.headers["location"])
    assert len([c for c in changes(db, "S1") if isinstance(c, MenuSet)]) == 1
    # a saved dish keeps its id when the menu is edited again
    again = good | {"dish_id": ["dish-1", "dish-2", ""], "price": ["320", "350,50", ""]}
    assert b.post("/canteen/menu", again).status_code == 303
    last = [c for c in changes(db, "S1") if isinstance(c, MenuSet)][-1]
    assert [(i.id, i.price_tiyn) for i in last.items] == [("dish-1", 32_000), ("dish-2", 35_050)]
    # a script's text form still works, and is checked the same way
    text = b.post("/canteen/menu", {"school": "S1", "date": day, "menu": "tea; Шай; -5"})
    assert text.status_code == 422 and "Баға теріс болмауы керек." in text.text
    assert (
        make_browser("admin3")
        .post("/canteen/menu", {"school": "S1", "date": day, "menu": "a; b; 1"})
        .status_code
        == 404
    )
    assert make_browser("teacher1").get("/canteen/menu").status_code == 403


def test_parent_limits_own_children_only(world: World, db: Session, make_browser: Any) -> None:
    own, other = world.students["s1-3a-1"], world.students["s1-3a-2"]
    p = make_browser("parent1")
    assert p.get("/canteen/parent").status_code == 200
    assert p.get(f"/canteen/student/{own}/limits").status_code == 200
    r = p.post(f"/canteen/student/{own}/limits", {"allergens": "Milk, nuts", "cap": "800"})
    assert r.status_code == 303
    bad = p.post(f"/canteen/student/{own}/limits", {"allergens": "milk", "cap": "-5"})
    assert bad.status_code == 422
    assert p.get(f"/canteen/student/{other}/limits").status_code == 404
    assert (
        p.post(f"/canteen/student/{other}/limits", {"allergens": "milk", "cap": ""}).status_code
        == 404
    )
    sent = [c for c in changes(db, "S1") if isinstance(c, ParentLimitsSet)]
    assert sent == [
        ParentLimitsSet(
            student_id="s1-3a-1", allergen_blocks=["milk", "nuts"], daily_cap_tiyn=80_000
        )
    ]
    assert (
        make_browser("canteen1")
        .post(f"/canteen/student/{other}/limits", {"allergens": "", "cap": ""})
        .status_code
        == 303
    )
    assert p.get("/canteen/reconcile").status_code == 403


def test_parent_picks_allergens_by_name_in_their_language(
    world: World, db: Session, make_browser: Any
) -> None:
    """The form listed codes ("milk, nuts, gluten") in English on a Kazakh page."""
    own = world.students["s1-3a-1"]
    p = make_browser("parent1")
    p.post("/lang", {"lang": "kk", "next": "/"})
    page = p.get(f"/canteen/student/{own}/limits").text
    assert 'name="allergen" value="milk"> сүт' in page and "жұмыртқа" in page
    r = p.post(
        f"/canteen/student/{own}/limits",
        {"allergen": ["milk", "eggs", "nonsense"], "allergens": "kurt", "cap": ""},
    )
    assert r.status_code == 303
    sent = [c for c in changes(db, "S1") if isinstance(c, ParentLimitsSet)]
    assert sent[-1].allergen_blocks == ["eggs", "kurt", "milk"]  # an unknown box is dropped
    page = p.get(f"/canteen/student/{own}/limits").text
    assert 'value="milk" checked' in page and 'value="eggs" checked' in page
    assert 'value="nuts" checked' not in page and 'value="kurt"' in page  # the school's own code


# ------------------------------------------------------------------------------ reports


def test_reports_and_xlsx(
    world: World,
    db: Session,
    cs: CanteenSettings,
    make_browser: Any,
    provider: PaymentProviderSimulator,
) -> None:
    from openpyxl import load_workbook

    provider.pay("s1-7b-1", 100_000)
    dev = add_device(db, "S1")
    add_meal(db, dev, 1, "s1-7b-1", 30_000, 70_000)
    add_meal(db, dev, 2, "s1-3a-1", 0, None, meal="free")
    add_meal(db, dev, 3, "s1-3a-2", 0, None, meal="free")
    db.commit()
    service.post_meals(db, cs)
    db.commit()
    b = make_browser("canteen1")
    r = b.get("/canteen/reports?school=S1")
    assert r.status_code == 200
    assert 'id="total-free">2<' in r.text and 'id="total-paid">1<' in r.text
    x = b.get("/canteen/reports?school=S1&format=xlsx")
    assert x.status_code == 200
    ws = load_workbook(io.BytesIO(x.content))["meals"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[-1][1:4] == (2, 1, 0) and rows[-1][7] == 300.0
    assert b.get("/canteen/reports?school=S1&start=2026-13-01").status_code == 422
    assert make_browser("admin3").get("/canteen/reports?school=S1").status_code == 404
    assert b.get("/canteen/reconcile?school=S1").status_code == 200
    assert b.get("/canteen?school=S1").status_code == 200


def test_json_callback_body_is_checked_before_anything(
    world: World, provider: PaymentProviderSimulator
) -> None:
    body = json.dumps({"txid": "x y", "student_ref": "s1-3a-1", "amount_tiyn": 5}).encode()
    r = provider.client.post(
        CALLBACK_PATH, content=body, headers={"x-qaqpa-signature": provider.sign(body)}
    )
    assert r.status_code == 400 and r.json()["error"] == "bad_txid"


@pytest.mark.parametrize(
    ("login", "status"),
    [
        ("operator", 200),
        ("regional", 200),
        ("admin1", 200),
        ("canteen1", 200),
        ("social1", 200),
        ("duty1", 403),
        ("teacher1", 403),
        ("parent1", 403),
    ],
)
def test_who_sees_the_canteen(world: World, make_browser: Any, login: str, status: int) -> None:
    b = make_browser(login)
    for url in ("/canteen", "/canteen/reconcile", "/canteen/reports", "/canteen/wallet"):
        assert b.get(url).status_code == status, (login, url)
    if status == 200:
        assert b.get("/canteen?school=S3").status_code == (200 if login == "operator" else 404)


def test_parent_sees_own_child_ledger_only(
    world: World, db: Session, make_browser: Any, provider: PaymentProviderSimulator
) -> None:
    own, other = world.students["s1-3a-1"], world.students["s1-3a-2"]
    provider.pay("s1-3a-1", 123_450)
    add_meal(db, add_device(db, "S1"), 1, "s1-3a-1", 1_000, 122_450)  # refundable: 10 ₸
    db.commit()
    canteen = make_browser("canteen1")
    assert canteen.get(f"/canteen/student/{own}").status_code == 200
    assert canteen.post("/canteen/post-meals", {"school": "S1"}).status_code == 303
    assert (
        canteen.post(
            f"/canteen/student/{own}/book",
            {"kind": "refund", "amount": "10", "reason": "cold soup, staff note"},
        ).status_code
        == 303
    )
    p = make_browser("parent1")
    page = p.get(f"/canteen/student/{own}")
    assert page.status_code == 200
    assert "1\u00a0234,50\u00a0₸" in page.text  # 1 234,50 - 10 (meal) + 10 (refund)
    assert "staff note" not in page.text  # the manager's reason is staff-only
    assert '/book"' not in page.text  # no refund / correction form for a parent
    assert p.get(f"/canteen/student/{other}").status_code == 404
    assert (
        p.post(
            f"/canteen/student/{own}/book", {"kind": "refund", "amount": "1", "reason": "x"}
        ).status_code
        == 403
    )
    home = p.get("/canteen/parent")
    assert home.status_code == 200 and "s1-3a-1" in home.text and "s1-3a-2" not in home.text
    viewed = db.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.student_pk == own, AuditEntry.action == "canteen.view")
    )
    assert viewed and viewed >= 2


def test_parent_tops_up_through_the_payment_page(
    world: World, db: Session, app: Any, make_browser: Any
) -> None:
    import httpx

    from simulators.payment_provider import PaymentPage

    own = world.students["s1-3a-1"]
    sim = PaymentProviderSimulator(CALLBACK_PATH, SECRET, client=make_browser().client)
    with PaymentPage(sim) as page:
        install_canteen(app, canteen_settings(provider_checkout_url=page.url))
        p = make_browser("parent1")
        assert 'action="/canteen/student/' in p.get("/canteen/parent").text
        bad = p.post(f"/canteen/student/{own}/topup", {"amount": "-5"})
        assert bad.status_code == 422 and 'id="error"' in bad.text
        assert (
            p.post(
                f"/canteen/student/{world.students['s1-3a-2']}/topup", {"amount": "5000"}
            ).status_code
            == 404
        )
        go = p.post(f"/canteen/student/{own}/topup", {"amount": "5 000"})
        assert go.status_code == 303 and go.headers["location"].startswith(page.url + "/pay?")
        with httpx.Client() as parent_browser:
            shown = parent_browser.get(go.headers["location"])
            assert shown.status_code == 200 and "Pay 5000.00 KZT for s1-3a-1" in shown.text
            fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', shown.text))
            paid = parent_browser.post(
                page.url + "/pay", data={k: html.unescape(v) for k, v in fields.items()}
            )
        assert paid.status_code == 303 and paid.headers["location"].endswith(
            "/canteen/parent?paid=1"
        )
    assert ledger_balance(db, own) == 500_000
    assert [c.amount_tiyn for c in changes(db, "S1") if isinstance(c, BalanceCredit)] == [500_000]


def test_pages_only_read_and_a_post_posts_waiting_meals(
    world: World,
    db: Session,
    cs: CanteenSettings,
    make_browser: Any,
    provider: PaymentProviderSimulator,
) -> None:
    """A GET changes nothing (the poster service books meals in the background); the page
    shows how many meals wait, and its POST form books them now."""
    provider.pay("s1-7b-1", 100_000)
    dev = add_device(db, "S1")
    add_meal(db, dev, 1, "s1-7b-1", 30_000, 70_000)
    db.commit()
    b = make_browser("canteen1")
    page = b.get("/canteen/reconcile?school=S1")
    assert page.status_code == 200 and 'id="post-meals"' in page.text
    assert ledger_balance(db, world.students["s1-7b-1"]) == 100_000  # a GET wrote nothing
    r = b.post("/canteen/post-meals", {"school": "S1", "back": "/canteen/reconcile"})
    assert r.status_code == 303 and r.headers["location"] == "/canteen/reconcile?school=S1"
    db.expire_all()
    assert ledger_balance(db, world.students["s1-7b-1"]) == 70_000
    page = b.get("/canteen/reconcile?school=S1")
    assert 'class="badge ok" id="unexplained"' in page.text and 'id="post-meals"' not in page.text
    assert (
        db.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "meal"))
        == 1
    )
    # Another school's canteen manager cannot post S1's meals (404), an unknown page is not
    # a redirect target.
    assert make_browser("admin3").post("/canteen/post-meals", {"school": "S1"}).status_code == 404
    r = b.post("/canteen/post-meals", {"school": "S1", "back": "//evil.example/x"})
    assert r.headers["location"] == "/canteen?school=S1"


@pytest.mark.parametrize(
    "fields",
    [
        {"amount_tiyn": float("nan")},
        {"amount_tiyn": float("inf")},
        {"amount_tiyn": 10**30},
        {"paid_at_ms": 10**30},
        {"paid_at_ms": float("nan")},
        {"paid_at_ms": -1},
    ],
)
def test_signed_callback_with_absurd_numbers_is_refused_not_500(
    world: World, db: Session, provider: PaymentProviderSimulator, fields: dict[str, Any]
) -> None:
    """NaN, infinities and numbers beyond any column in a (signed) JSON body: a 4xx."""
    doc = {"txid": "t-absurd", "student_ref": "s1-3a-1", "amount_tiyn": 1000, "paid_at_ms": 1}
    body = json.dumps(doc | fields).encode()  # Python writes NaN / Infinity as JSON does not
    r = provider.client.post(
        CALLBACK_PATH, content=body, headers={"x-qaqpa-signature": provider.sign(body)}
    )
    assert 400 <= r.status_code < 500, r.text
    assert db.scalar(select(func.count()).select_from(LedgerEntry)) == 0
