"""Account operations: users and grants, invitations, sign-in with lockout, sessions."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.accounts.access import SCOPE_OF_ROLE, Grant, Principal, Role
from server.accounts.models import Invitation, RoleGrant, User, WebSession
from server.accounts.passwords import hash_password, new_token, token_hash, verify_password
from server.accounts.throttle import LoginThrottle
from server.audit.service import audit
from server.clock import now_ms
from server.models import School
from server.people.models import Guardian, Student, StudentGuardian
from server.text_safety import hidden_at

LANGS = ("kk", "ru", "en")


class AccountError(ValueError):
    """A refused account operation; the message is safe to show."""


def check_grant(g: Grant) -> None:
    scope = SCOPE_OF_ROLE[g.role]
    need = {
        "all": (False, False, False),
        "region": (True, False, False),
        "school": (False, True, False),
        "class": (False, True, True),
        "children": (False, False, False),
        "badge": (False, False, False),
        "own": (False, False, False),
    }[scope]
    have = (g.region_id is not None, g.school_id is not None, g.class_pk is not None)
    if have != need:
        raise AccountError(f"role {g.role.value} needs scope {scope}")


def create_user(
    session: Session,
    login: str,
    full_name: str,
    grants: Sequence[Grant],
    *,
    email: str = "",
    phone: str = "",
    lang: str = "kk",
    password: str | None = None,
    created_by: Principal | None = None,
) -> User:
    login = login.strip().lower()
    if not login or len(login) > 100:
        raise AccountError("login must be 1-100 characters")
    if hidden_at(login) is not None or hidden_at(full_name) is not None:
        raise AccountError("invisible or text-direction characters are not allowed")
    if session.execute(select(User.pk).where(User.login == login)).first() is not None:
        raise AccountError(f"login {login!r} is taken")
    if lang not in LANGS:
        raise AccountError(f"language must be one of {', '.join(LANGS)}")
    for g in grants:
        check_grant(g)
    user = User(
        login=login,
        full_name=full_name,
        email=email,
        phone=phone,
        lang=lang,
        created_at_ms=now_ms(),
        password_hash=hash_password(password) if password is not None else None,
        must_change_password=password is None,
    )
    session.add(user)
    session.flush()
    for g in grants:
        session.add(
            RoleGrant(
                user_pk=user.pk,
                role=g.role.value,
                region_id=g.region_id,
                school_id=g.school_id,
                class_pk=g.class_pk,
            )
        )
    session.flush()
    audit(
        session,
        created_by,
        "create",
        "user",
        school_id=next((g.school_id for g in grants if g.school_id), None),
        summary=f"user {user.pk} with role {', '.join(g.role.value for g in grants)}"
        + ("" if created_by is not None else " (command line)"),
    )
    return user


def invite(session: Session, user: User, created_by: int | None, ttl_s: int) -> str:
    """A one-time link token; the invitee sets a password on first sign-in."""
    token = new_token()
    now = now_ms()
    session.add(
        Invitation(
            token_hash=token_hash(token),
            user_pk=user.pk,
            created_by=created_by,
            created_at_ms=now,
            expires_at_ms=now + ttl_s * 1000,
        )
    )
    session.flush()
    return token


def invitation_user(session: Session, token: str) -> tuple[Invitation, User]:
    inv = session.get(Invitation, token_hash(token))
    if inv is None or inv.used_at_ms is not None or inv.expires_at_ms < now_ms():
        raise AccountError("this invitation link is not valid (used or expired)")
    return inv, session.get_one(User, inv.user_pk)


def accept_invitation(session: Session, token: str, password: str) -> User:
    inv, user = invitation_user(session, token)
    user.password_hash = hash_password(password)
    user.must_change_password = False
    inv.used_at_ms = now_ms()
    audit(session, None, "password", "account", user_pk=user.pk, summary="set by invitation")
    return user


@dataclass(frozen=True, slots=True)
class SignIn:
    """``user`` when the password was right; ``wait_s`` > 0 when the attempt was refused by
    the throttle without looking at the password."""

    user: User | None
    wait_s: int = 0


def sign_in(
    session: Session, throttle: LoginThrottle, login: str, password: str, address: str
) -> SignIn:
    """Checks a password, throttled per (login, address) with growing delays. An unknown or
    inactive login costs one password hash like a known one, so timing tells nothing; both the
    sign-in and the failure are audited (the login named only when it exists)."""
    now = now_ms()
    wait = throttle.wait_ms(login, address, now)
    if wait > 0:
        return SignIn(None, wait_s=-(-wait // 1000))
    user = session.execute(
        select(User).where(User.login == login.strip().lower())
    ).scalar_one_or_none()
    if user is None or not user.active:
        verify_password(None, password)  # the same work as a real check
        ok = False
    else:
        ok = verify_password(user.password_hash, password)
    if not ok or user is None:
        throttle.failed(login, address, now)
        known = user is not None and user.active
        audit(
            session,
            None,
            "sign_in_failed",
            "account",
            user_pk=user.pk if known and user is not None else None,
            summary="wrong password" if known else "unknown or inactive login",
        )
        return SignIn(None)
    throttle.succeeded(login, address)
    user.last_login_ms = now
    audit(session, None, "sign_in", "account", user_pk=user.pk, summary="password")
    return SignIn(user)


def change_password(session: Session, user: User, new_password: str) -> None:
    user.password_hash = hash_password(new_password)
    user.must_change_password = False
    audit(session, None, "password", "account", user_pk=user.pk, summary="changed")
    # Every other session of this user ends.
    session.execute(delete(WebSession).where(WebSession.user_pk == user.pk))


def open_session(session: Session, user: User, ttl_s: int) -> str:
    token = new_token()
    now = now_ms()
    session.add(
        WebSession(
            token_hash=token_hash(token),
            user_pk=user.pk,
            csrf_token=secrets.token_urlsafe(24),
            created_at_ms=now,
            expires_at_ms=now + ttl_s * 1000,
        )
    )
    session.flush()
    return token


def close_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))


def load_principal(session: Session, token: str) -> tuple[Principal, User] | None:
    ws = session.get(WebSession, token_hash(token))
    if ws is None or ws.expires_at_ms < now_ms():
        return None
    user = session.get(User, ws.user_pk)
    if user is None or not user.active:
        return None
    grants = [
        Grant(Role(g.role), g.region_id, g.school_id, g.class_pk)
        for g in session.execute(select(RoleGrant).where(RoleGrant.user_pk == user.pk)).scalars()
    ]
    principal = Principal(
        user_pk=user.pk,
        login=user.login,
        full_name=user.full_name,
        lang=user.lang,
        csrf_token=ws.csrf_token,
        grants=grants,
    )
    regions = {g.region_id for g in grants if g.region_id is not None}
    if regions:
        principal.region_schools = {
            sid: rid
            for sid, rid in session.execute(
                select(School.id, School.region_id).where(School.region_id.in_(regions))
            )
        }
    if any(g.role is Role.PARENT for g in grants):
        principal.children = [
            (pk, school, cls)
            for pk, school, cls in session.execute(
                select(Student.pk, Student.school_id, Student.class_pk)
                .join(StudentGuardian, StudentGuardian.student_pk == Student.pk)
                .join(Guardian, Guardian.pk == StudentGuardian.guardian_pk)
                .where(Guardian.user_pk == user.pk, Student.active.is_(True))
            )
        ]
    return principal, user
