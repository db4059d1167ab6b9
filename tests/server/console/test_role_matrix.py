"""The role x page / endpoint matrix: every console route registered on the app, for every role
of the ``world`` fixture, on targets inside and outside the role's scope (S1, S2, S3; the class
teacher's own class 3A and other class 7B; the parent's own child and others).

Each route must be classified in ``ROUTES`` (path -> permission, target kind): a route missing
from the table fails the test, so a new page or endpoint cannot slip in without its access rule.
The expected status is computed from ``access.PERMISSIONS`` and the scope rules
(``Principal.can`` / ``schools``): 403 without the permission anywhere, 404 for a target out of
scope, 200 (303 after a write) inside it. A refused POST must leave the database unchanged.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

import server.schema  # noqa: F401  (every table, for the fingerprint)
from server.accounts.access import PERMISSIONS, SCOPE_OF_ROLE, Principal
from server.accounts.service import load_principal
from server.cards.models import Card
from server.clock import now_ms
from server.consents.models import StudentCategory
from server.console.web import SESSION_COOKIE
from server.equipment import service as equipment
from server.models import Base, Device
from server.people.models import Consent, Guardian, StaffMember, Student, StudentGuardian
from tests.support.badges import badge_targets
from tests.support.console import Browser, World

# ------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Rule:
    """How a route is guarded.

    perm: the permission(s); the first is the one the route ``require``s (gate "require"), the
        others also open it for their holders in scope (e.g. a parent on their child's page).
    kind: the target the route acts on:
        public     no sign-in (sign-in page, invitation links, device and provider endpoints)
        session    any signed-in user
        list       a page listing only what the user may see: 200 with the permission, else 403
        student    a student in the path ({pk} / {student_pk})
        card       a card of that student ({card_pk}); membership ({membership_pk}) and
        membership guardian ({gpk} / {guardian_pk}) likewise
        guardian
        school     a school (path, or "{school}" in the form), the whole school: who.can(perm, school)
        staff      a staff member ({pk}) or their card ({card_pk}): who.can(perm, their school)
        staff_card
        school_any a school the user sees at least in part: school in who.schools(perm)
        region     a region: the operator or that region's regional operator
        loan       an equipment loan ({pk}) of a school: who.can(perm, its school)
        opaque     a token-bound action: 403 without the permission, never a server error
    gate: "require" (403 without perm[0] anywhere) or "session" (any user; out of scope is 404).
    form / files / query: what a write sends ("{school}", "{today}"... are filled per target).
    skip: why the matrix does not call it (e.g. sign-out would end the walk); still classified.
    """

    perm: tuple[str, ...]
    kind: str
    gate: str = "require"
    form: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    skip: str = ""
    last: bool = False  # an allowed write that removes a target: run after the others
    refusal: int = 404  # the status of an out-of-scope target (the accounts module says 403)


def R(perm: str | tuple[str, ...] | None, kind: str, **kw: Any) -> Rule:
    perms = () if perm is None else (perm,) if isinstance(perm, str) else perm
    return Rule(perms, kind, **kw)


CSV = ("roster.csv", b"surname,given_name,class,grade,shift\nA,B,3A,3,1\n", "text/csv")
EQUIPMENT_CSV = (
    "coverage.csv",
    b"district,schools,students,with_computer,without_computer,needy_students,"
    b"needy_families,uncovered_students,uncovered_families\nMatrix,1,10,5,5,1,1,1,1\n",
    "text/csv",
)
SCAN = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # a signed act's scan, as a phone makes it
POLICY_FORM = {
    "valid_from": "{today}",
    "timezone": "Asia/Almaty",
    "free_meal_grades": ["1", "2", "3", "4"],
    "anti_passback": "soft",
    "shift1_entry_from": "07:00",
    "shift1_entry_to": "13:00",
}

ROUTES: dict[tuple[str, str], Rule] = {
    # accounts
    ("GET", "/login"): R(None, "public", skip="the sign-in page"),
    ("POST", "/login"): R(None, "public", skip="signing in"),
    ("POST", "/logout"): R(None, "session", skip="would end the walk"),
    ("GET", "/invite/{token}"): R(None, "public", skip="an invitation link"),
    ("POST", "/invite/{token}"): R(None, "public", skip="an invitation link"),
    ("GET", "/account/password"): R(None, "session"),
    ("POST", "/account/password"): R(None, "session", skip="would change the password"),
    ("POST", "/lang"): R(None, "public", skip="the language choice"),
    ("GET", "/"): R(None, "session"),
    ("GET", "/users"): R("users.manage", "list"),
    ("POST", "/users"): R(
        "users.manage",
        "school",
        refusal=403,
        form={
            "login": "matrix-{school}",
            "full_name": "M",
            "role": "duty_deputy",
            "school_id": "{school}",
        },
    ),
    ("GET", "/audit"): R("audit.view", "list"),
    # devices and payment providers authenticate otherwise (tokens, signatures)
    ("POST", "/api/v1/enrol"): R(None, "public", skip="device enrolment (one-time token)"),
    ("GET", "/healthz"): R(None, "public", skip="readiness: which part is down, no data"),
    ("POST", "/canteen/api/payments/callback"): R(None, "public", skip="provider signature"),
    ("GET", "/openapi.json"): R("api.docs", "list"),
    # roster
    ("GET", "/students"): R("students.view", "list"),
    ("GET", "/students/{pk}"): R("students.view", "student"),
    ("POST", "/students/{pk}"): R(
        "students.edit",
        "student",
        form={"surname": "Matrix", "given_name": "Edit", "class_pk": "{class_pk}"},
    ),
    ("POST", "/students/{pk}/active"): R("students.edit", "student", form={"active": "1"}),
    ("POST", "/students/{pk}/guardians"): R(
        "students.edit", "student", form={"full_name": "Guardian M"}
    ),
    ("POST", "/students/{pk}/guardians/{gpk}/invite"): R(
        "students.edit", "guardian", form={"login": "matrix-guardian-{student_pk}"}
    ),
    ("POST", "/students/{pk}/guardians/{gpk}/remove"): R("students.edit", "guardian", last=True),
    ("POST", "/students"): R(
        "students.edit",
        "school",
        form={
            "school": "{school}",
            "surname": "New",
            "given_name": "Student",
            "class_name": "3A",
            "birth_date": "2016-01-01",
        },
    ),
    ("GET", "/students/new/{school}"): R("students.edit", "school"),
    ("GET", "/classes"): R("students.view", "list"),
    ("POST", "/classes"): R(
        "students.edit",
        "school",
        form={"school": "{school}", "name": "9Z", "grade": "9", "shift": "1"},
    ),
    ("GET", "/staff"): R("staff.edit", "list"),
    ("POST", "/staff"): R(
        "staff.edit",
        "school",
        form={"school": "{school}", "ref": "matrix-staff", "full_name": "Staff M"},
    ),
    ("GET", "/roster/import"): R("roster.import", "list"),
    ("GET", "/roster/import/template.csv"): R("roster.import", "list"),
    ("GET", "/roster/import/template.xlsx"): R("roster.import", "list"),
    ("POST", "/roster/import"): R(
        "roster.import", "school", form={"school": "{school}"}, files={"file": CSV}
    ),
    ("GET", "/roster/export"): R("roster.import", "school", query={"school": "{school}"}),
    ("POST", "/roster/import/confirm"): R(
        "roster.import", "opaque", form={"token": "not-a-preview", "sha256": "0" * 64}
    ),
    # consents, categories (this module)
    ("GET", "/consents"): R("consents.edit", "list"),
    ("GET", "/students/{pk}/consents"): R("consents.edit", "student"),
    ("POST", "/students/{pk}/consents"): R(
        "consents.edit",
        "student",
        form={
            "kind": "notifications",
            "decision": "given",
            "given_by": "Parent M",
            "document": "Matrix 1",
            "signed_on": "2025-09-01",
        },
    ),
    ("GET", "/students/{pk}/categories"): R("categories.view", "student"),
    ("POST", "/students/{pk}/categories"): R(
        "categories.edit",
        "student",
        form={
            "code": "orphan",
            "document": "Matrix 2",
            "valid_from": "2025-09-01",
            "valid_to": "2026-05-31",
        },
    ),
    ("POST", "/students/{pk}/categories/{membership_pk}/remove"): R(
        "categories.edit", "membership", last=True
    ),
    ("GET", "/categories"): R("categories.view", "list"),
    # cards
    ("GET", "/students/{pk}/cards"): R("cards.block", "student"),
    ("POST", "/students/{pk}/cards"): R(
        "cards.issue", "student", form={"credential": "EM:99{student_pk}"}
    ),
    ("POST", "/students/{pk}/cards/{card_pk}/block"): R(
        "cards.block", "card", form={"reason": "lost"}
    ),
    ("POST", "/students/{pk}/cards/{card_pk}/replace"): R(
        "cards.issue", "card", form={"reason": "damaged", "credential": "EM:98{student_pk}"}
    ),
    ("POST", "/students/{pk}/cards/{card_pk}/unbind"): R("cards.issue", "card", last=True),
    ("GET", "/staff/{pk}/cards"): R("staff.edit", "staff"),
    ("POST", "/staff/{pk}/cards"): R("staff.edit", "staff", form={"credential": "EM:97{pk}"}),
    ("POST", "/staff/{pk}/cards/{card_pk}/block"): R(
        "staff.edit", "staff_card", form={"reason": "lost"}
    ),
    ("POST", "/staff/{pk}/cards/{card_pk}/unbind"): R("staff.edit", "staff_card", last=True),
    ("GET", "/staff/{pk}/pin"): R("staff.edit", "staff"),
    ("POST", "/staff/{pk}/pin"): R(
        "staff.edit",
        "staff",
        form={"pin": "4821", "pin_again": "4821"},
        skip="needs an edge that announced its box key: tests/server/staffpins",
    ),
    ("GET", "/cards"): R("cards.block", "list"),
    ("GET", "/cards/fees"): R("cards.issue", "list"),
    # meal policy
    ("GET", "/policy"): R("policy.view", "list"),
    ("GET", "/policy/school/{school_id}"): R("policy.view", "school_any"),
    ("POST", "/policy/school/{school_id}"): R("policy.edit", "school", form=POLICY_FORM),
    ("GET", "/policy/region/{region_id}"): R("policy.view", "region"),
    ("POST", "/policy/region/{region_id}"): R("policy.edit", "region", form=POLICY_FORM),
    # reports
    ("GET", "/reports/attendance"): R("reports.attendance", "list"),
    ("GET", "/reports/attendance/month"): R("reports.attendance", "list"),
    ("GET", "/reports/meals"): R("reports.meals", "list"),
    ("GET", "/reports/meals/statement"): R("reports.meals", "list"),
    ("GET", "/reports/schools"): R("reports.meals", "list"),
    ("GET", "/reports/library"): R("reports.library", "list"),
    ("GET", "/reports/evacuation"): R("reports.evacuation", "list"),
    ("GET", "/status"): R("status.view", "list"),
    ("GET", "/refused"): R("status.view", "list"),
    ("GET", "/status/fragment"): R("status.view", "list"),
    # notifications
    ("GET", "/notifications"): R("notifications.view", "list"),
    ("GET", "/notifications/rows"): R("notifications.view", "list"),
    ("GET", "/notifications/student/{student_pk}"): R("notifications.view", "student"),
    ("POST", "/notifications/student/{student_pk}/guardian/{guardian_pk}"): R(
        "notifications.view", "guardian"
    ),
    # parent
    ("GET", "/parent"): R("parent.view", "list"),
    ("GET", "/parent/child/{student_pk}"): R("parent.view", "student"),
    ("POST", "/parent/child/{student_pk}/guardian/{guardian_pk}"): R("parent.view", "guardian"),
    # canteen
    ("GET", "/canteen"): R("canteen.view", "list"),
    ("GET", "/canteen/parent"): R("parent.view", "list"),
    ("GET", "/canteen/student/{pk}"): R(("canteen.view", "parent.view"), "student", gate="session"),
    ("POST", "/canteen/student/{pk}/book"): R(
        "canteen.manage", "student", form={"kind": "correction", "amount": "1", "note": "matrix"}
    ),
    ("POST", "/canteen/student/{pk}/topup"): R("parent.view", "student", form={"amount": "1000"}),
    ("GET", "/canteen/student/{pk}/limits"): R(
        ("canteen.manage", "parent.view"), "student", gate="session"
    ),
    ("POST", "/canteen/student/{pk}/limits"): R(
        ("canteen.manage", "parent.view"), "student", gate="session"
    ),
    ("GET", "/canteen/menu"): R("canteen.manage", "list"),
    ("POST", "/canteen/menu"): R("canteen.manage", "school", form={"school": "{school}"}),
    ("GET", "/canteen/reconcile"): R("canteen.view", "list"),
    # edge devices: revoke, and a replacement's enrolment token
    ("GET", "/devices"): R("devices.revoke", "list"),
    ("GET", "/schools/{school}/devices"): R("devices.revoke", "school"),
    ("POST", "/schools/{school}/devices/revoke"): R(
        "devices.revoke", "school", form={"device": "edge1", "reason": "matrix", "confirm": "yes"}
    ),
    ("POST", "/schools/{school}/devices/token"): R(
        "devices.enrol", "school", form={"device": "edge1"}
    ),
    ("POST", "/canteen/post-meals"): R("canteen.view", "school", form={"school": "{school}"}),
    ("GET", "/canteen/reports"): R("canteen.view", "list"),
    ("GET", "/canteen/wallet"): R("canteen.view", "list"),
    ("POST", "/canteen/wallet/fund"): R("canteen.manage", "school", form={"school": "{school}"}),
    ("GET", "/canteen/voucher/qr/{pk}"): R(
        ("canteen.manage", "parent.view"), "student", gate="session"
    ),
    ("GET", "/canteen/voucher/redeem"): R("canteen.manage", "list"),
    # card price and fees
    ("GET", "/cardfees"): R("cardfee.manage", "list"),
    ("POST", "/schools/{school}/cardfees/price"): R(
        "cardfee.manage", "school", form={"price": "120"}
    ),
    ("POST", "/schools/{school}/cardfees/paid"): R(
        "cardfee.manage", "school", form={"card": "999999", "paid_by": "cash"}
    ),
    # board of trustees' report, parents' concerns
    ("GET", "/trustees"): R("trustees.view", "list"),
    ("GET", "/concerns"): R("concerns.edit", "list"),
    ("POST", "/schools/{school}/concerns"): R(
        "concerns.edit",
        "school",
        form={"raised_on": "{today}", "topic": "biometrics", "text": "Matrix concern"},
    ),
    ("POST", "/schools/{school}/concerns/answer"): R(
        "concerns.edit", "school", form={"concern": "999999", "answer": "Matrix answer"}
    ),
    # duty roster
    ("GET", "/duty"): R("duty.view", "list"),
    ("POST", "/schools/{school}/duty"): R(
        "duty.plan", "school", form={"day": "{today}", "shift": "1", "user": ""}
    ),
    # social-wallet vouchers (issue 13, part 4)
    ("GET", "/vouchers"): R("canteen.view", "list"),
    ("POST", "/vouchers/collect"): R("canteen.view", "school", form={"school": "{school}"}),
    ("GET", "/vouchers/student/{pk}"): R(
        ("vouchers.issue", "canteen.view", "parent.view"), "student", gate="session"
    ),
    ("POST", "/vouchers/student/{pk}/issue"): R(
        "vouchers.issue",
        "student",
        form={
            "issuer": "social-wallet",
            "amount": "600",
            "valid_from": "{today}",
            "valid_to": "{today}",
            "periods": "lunch",
        },
    ),
    ("POST", "/canteen/voucher/redeem"): R(
        "canteen.manage", "opaque", form={"token": "not-a-token"}
    ),
    # gifted-children registry
    ("GET", "/gifted"): R("gifted.view", "list"),
    ("POST", "/gifted/schools/{school}/locality"): R(
        "gifted.edit", "school", form={"locality": "rural"}
    ),
    ("GET", "/gifted/nominations"): R("gifted.nominate", "list"),
    ("GET", "/gifted/student/{pk}/nominate"): R("gifted.nominate", "student"),
    ("POST", "/gifted/student/{pk}/nominate"): R(
        "gifted.nominate",
        "student",
        form={"basis": "teacher", "subject": "Matrix", "nominated_on": "{today}"},
    ),
    ("GET", "/gifted/student/{pk}"): R("gifted.view", "student"),
    ("POST", "/gifted/student/{pk}/enter"): R("gifted.edit", "student"),
    ("POST", "/gifted/student/{pk}/roadmap"): R(
        "gifted.edit", "student", form={"abilities": "Matrix", "goals": "Matrix"}
    ),
    ("POST", "/gifted/student/{pk}/activities"): R(
        "gifted.edit",
        "student",
        form={"kind": "camp", "title": "Matrix camp", "planned_from": "{today}"},
    ),
    ("POST", "/gifted/student/{pk}/activities/result"): R(
        "gifted.edit", "student", form={"item": "1", "status": "done", "done_on": "{today}"}
    ),
    ("POST", "/gifted/student/{pk}/support"): R(
        "gifted.edit",
        "student",
        form={"kind": "trip", "title": "Matrix trip", "planned_on": "{today}", "amount": "100"},
    ),
    ("POST", "/gifted/student/{pk}/support/paid"): R(
        "gifted.edit", "student", form={"item": "1", "paid_on": "{today}", "amount": "100"}
    ),
    ("GET", "/gifted/reminders"): R("gifted.view", "list"),
    ("GET", "/gifted/statistics"): R("gifted.report", "list"),
    ("GET", "/gifted/teachers"): R("gifted.report", "list"),
    # badges (the Elbasy Medal): the badge roles' own scopes are tested in tests/server/badges
    ("GET", "/badges/apply"): R(None, "public", skip="the public application form"),
    ("POST", "/badges/apply"): R(None, "public", skip="the public application form"),
    ("GET", "/badges/sw.js"): R(None, "public", skip="the journal's service worker"),
    ("GET", "/badges/verify/{credential_id}"): R(None, "public", skip="public verification"),
    ("GET", "/badges/credentials/{credential_id}/credential.json"): R(
        None, "public", skip="public verification"
    ),
    ("GET", "/badges/credentials/{credential_id}/certificate.pdf"): R(
        None, "public", skip="public verification"
    ),
    ("GET", "/badges/status-list"): R(None, "public", skip="the public revocation list"),
    ("GET", "/badges/me"): R("badges.participate", "list"),
    ("POST", "/badges/me/agreement"): R("badges.participate", "list", form={"accept": "yes"}),
    ("POST", "/badges/me/schedule/{schedule_pk}"): R("badges.participate", "badge"),
    ("POST", "/badges/me/rate"): R("badges.participate", "list", form={"score": "5"}),
    ("GET", "/badges/me/journal"): R("badges.participate", "list"),
    ("POST", "/badges/me/entries/{entry_pk}/media"): R(
        "badges.participate", "badge", files={"file": ("p.png", b"not an image", "image/png")}
    ),
    ("GET", "/badges/media/{media_pk}"): R("badges.view", "badge"),
    ("GET", "/badges/api/entries"): R("badges.participate", "list"),
    ("POST", "/badges/api/entries"): R("badges.participate", "list"),
    ("GET", "/badges"): R("badges.view", "list"),
    ("GET", "/badges/participants/{pk}"): R("badges.view", "badge"),
    ("POST", "/badges/participants/{pk}/schedule"): R(
        "badges.decide", "badge", form={"direction": "sport", "plan": "matrix"}
    ),
    ("POST", "/badges/participants/{pk}/activate"): R("badges.decide", "badge"),
    ("POST", "/badges/entries/{entry_pk}/decide"): R(
        "badges.decide", "badge", form={"action": "confirm"}
    ),
    ("POST", "/badges/entries/{entry_pk}/overturn"): R(
        "badges.review", "badge", form={"status": "rejected", "note": "matrix"}
    ),
    ("POST", "/badges/participants/{pk}/reassign"): R(
        "badges.review", "badge", form={"to": "1", "reason": "matrix"}
    ),
    ("POST", "/badges/staff/{staff_pk}/absent"): R("badges.review", "badge", form={"absent": "no"}),
    ("POST", "/badges/participants/{pk}/requirements"): R(
        "badges.manage", "badge", form={"requirements": "{}", "basis": "matrix"}
    ),
    ("POST", "/badges/participants/{pk}/propose"): R("badges.centre", "badge"),
    ("GET", "/badges/applications"): R("badges.centre", "list"),
    ("POST", "/badges/applications/{application_pk}/decide"): R(
        "badges.centre", "badge", form={"decision": "reject", "reason": "matrix"}
    ),
    ("POST", "/badges/centres"): R("badges.manage", "list", form={"name": "C", "region_id": "R1"}),
    ("POST", "/badges/centres/{centre_pk}/approve"): R("badges.manage", "badge"),
    ("POST", "/badges/centres/{centre_pk}/sign"): R("badges.centre", "badge"),
    ("POST", "/badges/books"): R("badges.manage", "list", form={"section": "world"}),
    ("POST", "/badges/partners"): R(
        "badges.centre", "badge", form={"centre_pk": "{centre_pk}", "kind": "trip"}
    ),
    ("POST", "/badges/staff"): R(
        "badges.centre", "badge", form={"centre_pk": "{centre_pk}", "kind": "nobody"}
    ),
    ("GET", "/badges/awards"): R("badges.manage", "list"),
    ("POST", "/badges/proposals/{proposal_pk}/commission"): R(
        "badges.manage", "badge", form={"members": "operator", "interview_at": "2026-12-10 10:00"}
    ),
    # a commission member votes (the matrix's operator is one; anyone else: 404)
    ("POST", "/badges/proposals/{proposal_pk}/vote"): R(
        "badges.manage", "badge", gate="session", form={"vote": "for"}
    ),
    ("POST", "/badges/proposals/{proposal_pk}/decide"): R("badges.manage", "badge"),
    ("POST", "/badges/credentials/{credential_id}/revoke"): R(
        "badges.manage", "badge", form={"reason": "matrix"}, last=True
    ),
    # equipment (seed 000): coverage, campaigns, lists and approvals, inventory, lending
    ("GET", "/equipment"): R("equipment.view", "list"),
    ("GET", "/equipment/coverage.xlsx"): R("equipment.view", "list"),
    ("GET", "/equipment/coverage.pdf"): R("equipment.view", "list"),
    ("GET", "/equipment/coverage.json"): R("equipment.view", "list"),
    ("POST", "/equipment/region/{region_id}/import"): R(
        "equipment.import",
        "region",
        form={"period": "2020"},
        files={"file": EQUIPMENT_CSV},
    ),
    ("GET", "/equipment/campaign"): R("equipment.view", "list"),
    ("POST", "/equipment/region/{region_id}/campaigns"): R(
        "equipment.campaign",
        "region",
        form={
            "name": "Matrix campaign",
            "period": "2026",
            "goal": "1000",
            "unit_price": "100",
            "starts_on": "2026-01-01",
            "deadline": "2026-08-20",
        },
    ),
    ("POST", "/equipment/region/{region_id}/sponsors"): R(
        "equipment.campaign", "region", form={"campaign": "999999", "name": "Sponsor M"}
    ),
    ("POST", "/equipment/region/{region_id}/contracts"): R(
        "equipment.campaign", "region", form={"campaign": "999999"}
    ),
    ("POST", "/equipment/region/{region_id}/approve-district"): R(
        "equipment.approve_district", "region", form={"list_pk": "999999"}
    ),
    ("POST", "/equipment/region/{region_id}/approve-region"): R(
        "equipment.approve_region", "region", form={"list_pk": "999999"}
    ),
    ("GET", "/equipment/school/{school_id}"): R("equipment.view", "school"),
    ("POST", "/equipment/school/{school_id}/answers"): R(
        "equipment.propose", "school", form={"campaign": "999999", "student": "1"}
    ),
    ("POST", "/equipment/school/{school_id}/list"): R(
        "equipment.propose", "school", form={"campaign": "999999"}
    ),
    ("GET", "/equipment/school/{school_id}/inventory"): R("equipment.view", "school"),
    ("POST", "/equipment/school/{school_id}/delivery"): R(
        "equipment.accept",
        "school",
        form={"contract": "999999", "delivered_on": "{today}", "devices": "I | S | ram_gb=8"},
    ),
    ("POST", "/equipment/school/{school_id}/items"): R(
        "equipment.accept",
        "school",
        form={"kind": "book", "inventory_no": "MATRIX-1", "title": "Matrix"},
    ),
    ("GET", "/equipment/school/{school_id}/labels"): R("equipment.view", "school"),
    ("GET", "/equipment/school/{school_id}/stocktake"): R("equipment.view", "school"),
    ("POST", "/equipment/school/{school_id}/stocktake"): R(
        "equipment.lend", "school", form={"code": "MATRIX-1"}
    ),
    ("GET", "/equipment/school/{school_id}/desk"): R("equipment.lend", "school"),
    ("POST", "/equipment/school/{school_id}/lend"): R(
        "equipment.lend", "school", form={"inventory_no": "MATRIX-1", "action": "return"}
    ),
    ("POST", "/equipment/school/{school_id}/bulk"): R(
        "equipment.lend", "school", form={"action": "return_class", "class_pk": "999999"}
    ),
    ("GET", "/equipment/campaign/final.xlsx"): R("equipment.view", "list"),
    ("GET", "/equipment/campaign/final.pdf"): R("equipment.view", "list"),
    ("GET", "/equipment/loan/{pk}/act"): R("equipment.lend", "loan"),
    ("GET", "/equipment/loan/{pk}/act.pdf"): R("equipment.lend", "loan"),
    ("GET", "/equipment/loan/{pk}/act/scan"): R("equipment.lend", "loan"),
    ("POST", "/equipment/loan/{pk}/act"): R(
        "equipment.lend", "loan", files={"file": ("act.png", SCAN, "image/png")}
    ),
    ("GET", "/equipment/student/{pk}"): R(
        ("equipment.view", "parent.view"), "student", gate="session"
    ),
    ("GET", "/equipment/parent"): R("parent.view", "list"),
    ("POST", "/equipment/parent/{pk}/survey"): R(
        "parent.view", "student", form={"campaign": "999999", "agree": "1"}
    ),
    # tutoring: pages of a project (the first visible one without ?project=); writes act on
    # ids or codes (opaque: a refusal or a 404, never a crash); the survey link is public
    ("GET", "/tutoring"): R("tutoring.view", "list"),
    ("GET", "/tutoring/growth"): R("tutoring.view", "list"),
    ("GET", "/tutoring/volunteers"): R("tutoring.view", "list"),
    ("GET", "/tutoring/groups"): R("tutoring.view", "list"),
    ("GET", "/tutoring/ranking"): R("tutoring.view", "list"),
    ("GET", "/tutoring/indicators"): R("tutoring.view", "list"),
    ("GET", "/tutoring/protocol"): R("tutoring.view", "opaque"),
    ("POST", "/tutoring/groups/place"): R("tutoring.manage", "opaque", form={"project": "no-such"}),
    ("GET", "/tutoring/journal"): R("tutoring.journal", "list"),
    ("POST", "/tutoring/journal/session"): R(
        "tutoring.journal", "opaque", form={"group": "1", "held_on": "{today}"}
    ),
    ("POST", "/tutoring/journal/attendance"): R(
        "tutoring.journal", "opaque", form={"session": "1"}
    ),
    ("GET", "/tutoring/council"): R("tutoring.council", "list"),
    ("POST", "/tutoring/council/score"): R("tutoring.council", "opaque", form={"volunteer": "1"}),
    ("POST", "/tutoring/council/conflict"): R(
        "tutoring.council", "opaque", form={"volunteer": "1", "reason": "matrix"}
    ),
    ("POST", "/tutoring/ranking/decide"): R(
        "tutoring.manage", "opaque", form={"project": "no-such", "places": "1"}
    ),
    ("POST", "/tutoring/awards/decide"): R(
        "tutoring.manage", "opaque", form={"project": "no-such", "places": "1"}
    ),
    ("GET", "/tutoring/survey"): R("tutoring.manage", "list"),
    ("POST", "/tutoring/survey/links"): R(
        "tutoring.manage",
        "opaque",
        form={"project": "no-such", "district": "D", "school": "S", "grade": "9"},
    ),
    ("GET", "/tutoring/s/{token}"): R(None, "public", skip="a one-time survey link"),
    ("POST", "/tutoring/s/{token}"): R(None, "public", skip="a one-time survey link"),
}

STUDENT_KINDS = {"student", "card", "membership", "guardian"}
# badge module records (participant, entry, proposal...): the console roles reach them through
# the operator's grant only; the badge roles' scopes are tested in tests/server/badges
BADGE_KINDS = {"badge"}
ROLES = [
    "operator",
    "regional",
    "admin1",
    "duty1",
    "teacher1",
    "social1",
    "canteen1",
    "parent1",
    "admin3",
    "gifted1",
    "giftedr",
    "librarian1",
    "approver1",
    "coord1",
    "volunteer1",
    "council1",
]
TARGET_STUDENTS = ["s1-3a-1", "s1-7b-1", "s2-3a-1", "s3-3a-1"]
# Tables a signed-in request may touch whatever it does (sessions, sign-in times).
VOLATILE = {"web_sessions", "users"}


# ---------------------------------------------------------------------------- the routes


def console_routes(app: Any) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, path, route) of every route, through included routers."""

    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, APIRoute]]:
        for r in routes:
            if isinstance(r, APIRoute):
                yield prefix + r.path, r
            elif hasattr(r, "original_router"):  # FastAPI's lazily included router
                yield from walk(r.original_router.routes, prefix + (r.include_context.prefix or ""))

    for path, route in walk(app.routes, ""):
        for method in sorted(route.methods - {"HEAD"}):
            yield method, path, route


