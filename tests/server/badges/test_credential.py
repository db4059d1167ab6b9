"""Open Badges 3.0 credentials: valid against 1EdTech's published schema (a verbatim copy, see
fixtures/README.md), signed with joserfc and verified with jwcrypto (another library), revoked
through the 1EdTech revocation list, and the issuer key file."""

from __future__ import annotations

import copy
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jsonschema import Draft201909Validator, FormatChecker
from jwcrypto import jwk as jw_jwk
from jwcrypto import jws as jw_jws
from jwcrypto import jwt as jw_jwt

from server.badges.credential import (
    OB_SCHEMA,
    STATUS_TYPE,
    CredentialError,
    IssuerProfile,
    Revocation,
    build_credential,
    is_revoked,
    issuer_key_id,
    issuer_public_jwk,
    load_issuer_key,
    new_issuer_key_file,
    revocation_list,
    revoke,
    sign_credential,
    verify_credential,
)
from server.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = json.loads((FIXTURES / "ob_v3p0_achievementcredential_schema.json").read_text("utf-8"))
ISSUED = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
ISSUER = IssuerProfile(
    id="https://badges.example.kz/issuer",
    name="«Елбасы медалі» бағдарламасы",
    url="https://badges.example.kz",
)
STATUS_URL = "https://badges.example.kz/badges/revocations"
CRED_ID = "urn:uuid:5f0c6a52-9f3e-4c1e-9a55-0d7a1c2e8b11"


def credential(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "credential_id": CRED_ID,
        "issuer": ISSUER,
        "level": "gold",
        "subject_id": "urn:uuid:0e5b3c1a-7d1f-4b7e-8a0e-3f9b2d6c4a21",
        "issued_at": ISSUED,
        "achievement_base": "https://badges.example.kz/badges/achievements",
        "status_list_url": STATUS_URL,
    }
    args.update(kw)
    return build_credential(**args)


def validator() -> Draft201909Validator:
    Draft201909Validator.check_schema(SCHEMA)
    return Draft201909Validator(SCHEMA, format_checker=FormatChecker())


# --- the data model against 1EdTech's schema -------------------------------------------------


