"""Awards, credentials and the staff/participant accounts of the badge module.

The credential is an Open Badges 3.0 ``OpenBadgeCredential`` (a W3C Verifiable Credential)
signed as a VC-JWT with the issuer's Ed25519 key (JOSE ``EdDSA``), with a place in a revocation
status list. The issuer key is the PEM file named by ``QAQPA_BADGES_ISSUER_KEY_FILE``; without
it (a demo on one machine) a key is created once in the temporary directory, 0600.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import io
import json
import os
import tempfile
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.accounts.access import Grant, Principal, Role
from server.accounts.models import User
from server.accounts.service import create_user, invite
from server.audit.service import audit
from server.badges.models import (
    Application,
    Award,
    Book,
    Centre,
    Entry,
    IssuedCredential,
    Participant,
    Section,
    Staff,
    StaffKind,
)
from server.badges.service import BadgeError, needs_representative, title_key
from server.settings import ServerSettings

KEY_ENV = "QAQPA_BADGES_ISSUER_KEY_FILE"
STATUS_LIST_SIZE = 131_072  # bits: the W3C minimum, so one index says nothing about a person
LEVEL_NAMES = {"bronze": "Bronze", "silver": "Silver", "gold": "Gold"}


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
            raise BadgeError("Give the participant a login.", "login")
        u = create_user(db, login, p.full_name, [Grant(Role.BADGE_PARTICIPANT)], created_by=who)
        p.user_pk = u.pk
        links.append(_link(settings, invite(db, u, who.user_pk, settings.console_invite_ttl_s)))
    if needs_representative(p, today) and p.representative_user_pk is None:
        if not representative_login.strip():
            raise BadgeError("Give the legal representative a login.", "representative_login")
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
        raise BadgeError("Choose the kind.", "kind")
    if expert_pk is not None:
        ex = db.get(Staff, expert_pk)
        if ex is None or ex.kind != StaffKind.EXPERT.value or ex.region_id != c.region_id:
            raise BadgeError("Choose an expert of the region.", "expert_pk")
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
            raise BadgeError("Unknown member.", "members")
        out.append(pk)
    return out


def add_book(db: Session, who: Principal, section: str, title: str, now_ms: int) -> Book:
    if section not in {s.value for s in Section}:
        raise BadgeError("Unknown section.", "section")
    key = title_key(title)
    if not key:
        raise BadgeError("Name the book.", "title")
    if db.scalar(select(Book.pk).where(Book.section == section, Book.title_key == key)):
        raise BadgeError("The book is already on the list.", "title")
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


def integrity_notes(db: Session, entries: list[Entry]) -> dict[int, str]:
    """An essay whose text another participant's earlier entry already has is flagged for
    the mentor with the matching entry (never rejected automatically)."""
    out: dict[int, str] = {}
    for e in entries:
        text = " ".join(e.text.split()).casefold()
        if len(text) < 40:
            continue
        earlier = db.execute(
            select(Entry.pk, Entry.text)
            .where(
                Entry.pk != e.pk,
                Entry.received_at_ms <= e.received_at_ms,
                Entry.participant_pk != e.participant_pk,
                func.length(Entry.text) >= 40,
            )
            .limit(2000)
        ).all()
        for pk, other in earlier:
            if " ".join(str(other).split()).casefold() == text:
                out[e.pk] = f"same text as entry {pk}"
                break
    return out


# -------------------------------------------------------------------------- issuer key


@cache
def _dev_key_path() -> Path:
    return Path(tempfile.gettempdir()) / f"qaqpa-badges-issuer-{os.getuid()}.pem"


def issuer_key() -> Ed25519PrivateKey:
    path = Path(os.environ[KEY_ENV]) if os.environ.get(KEY_ENV) else _dev_key_path()
    if not path.exists() and not os.environ.get(KEY_ENV):
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    loaded = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise BadgeError("The issuer key is not an Ed25519 key.", "key")
    return loaded


def _jwk(key: Ed25519PrivateKey) -> OKPKey:
    return OKPKey.import_key(key)


def issuer_id(base: str) -> str:
    return f"{base.rstrip('/')}/badges/issuer"


# --------------------------------------------------------------------------- credentials


def full_id(short: str) -> str:
    """Path ids are the UUID; stored ids are ``urn:uuid:<uuid>``."""
    return short if short.startswith("urn:uuid:") else f"urn:uuid:{short[:40]}"


def short_id(full: str) -> str:
    return full.removeprefix("urn:uuid:")


def build_credential(
    *,
    credential_id: str,
    participant: Participant,
    level: str,
    awarded_on: dt.date,
    status_index: int,
    base_url: str,
    issued_at: dt.datetime,
) -> dict[str, Any]:
    base = base_url.rstrip("/")
    return {
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
        ],
        "id": credential_id,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {
            "id": issuer_id(base),
            "type": ["Profile"],
            "name": "Elbasy Medal programme operator",
        },
        "validFrom": issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "name": f"Elbasy Medal — {LEVEL_NAMES[level]}",
        "credentialSubject": {
            "id": f"{base}/badges/holders/{participant.pk}",
            "type": ["AchievementSubject"],
            "name": participant.full_name,
            "achievement": {
                "id": f"{base}/badges/achievements/{level}",
                "type": ["Achievement"],
                "name": f"Elbasy Medal — {LEVEL_NAMES[level]}",
                "description": f"The {LEVEL_NAMES[level]} level of the Elbasy Medal youth award.",
                "criteria": {
                    "narrative": "Every direction of the level completed and confirmed by the "
                    "mentor; proposed by the programme centre and decided by the commission."
                },
            },
            "activityEndDate": f"{awarded_on.isoformat()}T00:00:00Z",
        },
        "credentialStatus": {
            "id": f"{base}/badges/status-list#{status_index}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(status_index),
            "statusListCredential": f"{base}/badges/status-list",
        },
    }


def sign(doc: dict[str, Any], key: Ed25519PrivateKey) -> str:
    jwk = _jwk(key)
    header = {"alg": "EdDSA", "typ": "vc+jwt", "kid": jwk.thumbprint()}
    payload = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    return str(jws.serialize_compact(header, payload, jwk, algorithms=["EdDSA"]))


def issue(db: Session, award: Award, base_url: str, now_ms: int) -> IssuedCredential:
    p = db.get_one(Participant, award.participant_pk)
    index = (db.scalar(select(func.max(IssuedCredential.status_index))) or 0) + 1
    cid = f"urn:uuid:{uuid.uuid4()}"
    doc = build_credential(
        credential_id=cid,
        participant=p,
        level=award.level,
        awarded_on=award.awarded_on,
        status_index=index,
        base_url=base_url,
        issued_at=dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC),
    )
    c = IssuedCredential(
        id=cid,
        award_pk=award.pk,
        status_index=index,
        document=sign(doc, issuer_key()),
        issued_at_ms=now_ms,
    )
    db.add(c)
    db.flush()
    audit(db, None, "issue", "badge_credential", summary=f"award {award.pk}")
    return c


def decode(c: IssuedCredential) -> dict[str, Any]:
    """The credential's payload (not verified: for display)."""
    part = c.document.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def verify(db: Session, c: IssuedCredential) -> dict[str, Any]:
    """Signature against the issuer's key, and the status list: valid, revoked, or invalid."""
    try:
        obj = jws.deserialize_compact(c.document, _jwk(issuer_key()), algorithms=["EdDSA"])
        doc = json.loads(obj.payload)
        signature_ok = doc.get("id") == c.id
    except (JoseError, ValueError):
        signature_ok, doc = False, {}
    return {
        "signature_ok": signature_ok,
        "revoked": c.revoked_at_ms is not None,
        "valid": signature_ok and c.revoked_at_ms is None,
        "doc": doc,
    }


