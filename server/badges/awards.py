"""Awards, credentials and the staff/participant accounts of the badge module.

The credential is an Open Badges 3.0 ``OpenBadgeCredential`` (a W3C Verifiable Credential)
signed as a VC-JWT with the issuer's Ed25519 key by ``server.badges.credential``, and listed in
the issuer's revocation list when revoked; the certificate PDF is ``server.badges.certificate``. The issuer key is the PEM file named by ``QAQPA_BADGES_ISSUER_KEY_FILE``; without
it (a demo on one machine) a key is created once in the temporary directory, 0600.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import tempfile
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.accounts.access import Grant, Principal, Role
from server.accounts.models import User
from server.accounts.service import create_user, invite
from server.audit.service import audit
from server.badges import certificate, credential
from server.badges.models import (
    Application,
    Award,
    Book,
    Centre,
    Entry,
    IssuedCredential,
    Media,
    Participant,
    Section,
    Staff,
    StaffKind,
)
from server.badges.service import BadgeError, needs_representative, title_key
from server.settings import ServerSettings

N_ = str  # marks a message for the catalogues (translated where it is shown)
KEY_ENV = "QAQPA_BADGES_ISSUER_KEY_FILE"
ISSUER_NAME = "Elbasy Medal programme operator"


# ----------------------------------------------------------------------------- accounts


def user_names(db: Session, pks: list[int]) -> dict[int, str]:
    if not pks:
        return {}
    return {u.pk: u.full_name for u in db.scalars(select(User).where(User.pk.in_(pks)))}


def _link(settings: ServerSettings, token: str) -> str:
    return f"{settings.console_base_url.rstrip('/')}/invite/{token}"


def invite_participant(
    db: Session,
    who: Principal,
    a: Application,
    login: str,
    representative_login: str,
    today: dt.date,
    settings: ServerSettings,
) -> list[str]:
    """Accounts for the approved participant (and their representative, for a minor):
    one-time links, passwords chosen at first sign-in."""
    p = db.get_one(Participant, a.participant_pk)
    links: list[str] = []
    if p.user_pk is None:
        if not login.strip():
            raise BadgeError(N_("Give the participant a login."), "login")
        u = create_user(db, login, p.full_name, [Grant(Role.BADGE_PARTICIPANT)], created_by=who)
        p.user_pk = u.pk
        links.append(_link(settings, invite(db, u, who.user_pk, settings.console_invite_ttl_s)))
    if needs_representative(p, today) and p.representative_user_pk is None:
        if not representative_login.strip():
            raise BadgeError(N_("Give the legal representative a login."), "representative_login")
        r = create_user(
            db,
            representative_login,
            p.representative_name or "Representative",
            [Grant(Role.BADGE_REPRESENTATIVE)],
            created_by=who,
        )
        p.representative_user_pk = r.pk
        links.append(_link(settings, invite(db, r, who.user_pk, settings.console_invite_ttl_s)))
    return links


STAFF_ROLES = {
    "mentor": Role.BADGE_MENTOR,
    "expert": Role.BADGE_EXPERT,
    "coordinator": Role.BADGE_COORDINATOR,
    "centre_head": Role.BADGE_CENTRE,
}


def add_staff(
    db: Session,
    who: Principal | None,
    c: Centre,
    login: str,
    full_name: str,
    kind: str,
    *,
    email: str = "",
    expert_pk: int | None = None,
    password: str | None = None,
) -> Staff:
    role = STAFF_ROLES.get(kind)
    if role is None:
        raise BadgeError(N_("Choose the kind."), "kind")
    if expert_pk is not None:
        ex = db.get(Staff, expert_pk)
        if ex is None or ex.kind != StaffKind.EXPERT.value or ex.region_id != c.region_id:
            raise BadgeError(N_("Choose an expert of the region."), "expert_pk")
    grant = Grant(role, region_id=c.region_id) if role is Role.BADGE_COORDINATOR else Grant(role)
    u = create_user(db, login, full_name, [grant], email=email, password=password, created_by=who)
    s = Staff(
        user_pk=u.pk,
        kind=kind,
        centre_pk=c.pk,
        region_id=c.region_id,
        place=c.place,
        expert_pk=expert_pk if kind == "mentor" else None,
    )
    db.add(s)
    db.flush()
    return s


def invite_staff(
    db: Session,
    who: Principal,
    c: Centre,
    login: str,
    full_name: str,
    kind: str,
    email: str,
    expert_pk: str,
    settings: ServerSettings,
) -> str:

    ex = int(expert_pk) if expert_pk.isdigit() and len(expert_pk) < 10 else None
    s = add_staff(db, who, c, login, full_name, kind, email=email, expert_pk=ex)
    u = db.get_one(User, s.user_pk)
    return _link(settings, invite(db, u, who.user_pk, settings.console_invite_ttl_s))


def member_pks(db: Session, text: str) -> list[int]:
    """Commission members by login, separated by commas or spaces."""
    out: list[int] = []
    for login in text.replace(",", " ").split():
        pk = db.scalar(select(User.pk).where(User.login == login.strip().lower()))
        if pk is None:
            raise BadgeError(N_("Unknown member."), "members")
        out.append(pk)
    return out


def add_book(db: Session, who: Principal, section: str, title: str, now_ms: int) -> Book:
    if section not in {s.value for s in Section}:
        raise BadgeError(N_("Unknown section."), "section")
    key = title_key(title)
    if not key:
        raise BadgeError(N_("Name the book."), "title")
    if db.scalar(select(Book.pk).where(Book.section == section, Book.title_key == key)):
        raise BadgeError(N_("The book is already on the list."), "title")
    b = Book(
        section=section,
        title=title.strip(),
        title_key=key,
        approved_by=who.user_pk,
        approved_at_ms=now_ms,
    )
    db.add(b)
    audit(db, who, "approve", "badge_book", summary=f"section {section}")
    return b


# ---------------------------------------------------------------------------- integrity


def media_of(db: Session, entries: list[Entry]) -> dict[int, list[Media]]:
    """The photos and videos of these entries (without their bytes' use in the page)."""
    out: dict[int, list[Media]] = {e.pk: [] for e in entries}
    if entries:
        for m in db.scalars(
            select(Media).where(Media.entry_pk.in_([e.pk for e in entries])).order_by(Media.pk)
        ):
            out[m.entry_pk].append(m)
    return out


# -------------------------------------------------------------------------- issuer key


@cache
def _dev_key_path() -> Path:
    return Path(tempfile.gettempdir()) / f"qaqpa-badges-issuer-{os.getuid()}.pem"


def issuer_key() -> Ed25519PrivateKey:
    """The issuer key file named by ``QAQPA_BADGES_ISSUER_KEY_FILE`` (made by ``qaqpa server
    badges issuer-key new``); without it, a demo key created once in the temporary directory."""
    configured = os.environ.get(KEY_ENV)
    path = Path(configured) if configured else _dev_key_path()
    if not configured and not path.exists():
        with contextlib.suppress(FileExistsError):
            credential.new_issuer_key_file(path)
    try:
        return credential.load_issuer_key(path)
    except credential.CredentialError as err:
        raise BadgeError(N_("The issuer key cannot be used."), "key") from err


def issuer_id(base: str) -> str:
    return f"{base.rstrip('/')}/badges/issuer"


def status_list_url(base: str) -> str:
    return f"{base.rstrip('/')}/badges/status-list"


# --------------------------------------------------------------------------- credentials


def full_id(short: str) -> str:
    """Path ids are the UUID; stored ids are ``urn:uuid:<uuid>``."""
    return short if short.startswith("urn:uuid:") else f"urn:uuid:{short[:40]}"


def short_id(full: str) -> str:
    return full.removeprefix("urn:uuid:")


def subject_id(p: Participant) -> str:
    """An opaque, stable id of the holder (no personal data in it)."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'qaqpa-badges-participant-{p.pk}')}"


def issue(db: Session, award: Award, base_url: str, now_ms: int) -> IssuedCredential:
    """Sign the award's OpenBadgeCredential (``server.badges.credential``) and record it."""
    p = db.get_one(Participant, award.participant_pk)
    index = (db.scalar(select(func.max(IssuedCredential.status_index))) or 0) + 1
    cid = f"urn:uuid:{uuid.uuid4()}"
    issued_at = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    doc = credential.build_credential(
        credential_id=cid,
        issuer=credential.IssuerProfile(id=issuer_id(base_url), name=ISSUER_NAME),
        level=award.level,
        subject_id=subject_id(p),
        issued_at=issued_at,
        achievement_base=f"{base_url.rstrip('/')}/badges/achievements",
        status_list_url=status_list_url(base_url),
        awarded_at=dt.datetime.combine(award.awarded_on, dt.time(), dt.UTC),
        recipient_name=p.full_name,
    )
    c = IssuedCredential(
        id=cid,
        award_pk=award.pk,
        status_index=index,
        document=credential.sign_credential(doc, issuer_key()),
        issued_at_ms=now_ms,
    )
    db.add(c)
    db.flush()
    audit(db, None, "issue", "badge_credential", summary=f"award {award.pk}")
    return c


def decode(c: IssuedCredential) -> dict[str, Any]:
    """The credential inside the token (not verified: for display)."""
    part = c.document.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    vc: dict[str, Any] = data.get("vc", {})
    return vc


def verify(db: Session, c: IssuedCredential, base_url: str, now_ms: int) -> dict[str, Any]:
    """The signature against the issuer's key and the revocation list: valid, revoked, or
    invalid (with the reason)."""
    listing = status_list(db, base_url)
    now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    try:
        vc = credential.verify_credential(c.document, issuer_key().public_key(), now, listing)
        problem = ""
    except credential.CredentialError as err:
        vc, problem = decode(c), str(err)
    ident = (vc.get("credentialSubject") or {}).get("identifier") or [{}]
    return {
        "valid": not problem,
        "revoked": credential.is_revoked(listing, c.id),
        "problem": problem,
        "doc": vc,
        "recipient": ident[0].get("identityHash", ""),
    }


def revoke(db: Session, who: Principal, c: IssuedCredential, reason: str, now_ms: int) -> None:
    if c.revoked_at_ms is not None:
        raise BadgeError(N_("The credential is already revoked."), "credential")
    reason = reason.strip()[:300]
    if not reason:
        raise BadgeError(N_("Give the reason of the revocation."), "reason")
    c.revoked_at_ms = now_ms
    c.revoked_reason = reason
    audit(db, who, "revoke", "badge_credential", summary=f"status index {c.status_index}")


def status_list(db: Session, base_url: str) -> dict[str, Any]:
    """The issuer's revocation list (OB 3.0 ``1EdTechRevocationList``)."""
    revoked = [
        credential.Revocation(cid, reason or None)
        for cid, reason in db.execute(
            select(IssuedCredential.id, IssuedCredential.revoked_reason)
            .where(IssuedCredential.revoked_at_ms.is_not(None))
            .order_by(IssuedCredential.status_index)
        )
    ]
    return credential.revocation_list(status_list_url(base_url), issuer_id(base_url), revoked)


def awards_of(db: Session, p: Participant) -> list[tuple[Award, IssuedCredential | None]]:
    out = []
    for a in db.scalars(select(Award).where(Award.participant_pk == p.pk).order_by(Award.pk)):
        c = db.scalars(select(IssuedCredential).where(IssuedCredential.award_pk == a.pk)).first()
        out.append((a, c))
    return out


def credentials(db: Session) -> list[tuple[IssuedCredential, Award, Participant]]:
    return [
        (c, a, p)
        for c, a, p in db.execute(
            select(IssuedCredential, Award, Participant)
            .join(Award, Award.pk == IssuedCredential.award_pk)
            .join(Participant, Participant.pk == Award.participant_pk)
            .order_by(IssuedCredential.issued_at_ms.desc())
            .limit(200)
        )
    ]


CERT_TEXTS = (
    certificate.CertificateText("kk", "Куәлік", ("«Елбасы медалі» марапатталды",)),
    certificate.CertificateText("ru", "Свидетельство", ("награждается «Медалью Елбасы»",)),
    certificate.CertificateText("en", "Certificate", ("is awarded the Elbasy Medal",)),
)


def certificate_pdf(db: Session, c: IssuedCredential, base_url: str) -> bytes:
    """The certificate (``server.badges.certificate``) with a QR code of the public
    verification page."""
    a = db.get_one(Award, c.award_pk)
    p = db.get_one(Participant, a.participant_pk)
    return certificate.certificate_pdf(
        recipient=p.full_name,
        level=a.level,
        texts=CERT_TEXTS,
        verify_url=f"{base_url.rstrip('/')}/badges/verify/{short_id(c.id)}",
        issued_on=a.awarded_on,
        verify_caption="Тексеру / Проверка / Verify",
        footer=c.id,
    )