@pytest.mark.parametrize("level", ["bronze", "silver", "gold"])
@pytest.mark.parametrize("language", ["kk", "ru", "en"])
def test_credentials_validate_against_the_published_schema(level, language):
    c = credential(level=level, language=language)
    errors = sorted(validator().iter_errors(c), key=str)
    assert errors == [], [e.message for e in errors]
    assert c["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert c["credentialSubject"]["type"] == ["AchievementSubject"]
    assert c["credentialSubject"]["achievement"]["id"].endswith("/" + level)
    assert c["credentialSchema"] == [{"id": OB_SCHEMA, "type": "1EdTechJsonSchemaValidator2019"}]
    assert c["credentialStatus"] == {"id": STATUS_URL, "type": STATUS_TYPE}
    # DateTimeZ (the validator here has no date-time format checker)
    assert c["issuanceDate"] == "2026-11-30T09:30:00Z"


def test_a_named_recipient_validates_too():
    c = credential(recipient_name="Айгүл Нұрланқызы")
    assert list(validator().iter_errors(c)) == []
    assert c["credentialSubject"]["identifier"][0]["identityType"] == "name"
    assert "identifier" not in credential()["credentialSubject"]  # least data by default


def test_the_schema_check_is_not_vacuous():
    # the copied schema refuses what OB 3.0 refuses: so the test above can fail
    v = validator()
    for field in ["issuer", "issuanceDate", "credentialSubject", "name", "@context"]:
        c = credential()
        del c[field]
        assert list(v.iter_errors(c)), field
    c = credential()
    del c["credentialSubject"]["achievement"]["criteria"]
    assert list(v.iter_errors(c))
    c = credential()
    c["issuanceDate"] = 20261130  # (date-time formats are not checked: no rfc3339 validator)
    assert list(v.iter_errors(c))
    c = credential()
    c["credentialSubject"]["identifier"] = [{"type": "IdentityObject", "hashed": False}]
    assert list(v.iter_errors(c))


def test_times_must_be_aware_and_inputs_bounded():
    with pytest.raises(CredentialError):
        credential(issued_at=datetime(2026, 11, 30, 9, 30))
    with pytest.raises(CredentialError):
        credential(level="platinum")
    with pytest.raises(CredentialError):
        credential(subject_id="")
    with pytest.raises(CredentialError):
        credential(recipient_name="x" * 5000)
    with pytest.raises(CredentialError):
        credential(language="de")


# --- signing and verification ----------------------------------------------------------------


def test_signed_with_joserfc_verified_with_jwcrypto():
    key = Ed25519PrivateKey.generate()
    c = credential()
    token = sign_credential(c, key)
    public = jw_jwk.JWK.from_pyca(key.public_key())
    checked = jw_jwt.JWT(jwt=token, key=public, algs=["EdDSA"], expected_type="JWS")
    header = json.loads(checked.header)
    claims = json.loads(checked.claims)
    assert header["alg"] == "EdDSA" and header["typ"] == "JWT"
    assert header["kid"] == issuer_key_id(key)
    assert claims["vc"] == c
    assert claims["iss"] == ISSUER.id
    assert claims["jti"] == CRED_ID
    assert claims["sub"] == c["credentialSubject"]["id"]
    assert claims["nbf"] == int(ISSUED.timestamp())
    # the credential inside the token still validates
    assert list(validator().iter_errors(claims["vc"])) == []


def test_jwcrypto_refuses_another_key_and_a_changed_payload():
    key = Ed25519PrivateKey.generate()
    token = sign_credential(credential(), key)
    other = jw_jwk.JWK.from_pyca(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(jw_jws.InvalidJWSSignature):
        jw_jwt.JWT(jwt=token, key=other, algs=["EdDSA"])
    head, payload, sig = token.split(".")
    forged = forge(
        payload,
        lambda claims: claims["vc"]["credentialSubject"]["achievement"].update(
            id="https://badges.example.kz/badges/achievements/gold-plus"
        ),
    )
    public = jw_jwk.JWK.from_pyca(key.public_key())
    with pytest.raises(jw_jws.InvalidJWSSignature):
        jw_jwt.JWT(jwt=f"{head}.{forged}.{sig}", key=public, algs=["EdDSA"])


def forge(payload: str, change) -> str:
    import base64

    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    claims = json.loads(raw)
    change(claims)
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()


def test_verify_credential_round_trip_and_refusals():
    key = Ed25519PrivateKey.generate()
    c = credential()
    token = sign_credential(c, key)
    later = ISSUED + timedelta(days=1)
    assert verify_credential(token, key.public_key(), later) == c
    # another issuer's key
    with pytest.raises(CredentialError, match="signature"):
        verify_credential(token, Ed25519PrivateKey.generate().public_key(), later)
    # a changed payload
    head, payload, sig = token.split(".")
    forged = forge(payload, lambda claims: claims["vc"].update(name="Gold"))
    with pytest.raises(CredentialError, match="signature"):
        verify_credential(f"{head}.{forged}.{sig}", key.public_key(), later)
    # before it was issued
    with pytest.raises(CredentialError, match="not valid yet"):
        verify_credential(token, key.public_key(), ISSUED - timedelta(seconds=1))
    # garbage and oversized input
    with pytest.raises(CredentialError):
        verify_credential("not.a.token", key.public_key(), later)
    with pytest.raises(CredentialError):
        verify_credential("a" * 70_000, key.public_key(), later)


def test_claims_must_match_the_credential_even_when_signed():
    # a token whose JWT claims disagree with its credential is refused though its signature holds
    from joserfc import jwt
    from joserfc.jwk import OKPKey

    key = Ed25519PrivateKey.generate()
    c = credential()
    claims = {
        "vc": c,
        "iss": "https://elsewhere.example",
        "jti": c["id"],
        "sub": c["credentialSubject"]["id"],
        "nbf": int(ISSUED.timestamp()),
    }
    token = jwt.encode({"alg": "Ed25519"}, claims, OKPKey.import_key(key), algorithms=["Ed25519"])
    with pytest.raises(CredentialError, match="claim iss"):
        verify_credential(token, key.public_key(), ISSUED + timedelta(days=1))


def test_an_expiring_credential():
    key = Ed25519PrivateKey.generate()
    c = credential()
    c["expirationDate"] = "2027-11-30T09:30:00Z"
    token = sign_credential(c, key)
    assert verify_credential(token, key.public_key(), datetime(2027, 1, 1, tzinfo=UTC)) == c
    with pytest.raises(CredentialError, match="expired"):
        verify_credential(token, key.public_key(), datetime(2027, 11, 30, 9, 30, tzinfo=UTC))
    claims = json.loads(jw_jwt.JWT(jwt=token, key=jw_jwk.JWK.from_pyca(key.public_key())).claims)
    assert claims["exp"] == int(datetime(2027, 11, 30, 9, 30, tzinfo=UTC).timestamp())


def test_the_public_jwk_verifies_in_jwcrypto():
    key = Ed25519PrivateKey.generate()
    published = issuer_public_jwk(key)
    assert "d" not in published  # never the private part
    assert published["kid"] == issuer_key_id(key.public_key())
    token = sign_credential(credential(), key)
    jw_jwt.JWT(jwt=token, key=jw_jwk.JWK(**published), algs=["EdDSA"])


# --- revocation ------------------------------------------------------------------------------


def test_revocation_list_and_revoke():
    key = Ed25519PrivateKey.generate()
    c = credential()
    token = sign_credential(c, key)
    now = ISSUED + timedelta(days=2)
    empty = revocation_list(STATUS_URL, ISSUER.id, [])
    assert empty == {"id": STATUS_URL, "issuer": ISSUER.id, "revokedCredentials": []}
    assert verify_credential(token, key.public_key(), now, empty) == c
    revoked = revoke(empty, CRED_ID, "awarded by mistake")
    assert empty["revokedCredentials"] == []  # the old list is not changed
    assert is_revoked(revoked, CRED_ID)
    assert not is_revoked(revoked, "urn:uuid:other")
    with pytest.raises(CredentialError, match="revoked"):
        verify_credential(token, key.public_key(), now, revoked)
    # revoking twice keeps one entry
    again = revoke(revoked, CRED_ID, "again")
    assert again["revokedCredentials"] == [
        {"id": CRED_ID, "revocationReason": "awarded by mistake"}
    ]
    # another issuer's list does not speak for this credential
    foreign = revocation_list("https://other.example/revocations", ISSUER.id, [])
    with pytest.raises(CredentialError, match="not this credential's"):
        verify_credential(token, key.public_key(), now, foreign)
    # the list is plain JSON
    json.dumps(again)


def test_revocation_list_of_many():
    items = [Revocation(f"urn:uuid:{i}", None) for i in range(100)] + [Revocation("urn:uuid:3")]
    doc = revocation_list(STATUS_URL, ISSUER.id, items)
    assert len(doc["revokedCredentials"]) == 100
    assert "revocationReason" not in doc["revokedCredentials"][0]


# --- the key file ----------------------------------------------------------------------------


def test_issuer_key_file(tmp_path: Path):
    path = tmp_path / "issuer.pem"
    kid = new_issuer_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_issuer_key(path)
    assert issuer_key_id(key) == kid
    with pytest.raises(FileExistsError):
        new_issuer_key_file(path)
    path.chmod(0o644)
    with pytest.raises(CredentialError, match="readable by others"):
        load_issuer_key(path)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    bad.chmod(0o600)
    with pytest.raises(CredentialError, match="not a PEM"):
        load_issuer_key(bad)
    with pytest.raises(CredentialError):
        load_issuer_key(tmp_path / "missing.pem")


def test_issuer_key_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "issuer.pem"
    assert main(["badges", "issuer-key", "new", "--out", str(path)]) == 0
    out = capsys.readouterr().out
    assert issuer_key_id(load_issuer_key(path)) in out
    before = path.read_bytes()
    assert main(["badges", "issuer-key", "new", "--out", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--out" in err
    assert path.read_bytes() == before  # never overwritten


def test_a_signed_credential_is_deterministic_for_the_same_input():
    # Ed25519 signatures are deterministic: the same credential and key give the same token
    key = Ed25519PrivateKey.generate()
    c = credential()
    assert sign_credential(c, key) == sign_credential(copy.deepcopy(c), key)