def test_every_route_is_classified(app) -> None:  # type: ignore[no-untyped-def]
    found = {(m, p) for m, p, _r in console_routes(app)}
    missing = sorted(found - set(ROUTES))
    assert not missing, f"classify these routes in ROUTES (permission, target kind): {missing}"
    gone = sorted(set(ROUTES) - found)
    assert not gone, f"ROUTES names routes the app no longer has: {gone}"


def test_the_table_matches_the_routes_guards(app) -> None:  # type: ignore[no-untyped-def]
    """A route's ``require(perm)`` dependency is the permission the table names first."""
    wrong = []
    for method, path, route in console_routes(app):
        rule = ROUTES.get((method, path))
        if rule is None:
            continue
        for p in rule.perm:
            assert p in PERMISSIONS, f"{method} {path}: unknown permission {p}"
        required = {
            d.call.__name__.removeprefix("require_")
            for d in route.dependant.dependencies
            if getattr(d.call, "__name__", "").startswith("require_")
        }
        if rule.gate == "require" and rule.perm:
            if required != {rule.perm[0].replace(".", "_")}:
                wrong.append((method, path, sorted(required), rule.perm[0]))
        elif required:
            wrong.append((method, path, sorted(required), "no require()"))
    assert not wrong, wrong


# ------------------------------------------------------------------------------- targets


