"""SSO login: OIDC ID tokens signed with keys made here, checked against a JWKS file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support import seed_org
from weather_metrics.settings import SettingsError

ISSUER = "https://idp.test"
AUDIENCE = "weather-metrics"
ERROR_KEYS = {"code", "message", "details", "timestamp", "request_id"}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_jwks(path: Path, *keys: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"keys": list(keys)}))
    return path


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if alg.startswith("RS") else ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@pytest.fixture
def jwks_path(tmp_path, rsa_key, ec_key) -> Path:
    return write_jwks(
        tmp_path / "jwks.json", public_jwk(rsa_key, "rsa-1", "RS256"), public_jwk(ec_key, "ec-1", "ES256")
    )


@pytest.fixture
def sso_app(make_app, jwks_path):  # type: ignore[no-untyped-def]
    return make_app(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks=str(jwks_path))


@pytest.fixture
def acme(sso_app):  # type: ignore[no-untyped-def]
    return seed_org(sso_app)


def id_claims(**changes: Any) -> dict[str, Any]:
    """Claims of a valid ID token for the seeded developer; None removes a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "idp-user-42",
        "iat": now,
        "exp": now + 300,
        "email": "developer@acme.test",
        "email_verified": True,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """HS256 by hand: PyJWT itself refuses a PEM public key as an HMAC secret."""
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def sso_login(client: Any, token: str) -> Any:
    return client.post("/api/auth/login", json={"sso_token": token})


def assert_refused(response: Any, status: int = 401) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    error = body["error"]
    assert error["code"] == {400: "VALIDATION_ERROR", 401: "UNAUTHORIZED"}[status]
    assert error["message"]
    assert datetime.fromisoformat(error["timestamp"]).tzinfo is not None
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error  # type: ignore[no-any-return]


