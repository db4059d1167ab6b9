"""Open Badges 3.0 credentials for the medal: an ``OpenBadgeCredential`` (a W3C Verifiable
Credential whose subject is an ``AchievementSubject`` holding the ``Achievement`` of the level),
signed as a VC-JWT (OB 3.0 section 8.2 "JSON Web Token Proof Format": JOSE, here EdDSA over an
Ed25519 key), its verification, and the revocation list named by OB 3.0
(``1EdTechRevocationList``, the ``credentialStatus`` of every credential).

The data model follows the OB 3.0 JSON schema copied into the tests
(``tests/server/badges/fixtures/``, 1EdTech/openbadges-specification
``docs/schema/achievementcredential.json`` at e0fdb03d): W3C VC Data Model 1.1 context,
``issuanceDate`` and a ``name`` on the credential, ``credentialSchema`` pointing at 1EdTech's
published schema. Least data: the subject is an opaque ``urn:uuid`` of the participant; a name
is added only when the caller passes one (the holder shows the badge to others).

The issuer's Ed25519 key lives in a PEM file (0600) created by
``qaqpa server badges issuer-key new`` -- never in the repository. Pure but for the key file
functions: the caller passes ``issued_at`` and ``now``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import OKPKey

from server.badges.rules import Level

VC_CONTEXT = "https://www.w3.org/2018/credentials/v1"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.2.json"
OB_SCHEMA = (
    "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
)
OB_SCHEMA_TYPE = "1EdTechJsonSchemaValidator2019"
STATUS_TYPE = "1EdTechRevocationList"
# OB 3.0 verifiers know "EdDSA"; RFC 9864 names the same signature "Ed25519". Both verify here.
SIGNING_ALG = "EdDSA"
ACCEPTED_ALGS = ("EdDSA", "Ed25519")
MAX_TOKEN_CHARS = 64_000
MAX_TEXT_CHARS = 2_000

LEVEL_NAMES: Mapping[str, Mapping[Level, str]] = {
    "kk": {Level.BRONZE: "қола", Level.SILVER: "күміс", Level.GOLD: "алтын"},
    "ru": {Level.BRONZE: "бронзовый", Level.SILVER: "серебряный", Level.GOLD: "золотой"},
    "en": {Level.BRONZE: "Bronze", Level.SILVER: "Silver", Level.GOLD: "Gold"},
}
ACHIEVEMENT_NAME: Mapping[str, str] = {
    "kk": "«Елбасы медалі», {level} деңгей",
    "ru": "«Медаль Елбасы», {level} уровень",
    "en": '"Elbasy Medal", {level} level',
}
ACHIEVEMENT_DESCRIPTION: Mapping[str, str] = {
    "kk": "14-29 жастағы жастарға арналған «Елбасы медалі» бағдарламасының деңгейі.",
    "ru": "Уровень программы «Медаль Елбасы» для молодёжи 14-29 лет.",
    "en": 'A level of the "Elbasy Medal" programme for young people aged 14-29.',
}
CRITERIA: Mapping[str, str] = {
    "kk": (
        "Спорт, талант, еріктілік, кітап оқу, ұлттық мұра, саяхат (алтында еңбек тәжірибесі) "
        "бағыттарының әрқайсысы 100% орындалды, тәлімгер растады, комиссия шешім қабылдады."
    ),
    "ru": (
        "Каждое направление (спорт, таланты, волонтёрство, чтение, национальное наследие, "
        "поход, для золотого уровня и трудовой опыт) выполнено на 100%, подтверждено "
        "наставником, решение принято комиссией."
    ),
    "en": (
        "Every direction (sport, talents, volunteering, reading, national heritage, a trip, "
        "and at gold work experience) met in full, confirmed by the mentor, and decided by "
        "the award commission."
    ),
}


class CredentialError(ValueError):
    """A credential, token or key that cannot be used (the message says why)."""


# --- the issuer key --------------------------------------------------------------------------


def issuer_key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The RFC 7638 thumbprint of the public key (the JWS ``kid``)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return str(OKPKey.import_key(public).thumbprint())


def issuer_public_jwk(key: Ed25519PrivateKey | Ed25519PublicKey) -> dict[str, Any]:
    """The public JWK (with ``kid``, ``alg``, ``use``) to publish for verifiers."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    jwk = dict(OKPKey.import_key(public).as_dict(private=False))
    jwk.update(kid=issuer_key_id(public), alg=SIGNING_ALG, use="sig")
    return jwk