@dataclass
class Target:
    label: str
    values: dict[str, Any]  # path parameter / placeholder -> value
    school: str | None = None
    class_pk: int | None = None
    student_pk: int | None = None
    region: str | None = None


def prepare_targets(db: Session, world: World) -> dict[str, list[Target]]:
    """Give each target student a data consent, an active card, a category and a guardian, so
    that every sub-object route has something real to act on."""
    now = now_ms()
    today = dt.date.today()
    students: list[Target] = []
    cards: list[Target] = []
    members: list[Target] = []
    guardians: list[Target] = []
    for ref in TARGET_STUDENTS:
        st = db.get_one(Student, world.students[ref])
        db.add(
            Consent(
                student_pk=st.pk,
                kind="data",
                granted=True,
                given_by="Parent",
                document="Matrix consent",
                signed_on=today,
                recorded_at_ms=now,
            )
        )
        card = Card(  # a record issued at the school's desk: no number at the centre
            card_ref=f"k-matrix-{st.pk}",
            student_pk=st.pk,
            school_id=st.school_id,
            status="active",
            issued_at_ms=now,
            fee_tiyn=0,
        )
        member = StudentCategory(
            student_pk=st.pk,
            school_id=st.school_id,
            code="large_family",
            document="Matrix certificate",
            valid_from=today,
            valid_to=today,
            recorded_at_ms=now,
        )
        db.add_all([card, member])
        link = db.query(StudentGuardian).filter_by(student_pk=st.pk).first()
        if link is None:
            g = Guardian(full_name=f"Guardian of {ref}", phone="+77010000099")
            db.add(g)
            db.flush()
            link = StudentGuardian(student_pk=st.pk, guardian_pk=g.pk)
            db.add(link)
        db.flush()
        base = {
            "pk": st.pk,
            "student_pk": st.pk,
            "school": st.school_id,
            "school_id": st.school_id,
            "class_pk": st.class_pk,
        }
        where = {"school": st.school_id, "class_pk": st.class_pk, "student_pk": st.pk}
        students.append(Target(ref, base, **where))
        cards.append(Target(f"{ref} card", base | {"card_pk": card.pk}, **where))
        members.append(Target(f"{ref} category", base | {"membership_pk": member.pk}, **where))
        guardians.append(
            Target(
                f"{ref} guardian",
                base | {"gpk": link.guardian_pk, "guardian_pk": link.guardian_pk},
                **where,
            )
        )
    db.commit()
    staff: list[Target] = []
    staff_cards: list[Target] = []
    for school in ("S1", "S3"):
        member = StaffMember(school_id=school, ref=f"matrix-{school}", full_name=f"Staff {school}")
        db.add(member)
        db.flush()
        card = Card(
            card_ref=f"k-matrix-staff-{member.pk}",
            staff_pk=member.pk,
            school_id=school,
            status="active",
            issued_at_ms=now,
            fee_tiyn=0,
        )
        db.add(card)
        db.flush()
        staff.append(Target(member.ref, {"pk": member.pk}, school=school))
        staff_cards.append(
            Target(f"{member.ref} card", {"pk": member.pk, "card_pk": card.pk}, school=school)
        )
    for school in world.schools:
        db.add(Device(school_id=school, device_id="edge1", created_at_ms=now, public_key=b"k" * 32))
    db.commit()
    loans: list[Target] = []  # a book lent in S1 and in S3, with its signed act's scan
    for school in ("S1", "S3"):
        item = equipment.add_item(
            db, None, school, kind="book", inventory_no=f"M-{school}", title="Matrix", now=now
        )
        st = db.get_one(Student, world.students[f"{school.lower()}-3a-2"])
        loan = equipment.lend(db, None, item, st, today=dt.date.today(), now=now)
        equipment.attach_act_scan(db, None, loan, SCAN, now=now)
        loans.append(Target(f"{school} loan", {"pk": loan.pk}, school=school))
    db.commit()
    schools = [Target(s, {"school": s, "school_id": s}, school=s) for s in world.schools]
    regions = [Target(r, {"region_id": r}, region=r) for r in ("R1", "R2")]
    badge = [Target("badge records", badge_targets(db, "R1", world.users["operator"]))]
    db.commit()
    return {
        "student": students,
        "card": cards,
        "membership": members,
        "guardian": guardians,
        "school": schools,
        "school_any": schools,
        "region": regions,
        "staff": staff,
        "staff_card": staff_cards,
        "loan": loans,
        "badge": badge,
    }