def revoke(db: Session, who: Principal, c: IssuedCredential, reason: str, now_ms: int) -> None:
    if c.revoked_at_ms is not None:
        raise BadgeError("The credential is already revoked.", "credential")
    reason = reason.strip()[:300]
    if not reason:
        raise BadgeError("Give the reason of the revocation.", "reason")
    c.revoked_at_ms = now_ms
    c.revoked_reason = reason
    audit(db, who, "revoke", "badge_credential", summary=f"status index {c.status_index}")


def status_list(db: Session, base_url: str) -> dict[str, Any]:
    bits = bytearray(STATUS_LIST_SIZE // 8)
    for idx in db.scalars(
        select(IssuedCredential.status_index).where(IssuedCredential.revoked_at_ms.is_not(None))
    ):
        bits[idx // 8] |= 0x80 >> (idx % 8)
    encoded = base64.urlsafe_b64encode(gzip.compress(bytes(bits), mtime=0)).decode().rstrip("=")
    base = base_url.rstrip("/")
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": f"{base}/badges/status-list",
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer_id(base),
        "credentialSubject": {
            "id": f"{base}/badges/status-list#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": "u" + encoded,
        },
    }


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


FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def certificate_pdf(db: Session, c: IssuedCredential, settings: ServerSettings) -> bytes:
    """A one-page certificate with a QR code of the public verification page."""
    import segno
    from fpdf import FPDF

    doc = decode(c)
    url = f"{settings.console_base_url.rstrip('/')}/badges/verify/{short_id(c.id)}"
    pdf = FPDF(orientation="L", format="A4")
    pdf.add_page()
    if FONT.exists():
        pdf.add_font("DejaVu", "", str(FONT))
        pdf.set_font("DejaVu", size=28)
    else:
        pdf.set_font("Helvetica", size=28)
    pdf.cell(0, 30, "Елбасы медалі · Elbasy Medal" if FONT.exists() else "Elbasy Medal", align="C")
    pdf.ln(30)
    pdf.set_font_size(22)
    pdf.cell(0, 15, str(doc["credentialSubject"]["name"]), align="C")
    pdf.ln(15)
    pdf.set_font_size(16)
    pdf.cell(0, 12, str(doc["name"]), align="C")
    pdf.ln(12)
    pdf.set_font_size(10)
    pdf.cell(0, 8, f"{c.id} · {doc['validFrom']}", align="C")
    qr = io.BytesIO()
    segno.make(url, error="m").save(qr, kind="png", scale=6, border=2)
    qr.seek(0)
    pdf.image(qr, x=123, y=120, w=50)
    pdf.set_y(175)
    pdf.cell(0, 8, url, align="C")
    return bytes(pdf.output())