def assert_logged_in_as(response: Any, client: Any, member: Any) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["refresh_token"]
    assert body["user"]["id"] == member.user.id
    me = client.get(f"/api/users/{member.user.id}", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.get_json()["email"] == member.user.email


def test_a_valid_rs256_id_token_logs_in_the_user_with_that_email(sso_app, acme, rsa_key):
    client = sso_app.test_client()
    token = jwt.encode(id_claims(email="Developer@ACME.test"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert_logged_in_as(sso_login(client, token), client, acme["developer"])


def test_a_valid_es256_id_token_logs_in_too(sso_app, acme, ec_key):
    client = sso_app.test_client()
    token = jwt.encode(id_claims(email="admin@acme.test"), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    response = sso_login(client, token)
    assert_logged_in_as(response, client, acme["admin"])
    assert response.get_json()["user"]["role"] == "admin"


def tampered(case: str, rsa_key: Any, other_rsa_key: Any, ec_key: Any) -> str:
    """An ID token that must not log anyone in."""
    now = int(time.time())
    kid = {"kid": "rsa-1"}
    if case == "payload-swapped":
        header, _, signature = jwt.encode(id_claims(), rsa_key, algorithm="RS256", headers=kid).split(".")
        return f"{header}.{b64(json.dumps(id_claims(email='admin@acme.test')).encode())}.{signature}"
    if case == "signature-stripped":
        header, payload, _ = jwt.encode(id_claims(), rsa_key, algorithm="RS256", headers=kid).split(".")
        return f"{header}.{payload}."
    if case == "other-key-same-kid":
        return jwt.encode(id_claims(), other_rsa_key, algorithm="RS256", headers=kid)
    if case == "rsa-signed-under-ec-kid":
        return jwt.encode(id_claims(), rsa_key, algorithm="RS256", headers={"kid": "ec-1"})
    if case == "unknown-kid":
        return jwt.encode(id_claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-2"})
    if case == "no-kid-two-keys":
        return jwt.encode(id_claims(), rsa_key, algorithm="RS256")
    if case == "hs256-with-public-pem":
        pem = rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return sign_hs256(id_claims(), pem, "rsa-1")
    if case == "alg-none":
        header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
        return f"{header}.{b64(json.dumps(id_claims()).encode())}."
    if case == "not-a-jwt":
        return "definitely-not-a-jwt"
    claims = {
        "wrong-issuer": id_claims(iss="https://evil.test"),
        "issuer-with-trailing-slash": id_claims(iss=ISSUER + "/"),
        "wrong-audience": id_claims(aud="someone-else"),
        "audience-list-without-us": id_claims(aud=["someone-else", "another"]),
        "expired": id_claims(iat=now - 3600, exp=now - 120),
        "missing-exp": id_claims(exp=None),
        "missing-iat": id_claims(iat=None),
        "missing-iss": id_claims(iss=None),
        "not-yet-valid": id_claims(nbf=now + 3600),
        "email-of-no-user": id_claims(email="stranger@acme.test"),
        "no-email": id_claims(email=None),
        "email-not-verified": id_claims(email_verified=False),
    }[case]
    return jwt.encode(claims, rsa_key, algorithm="RS256", headers=kid)


# Each case and what its refusal says, so it is refused for that reason and no other.
TAMPERED = {
    "payload-swapped": "signature verification failed",
    "signature-stripped": "signature verification failed",
    "other-key-same-kid": "signature verification failed",
    "rsa-signed-under-ec-kid": "alg value is not allowed",
    "unknown-kid": "unknown key",
    "no-kid-two-keys": "unknown key",
    "hs256-with-public-pem": "alg value is not allowed",
    "alg-none": "alg value is not allowed",
    "not-a-jwt": "malformed",
    "wrong-issuer": "invalid issuer",
    "issuer-with-trailing-slash": "invalid issuer",
    "wrong-audience": "audience",
    "audience-list-without-us": "audience",
    "expired": "expired",
    "missing-exp": 'missing the "exp" claim',
    "missing-iat": 'missing the "iat" claim',
    "missing-iss": 'missing the "iss" claim',
    "not-yet-valid": "not yet valid",
    "email-of-no-user": "no active user",
    "no-email": "no email",
    "email-not-verified": "not verified",
}


@pytest.mark.parametrize(("case", "reason"), TAMPERED.items(), ids=list(TAMPERED))
def test_tampered_or_unacceptable_id_tokens_are_401(sso_app, acme, rsa_key, other_rsa_key, ec_key, case, reason):
    response = sso_login(sso_app.test_client(), tampered(case, rsa_key, other_rsa_key, ec_key))
    assert reason in assert_refused(response)["message"].lower()
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "access_token" not in response.get_json()


def test_the_only_key_of_a_jwks_needs_no_kid(make_app, tmp_path, rsa_key):
    path = write_jwks(tmp_path / "one.json", public_jwk(rsa_key, "rsa-1", "RS256"))
    app = make_app(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks=str(path))
    acme = seed_org(app)
    client = app.test_client()
    assert_logged_in_as(
        sso_login(client, jwt.encode(id_claims(), rsa_key, algorithm="RS256")), client, acme["developer"]
    )


def test_a_deactivated_user_cannot_log_in_with_sso(sso_app, acme, rsa_key):
    client = sso_app.test_client()
    developer = acme["developer"]
    off = client.put(f"/api/users/{developer.user.id}", headers=acme["admin"].headers, json={"active": False})
    assert off.status_code == 200
    token = jwt.encode(id_claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert_refused(sso_login(client, token))


def test_sso_tokens_are_refused_when_sso_is_not_configured(make_app, rsa_key):
    app = make_app()
    seed_org(app)
    token = jwt.encode(id_claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    error = assert_refused(sso_login(app.test_client(), token), 400)
    assert set(error["details"]) == {"sso_token"}


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        pytest.param({"oidc_issuer": ISSUER}, "oidc_audience", id="issuer-only"),
        pytest.param({"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE}, "oidc_jwks", id="no-jwks"),
        pytest.param({"oidc_audience": AUDIENCE, "oidc_jwks": "jwks.json"}, "oidc_issuer", id="no-issuer"),
    ],
)
def test_half_configured_sso_is_refused_at_start(make_app, settings, missing):
    with pytest.raises(SettingsError, match=f"'{missing}'"):
        make_app(**settings)


def test_a_jwks_path_that_does_not_exist_is_refused_at_start(make_app, tmp_path):
    with pytest.raises(SettingsError, match="oidc_jwks"):
        make_app(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks=str(tmp_path / "missing.json"))


def test_a_jwks_file_that_is_not_json_is_refused_at_start(make_app, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(SettingsError, match="oidc_jwks"):
        make_app(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks=str(path))


@pytest.mark.parametrize("content", [{"keys": []}, {}], ids=["empty-keys", "no-keys-member"])
def test_a_jwks_file_without_keys_is_refused_naming_the_setting(make_app, tmp_path, content):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SettingsError, match="oidc_jwks"):
        make_app(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks=str(path))


@pytest.mark.usefixtures("one_minute_window")
def test_sso_logins_of_different_people_from_one_ip_are_not_one_account(make_app, jwks_path, rsa_key):
    app = make_app(
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks=str(jwks_path),
        login_rate_limit_per_account="2 per minute",
    )
    seed_org(app)
    client = app.test_client()
    for role in ("admin", "manager", "developer"):
        token = jwt.encode(id_claims(email=f"{role}@acme.test"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
        assert sso_login(client, token).status_code == 200, role