def region_allowed(who: Principal, perm: str, region: str) -> bool:
    return any(
        g.role in PERMISSIONS[perm]
        and (
            SCOPE_OF_ROLE[g.role] == "all"
            or (SCOPE_OF_ROLE[g.role] == "region" and g.region_id == region)
        )
        for g in who.grants
    )


def expected(rule: Rule, who: Principal, t: Target | None) -> str:
    """ "ok", "403", "404" or "any" (an opaque action: anything but a refusal or a crash)."""
    if rule.kind == "session":
        return "ok"
    if rule.gate == "require" and not who.can(rule.perm[0]):
        return "403"
    if not any(who.can(p) for p in rule.perm):
        return "404"
    if rule.kind == "list":
        return "ok"
    if rule.kind == "opaque":
        return "any"
    assert t is not None
    if rule.kind in STUDENT_KINDS:
        ok = any(
            who.can(p, school_id=t.school, class_pk=t.class_pk, student_pk=t.student_pk)
            for p in rule.perm
        )
    elif rule.kind in ("school", "staff", "staff_card", "loan"):
        ok = any(who.can(p, school_id=t.school) for p in rule.perm)
    elif rule.kind == "school_any":
        ok = any((s := who.schools(p)) is None or t.school in s for p in rule.perm)
    elif rule.kind in BADGE_KINDS:
        ok = any(who.can(p) for p in rule.perm)
    elif rule.kind == "region":
        assert t.region is not None
        ok = any(region_allowed(who, p, t.region) for p in rule.perm)
    else:
        raise AssertionError(f"unknown target kind {rule.kind}")
    return "ok" if ok else str(rule.refusal)