def new_issuer_key_file(path: Path) -> str:
    """Create a new Ed25519 issuer key at ``path`` (0600; refuses to overwrite); returns its id."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return issuer_key_id(key)


def load_issuer_key(path: Path) -> Ed25519PrivateKey:
    """The issuer key from its PEM file; refuses a file readable by others or another key type."""
    try:
        mode = path.stat().st_mode & 0o077
        pem = path.read_bytes()
    except OSError as err:
        raise CredentialError(f"issuer key {path}: {err.strerror or err}") from err
    if mode:
        raise CredentialError(f"issuer key {path} is readable by others: chmod 600 it")
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as err:
        raise CredentialError(f"issuer key {path}: not a PEM private key") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise CredentialError(f"issuer key {path}: not an Ed25519 key")
    return key


# --- the credential --------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerProfile:
    """The programme operator as OB 3.0 ``Profile``: ``id`` is the URL of its profile."""

    id: str
    name: str
    url: str | None = None


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise CredentialError("a credential's times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: str, what: str) -> str:
    if not value or len(value) > MAX_TEXT_CHARS:
        raise CredentialError(f"{what} must be 1..{MAX_TEXT_CHARS} characters")
    return value


def achievement(level: Level | str, achievement_base: str, language: str = "kk") -> dict[str, Any]:
    """The OB 3.0 ``Achievement`` of a level (``id`` = ``{achievement_base}/{level}``)."""
    try:
        level = Level(level)
    except ValueError as err:
        raise CredentialError(f"unknown level {level!r}") from err
    if language not in ACHIEVEMENT_NAME:
        raise CredentialError(f"language must be one of {', '.join(ACHIEVEMENT_NAME)}")
    return {
        "id": f"{achievement_base.rstrip('/')}/{level.value}",
        "type": ["Achievement"],
        "achievementType": "Award",
        "name": ACHIEVEMENT_NAME[language].format(level=LEVEL_NAMES[language][level]),
        "description": ACHIEVEMENT_DESCRIPTION[language],
        "criteria": {"narrative": CRITERIA[language]},
        "@language": language,
        "tag": ["elbasy-medal", level.value],
    }


def build_credential(
    *,
    credential_id: str,
    issuer: IssuerProfile,
    level: Level | str,
    subject_id: str,
    issued_at: datetime,
    achievement_base: str,
    status_list_url: str,
    awarded_at: datetime | None = None,
    recipient_name: str | None = None,
    language: str = "kk",
) -> dict[str, Any]:
    """An unsigned ``OpenBadgeCredential`` for the medal of ``level``.

    ``credential_id`` and ``subject_id`` are URIs (``urn:uuid:...``); ``status_list_url`` is the
    URL of the issuer's revocation list (``revocation_list``); ``recipient_name``, when given,
    is carried as an unhashed ``IdentityObject`` of type ``name``.
    """
    subject: dict[str, Any] = {
        "id": _text(subject_id, "subject_id"),
        "type": ["AchievementSubject"],
        "achievement": achievement(level, achievement_base, language),
    }
    if recipient_name is not None:
        subject["identifier"] = [
            {
                "type": "IdentityObject",
                "identityType": "name",
                "hashed": False,
                "identityHash": _text(recipient_name, "recipient_name"),
            }
        ]
    profile: dict[str, Any] = {
        "id": _text(issuer.id, "issuer.id"),
        "type": ["Profile"],
        "name": _text(issuer.name, "issuer.name"),
    }
    if issuer.url:
        profile["url"] = issuer.url
    credential: dict[str, Any] = {
        "@context": [VC_CONTEXT, OB_CONTEXT],
        "id": _text(credential_id, "credential_id"),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": subject["achievement"]["name"],
        "issuer": profile,
        "issuanceDate": _timestamp(issued_at),
        "awardedDate": _timestamp(awarded_at or issued_at),
        "credentialSubject": subject,
        "credentialSchema": [{"id": OB_SCHEMA, "type": OB_SCHEMA_TYPE}],
        "credentialStatus": {"id": _text(status_list_url, "status_list_url"), "type": STATUS_TYPE},
    }
    return credential


def _numeric_date(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def sign_credential(credential: Mapping[str, Any], key: Ed25519PrivateKey) -> str:
    """The credential as a compact VC-JWT: header ``alg``/``typ``/``kid``/``jwk`` (public),
    claims ``vc`` (the credential), ``iss``, ``jti``, ``sub``, ``nbf`` (OB 3.0 section 8.2.4)."""
    issuer_id = credential["issuer"]["id"]
    claims: dict[str, Any] = {
        "vc": dict(credential),
        "iss": issuer_id,
        "jti": credential["id"],
        "sub": credential["credentialSubject"]["id"],
        "nbf": _numeric_date(credential["issuanceDate"]),
    }
    if "expirationDate" in credential:
        claims["exp"] = _numeric_date(credential["expirationDate"])
    public = issuer_public_jwk(key)
    header = {
        "alg": SIGNING_ALG,
        "typ": "JWT",
        "kid": public["kid"],
        "jwk": {k: public[k] for k in ("kty", "crv", "x")},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # "EdDSA is deprecated via RFC 9864"
        return jwt.encode(header, claims, OKPKey.import_key(key), algorithms=[SIGNING_ALG])


def verify_credential(
    token: str,
    issuer_key: Ed25519PublicKey,
    now: datetime,
    revocation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The credential of a VC-JWT signed by ``issuer_key`` (pinned: the header's ``jwk`` is not
    trusted), checked: signature, algorithm, the JWT claims against the credential, not before
    ``nbf``, not after ``exp``, and not revoked in ``revocation`` (the issuer's list) when given.
    Raises ``CredentialError`` saying what failed."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise CredentialError("not a credential token of a sane size")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            decoded = jwt.decode(token, OKPKey.import_key(issuer_key), algorithms=ACCEPTED_ALGS)
    except (JoseError, ValueError) as err:
        raise CredentialError(f"signature or token invalid ({err})") from err
    claims = decoded.claims
    vc = claims.get("vc")
    if not isinstance(vc, dict):
        raise CredentialError("the token carries no credential (claim vc)")
    if "OpenBadgeCredential" not in vc.get("type", ()):
        raise CredentialError("not an OpenBadgeCredential")
    try:
        issuer_id = vc["issuer"]["id"]
        expected = {
            "iss": issuer_id,
            "jti": vc["id"],
            "sub": vc["credentialSubject"]["id"],
            "nbf": _numeric_date(vc["issuanceDate"]),
        }
    except (KeyError, TypeError, ValueError) as err:
        raise CredentialError(f"the credential lacks {err}") from err
    for name, value in expected.items():
        if claims.get(name) != value:
            raise CredentialError(f"claim {name} does not match the credential")
    moment = now.timestamp()
    if moment < expected["nbf"]:
        raise CredentialError("the credential is not valid yet")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, int) or moment >= exp):
        raise CredentialError("the credential has expired")
    if revocation is not None:
        status = vc.get("credentialStatus") or {}
        if status.get("type") != STATUS_TYPE or status.get("id") != revocation.get("id"):
            raise CredentialError("the revocation list is not this credential's")
        if is_revoked(revocation, vc["id"]):
            raise CredentialError("the credential has been revoked")
    return vc


# --- revocation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revocation:
    credential_id: str
    reason: str | None = None


def revocation_list(list_url: str, issuer_id: str, revoked: Iterable[Revocation]) -> dict[str, Any]:
    """The issuer's ``1EdTechRevocationList`` document served at ``list_url`` (the
    ``credentialStatus.id`` of its credentials): every revoked credential, with a reason."""
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in revoked:
        if item.credential_id in seen:
            continue
        seen.add(item.credential_id)
        entry: dict[str, Any] = {"id": item.credential_id}
        if item.reason:
            entry["revocationReason"] = item.reason[:MAX_TEXT_CHARS]
        entries.append(entry)
    return {"id": list_url, "issuer": issuer_id, "revokedCredentials": entries}


def revoke(
    current: Mapping[str, Any], credential_id: str, reason: str | None = None
) -> dict[str, Any]:
    """A new list with ``credential_id`` revoked (unchanged if it already is)."""
    revoked = [
        Revocation(e["id"], e.get("revocationReason"))
        for e in current.get("revokedCredentials", [])
    ]
    revoked.append(Revocation(credential_id, reason))
    return revocation_list(str(current["id"]), str(current["issuer"]), revoked)


def is_revoked(revocation: Mapping[str, Any], credential_id: str) -> bool:
    return any(e.get("id") == credential_id for e in revocation.get("revokedCredentials", []))