_PARAM = re.compile(r"{(\w+)}")


def fill(template: str, values: dict[str, Any]) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise AssertionError(f"no value for {{{m.group(1)}}} in {template}: classify its kind")
        return str(values[m.group(1)])

    return _PARAM.sub(one, template)


def form_for(rule: Rule, route: APIRoute, values: dict[str, Any]) -> dict[str, Any]:
    """The rule's form with placeholders filled, plus a plain value for any other required
    field, so the request reaches the route's own scope check instead of a 422."""
    out: dict[str, Any] = {}
    for k, v in rule.form.items():
        out[k] = [fill(x, values) for x in v] if isinstance(v, list) else fill(str(v), values)
    for f in route.dependant.body_params:
        name = f.alias
        if name in out or name in rule.files or not f.field_info.is_required():
            continue
        ann = str(f.field_info.annotation)
        out[name] = "1" if "int" in ann else "x"
    return out


def fingerprint(db: Session) -> dict[str, str]:
    names = [t.name for t in Base.metadata.sorted_tables if t.name not in VOLATILE]
    sql = " UNION ALL ".join(
        f"SELECT '{n}', md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{n}\" t"
        for n in names
    )
    db.rollback()
    rows = db.execute(text(sql)).all()
    db.rollback()
    return {str(a): str(b) for a, b in rows}


def hidden_names(db: Session, who: Principal) -> set[str]:
    """Names of the students no permission of this user reaches: no page may show them."""
    out: set[str] = set()
    for st in db.query(Student).all():
        if not any(
            who.can(p, school_id=st.school_id, class_pk=st.class_pk, student_pk=st.pk)
            for p in PERMISSIONS
        ):
            out |= {f"{st.surname} {st.given_name}", f"{st.given_name} {st.surname}"}
    db.rollback()
    return out


# ---------------------------------------------------------------------------------- walk


@dataclass
class Case:
    method: str
    path: str
    url: str
    rule: Rule
    route: APIRoute
    target: Target | None
    want: str


def cases(app: Any, who: Principal, targets: dict[str, list[Target]], today: str) -> list[Case]:
    out: list[Case] = []
    for method, path, route in console_routes(app):
        rule = ROUTES.get((method, path))
        if rule is None or rule.skip or rule.kind == "public":  # unclassified: the test above
            continue
        kinds = targets.get(rule.kind)
        for t in kinds if kinds is not None else [None]:
            values = {"today": today} | (t.values if t is not None else {})
            url = fill(path, values)
            if rule.query:
                url += "?" + "&".join(f"{k}={fill(v, values)}" for k, v in rule.query.items())
            out.append(Case(method, path, url, rule, route, t, expected(rule, who, t)))
    return out


def check(case: Case, status: int, location: str) -> str | None:
    label = f"{case.method} {case.url} ({case.path}; {case.target.label if case.target else '-'})"
    # 422 / 503: the page answered but a service is not configured here (e.g. the social wallet)
    if status >= 500 and status != 503:
        return f"{label}: server error {status}"
    if case.want == "403" and status != 403:
        return f"{label}: expected 403, got {status}"
    if case.want == "404" and status != 404:
        return f"{label}: expected 404, got {status}"
    if case.want in ("ok", "any") and (status in (401, 403) or location.startswith("/login")):
        return f"{label}: expected access, got {status} {location}"
    if case.want == "ok" and case.method == "GET" and status not in (200, 303, 422, 503):
        return f"{label}: expected 200, got {status}"
    if case.want == "ok" and case.method == "POST" and status == 404:
        return f"{label}: expected access, got 404"
    return None


@pytest.mark.parametrize("login", ROLES)
def test_role_matrix(login: str, make_browser, world: World, db: Session, app) -> None:  # type: ignore[no-untyped-def]
    targets = prepare_targets(db, world)
    b: Browser = make_browser(login)
    found = load_principal(db, b.client.cookies.get(SESSION_COOKIE) or "")
    assert found is not None
    who = found[0]
    db.rollback()
    today = dt.date.today().isoformat()
    all_cases = cases(app, who, targets, today)
    hidden = hidden_names(db, who)
    assert hidden or login == "operator"  # every other role has students it must not see
    failures: list[str] = []
    # Pages first, then refused writes (each must change nothing), then allowed writes.
    for case in [c for c in all_cases if c.method == "GET"]:
        r = b.get(case.url)
        if (msg := check(case, r.status_code, r.headers.get("location", ""))) is not None:
            failures.append(msg)
        shown = sorted(n for n in hidden if n in r.text)
        if shown:
            failures.append(f"GET {case.url}: shows students outside the role's scope: {shown}")
    b.get("/")
    refused = [c for c in all_cases if c.method == "POST" and c.want in ("403", "404")]
    allowed = sorted(
        (c for c in all_cases if c.method == "POST" and c.want not in ("403", "404")),
        key=lambda c: c.rule.last,
    )
    for case in refused:
        values = case.target.values if case.target is not None else {}
        before = fingerprint(db)
        r = b.post(
            case.url,
            form_for(case.rule, case.route, values | {"today": today}),
            files=case.rule.files or None,
        )
        if (msg := check(case, r.status_code, r.headers.get("location", ""))) is not None:
            failures.append(msg)
        after = fingerprint(db)
        changed = sorted(k for k in before if before[k] != after.get(k))
        if changed:
            failures.append(f"POST {case.url} refused ({r.status_code}) but changed {changed}")
    for case in allowed:
        values = case.target.values if case.target is not None else {}
        b.get("/")  # a fresh CSRF token (a write may have rotated nothing, but be a person)
        r = b.post(
            case.url,
            form_for(case.rule, case.route, values | {"today": today}),
            files=case.rule.files or None,
        )
        if (msg := check(case, r.status_code, r.headers.get("location", ""))) is not None:
            failures.append(msg)
        shown = sorted(n for n in hidden if n in r.text)
        if shown:
            failures.append(f"POST {case.url}: shows students outside the role's scope: {shown}")
    assert not failures, f"{login}: {len(failures)} problem(s):\n" + "\n".join(failures)


# ------------------------------------------------------------------- out-of-range inputs

HUGE = "99999999999999999999"
ABSURD = [HUGE, "0", "-1", "9999-12-31", "0001-01-01", "NaN", "1e309", "9999-12"]


def absurd_requests(app: Any, world: World) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, url, form) for every classified route: each path parameter, query parameter
    and form field in turn set to a value out of any sane range, the others plain."""
    plain: dict[str, Any] = {
        "pk": world.students["s1-3a-1"],
        "student_pk": world.students["s1-3a-1"],
        "school": "S1",
        "school_id": "S1",
        "region_id": "R1",
    }
    for method, path, route in console_routes(app):
        rule = ROUTES[(method, path)]
        if rule.skip or rule.kind == "public":
            continue
        names = _PARAM.findall(path)
        base = {n: plain.get(n, 1) for n in names}
        for n in names:
            for v in ABSURD:
                yield method, fill(path, base | {n: v}), {}
        url = fill(path, base)
        for q in route.dependant.query_params:
            for v in ABSURD:
                yield method, f"{url}?{q.alias}={v}", {}
        for f in route.dependant.body_params:
            for v in ABSURD:
                yield method, url, {f.alias: v}


@pytest.mark.parametrize("login", ["operator", "admin1"])
def test_out_of_range_ids_and_dates_are_refused_not_500(
    login: str, make_browser, world: World, db: Session, app
) -> None:  # type: ignore[no-untyped-def]
    """Ids beyond any key (``99999999999999999999``), dates like ``9999-12-31`` and ``NaN`` in
    any parameter of any console route: a clear 4xx (or the page), never a server error."""
    signed_in: Browser = make_browser(login)
    client = TestClient(app, raise_server_exceptions=False, cookies=signed_in.client.cookies)
    b = Browser(client)
    b.csrf = signed_in.csrf
    errors = []
    for method, url, form in absurd_requests(app, world):
        r = b.get(url) if method == "GET" else b.post(url, form)
        if r.status_code >= 500 and r.status_code != 503:
            errors.append(f"{method} {url} {form}: {r.status_code}")
    # JSON with NaN, an infinity and a number beyond any column (device enrolment)
    for body in (
        b'{"token": NaN, "device": "d", "public_key": "x"}',
        b'{"token": "t" , "device": 1e999, "public_key": 99999999999999999999}',
    ):
        r = client.post("/api/v1/enrol", content=body, headers={"content-type": "application/json"})
        if not 400 <= r.status_code < 500:
            errors.append(f"POST /api/v1/enrol {body!r}: {r.status_code}")
    client.close()
    assert not errors, f"{len(errors)} server error(s):\n" + "\n".join(errors)


@pytest.mark.parametrize("login", ["teacher1", "canteen1", "parent1"])
def test_query_parameters_reach_nothing_outside_the_scope(
    login: str, make_browser, world: World, db: Session, app
) -> None:  # type: ignore[no-untyped-def]
    """Every page, with a school, a class or a student of elsewhere in its query: never a
    student outside the role's scope, never a server error."""
    prepare_targets(db, world)
    b: Browser = make_browser(login)
    found = load_principal(db, b.client.cookies.get(SESSION_COOKIE) or "")
    assert found is not None
    hidden = hidden_names(db, found[0])
    elsewhere = [
        "school=S3",
        "school=S2",
        f"class={world.classes['S3/3A']}",
        f"class_pk={world.classes['S3/3A']}",
        f"school=S1&class={world.classes['S1/7B']}",
        f"school=S1&class_pk={world.classes['S1/7B']}",
        f"student_pk={world.students['s3-3a-1']}",
        f"student_pk={world.students['s1-7b-1']}",
        "student=s3-3a-1",
        "student=s1-7b-1",
    ]
    failures = []
    for method, path, _route in console_routes(app):
        rule = ROUTES[(method, path)]
        if method != "GET" or "{" in path or rule.skip or rule.kind == "public":
            continue
        for q in elsewhere:
            r = b.get(f"{path}?{q}")
            shown = sorted(n for n in hidden if n in r.text)
            if shown or r.status_code >= 500:
                failures.append(f"GET {path}?{q}: {r.status_code} {shown[:3]}")
    assert not failures, "\n".join(failures)
