"""POST /api/auth/login, /refresh, /logout: tokens, sessions, rate limits, settings and the create-org CLI."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests import databases
from tests.support import ROOT, TEST_JWT_SECRET, Server, http, login, seed_org
from weather_metrics.settings import SettingsError
from weather_metrics.store.models import Organization

BAD_LOGIN = "Email or password is incorrect"
ERROR_KEYS = {"code", "message", "details", "timestamp", "request_id"}
CODES = {400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 429: "RATE_LIMITED"}
CHEAP_ARGON2 = {"password_time_cost": 2, "password_memory_kib": 19456}


def assert_error(response: Any, status: int) -> dict[str, Any]:
    """The spec's error body, with the request id of the X-Request-ID header; returns the error."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == ERROR_KEYS
    assert error["code"] == CODES[status]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    assert datetime.fromisoformat(error["timestamp"]).tzinfo is not None
    assert error["request_id"] and error["request_id"] == response.headers["X-Request-ID"]
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    return error  # type: ignore[no-any-return]


def signing_secret(tmp_path: Path) -> str:
    return TEST_JWT_SECRET


def claims_of(token: str, secret: str) -> dict[str, Any]:
    return jwt.decode(token, secret, algorithms=["HS256"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    """A JWT with alg "none" and an empty signature, as an attacker would send it."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}."


@pytest.fixture
def app(service):  # type: ignore[no-untyped-def]
    """A copy of the shared seeded database (conftest's seeded_db)."""
    return service()


# --- login -----------------------------------------------------------------------------------------


def test_login_returns_a_bearer_pair_and_the_user(app, client, acme, tmp_path):
    developer = acme["developer"]
    response = client.post("/api/auth/login", json={"email": developer.user.email, "password": developer.password})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"]
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["user"]["id"] == developer.user.id
    assert body["user"]["email"] == "developer@acme.test"
    assert body["user"]["role"] == "developer"
    assert "password_hash" not in body["user"]

    secret = signing_secret(tmp_path)
    access = claims_of(body["access_token"], secret)
    assert set(access) == {"sub", "org", "role", "exp", "iat", "jti", "sid", "typ"}
    assert access["sub"] == developer.user.id
    assert access["org"] == developer.user.organization_id
    assert access["role"] == "developer"
    assert access["typ"] == "access"
    assert access["exp"] - access["iat"] == 15 * 60
    assert abs(access["iat"] - time.time()) < 60
    refresh = claims_of(body["refresh_token"], secret)
    assert refresh["typ"] == "refresh"
    assert refresh["sid"] == access["sid"]
    assert refresh["jti"] != access["jti"]
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"

    me = client.get(f"/api/users/{developer.user.id}", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.get_json()["email"] == "developer@acme.test"


def test_each_login_starts_its_own_session(client, acme, tmp_path):
    admin = acme["admin"]
    first = login(client, admin.user.email, admin.password)
    second = login(client, admin.user.email, admin.password)
    secret = signing_secret(tmp_path)
    assert claims_of(first["access_token"], secret)["sid"] != claims_of(second["access_token"], secret)["sid"]


def test_wrong_password_and_unknown_email_get_the_same_answer(client, acme):
    wrong_password = client.post(
        "/api/auth/login", json={"email": "developer@acme.test", "password": "not-the-password-1"}
    )
    unknown_email = client.post("/api/auth/login", json={"email": "nobody@acme.test", "password": "not-the-password-1"})
    first, second = assert_error(wrong_password, 401), assert_error(unknown_email, 401)
    assert first["message"] == second["message"] == BAD_LOGIN
    assert first["details"] == second["details"] == {}
    assert "access_token" not in wrong_password.get_json()


def test_email_is_case_insensitive(client, acme):
    developer = acme["developer"]
    tokens = login(client, "DEVELOPER@Acme.TEST", developer.password)
    assert tokens["user"]["id"] == developer.user.id


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param(b'{"email": "developer@acme.test", "password": ', set(), id="malformed-json"),
        pytest.param(b"", set(), id="empty-body"),
        pytest.param(b'["developer@acme.test", "secret"]', set(), id="json-array"),
        pytest.param(b'{"email": "developer@acme.test"}', {"password"}, id="missing-password"),
        pytest.param(b'{"password": "long-enough-pass"}', {"email"}, id="missing-email"),
        pytest.param(b"{}", {"email"}, id="no-fields"),
        pytest.param(
            b'{"email": "developer@acme.test", "password": "long-enough-pass", "remember": true}',
            {"remember"},
            id="unknown-field",
        ),
        pytest.param(
            b'{"email": "developer@acme.test", "password": "long-enough-pass", "sso_token": "x.y.z"}',
            {"sso_token"},
            id="sso-token-and-password",
        ),
        pytest.param(b'{"email": "not-an-email", "password": "long-enough-pass"}', {"email"}, id="bad-email"),
        pytest.param(b'{"email": "developer@acme.test", "password": 12345678901234}', {"password"}, id="int-password"),
        pytest.param(b'{"email": "developer@acme.test", "password": ""}', {"password"}, id="empty-password"),
    ],
)
def test_bad_login_bodies_are_400_with_field_details(client, acme, body, fields):
    response = client.post("/api/auth/login", data=body, content_type="application/json")
    error = assert_error(response, 400)
    assert set(error["details"]) == fields
    assert all(isinstance(message, str) and message for message in error["details"].values())


def test_deactivated_user_cannot_log_in_and_their_tokens_stop_working(client, acme):
    admin, developer = acme["admin"], acme["developer"]
    assert client.get("/api/users", headers=developer.headers).status_code == 200

    deactivated = client.put(f"/api/users/{developer.user.id}", headers=admin.headers, json={"active": False})
    assert deactivated.status_code == 200
    assert deactivated.get_json()["active"] is False

    assert_error(client.get("/api/users", headers=developer.headers), 401)
    refused = client.post("/api/auth/login", json={"email": developer.user.email, "password": developer.password})
    assert assert_error(refused, 401)["message"] == BAD_LOGIN
    assert_error(client.post("/api/auth/refresh", json={"refresh_token": developer.refresh_token}), 401)
    # The admin's own session is untouched.
    assert client.get("/api/users", headers=admin.headers).status_code == 200


# --- access tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
        pytest.param({"Authorization": "Basic YWRtaW46cGFzc3dvcmQ="}, id="basic"),
        pytest.param({"Authorization": "Bearer not-a-jwt"}, id="garbage"),
    ],
)
def test_requests_without_a_usable_token_are_401(client, acme, headers):
    assert_error(client.get("/api/users", headers=headers), 401)


def test_the_bearer_scheme_is_case_insensitive(client, acme):
    token = acme["developer"].headers["Authorization"][7:]
    assert client.get("/api/users", headers={"Authorization": f"bearer {token}"}).status_code == 200


@pytest.fixture
def developer_claims(acme, tmp_path) -> dict[str, Any]:
    """Claims of the seeded developer's live access token."""
    return claims_of(acme["developer"].headers["Authorization"][7:], signing_secret(tmp_path))


def test_a_token_crafted_with_the_real_secret_is_accepted(client, developer_claims, tmp_path):
    """The control for the forgeries below: crafting itself is not what they get refused for."""
    now = int(time.time())
    token = jwt.encode({**developer_claims, "iat": now, "exp": now + 60}, signing_secret(tmp_path), algorithm="HS256")
    assert client.get("/api/users", headers=bearer(token)).status_code == 200


def forged(kind: str, claims: dict[str, Any], secret: str) -> str:
    now = int(time.time())
    fresh = {**claims, "iat": now, "exp": now + 600}
    if kind == "expired":
        return jwt.encode({**claims, "iat": now - 3600, "exp": now - 60}, secret, algorithm="HS256")
    if kind == "alg-none":
        return unsigned_token(fresh)
    if kind == "wrong-key":
        return jwt.encode(fresh, "another-secret-that-is-long-enough-0123456789", algorithm="HS256")
    if kind == "hs512-header":
        return jwt.encode(fresh, secret, algorithm="HS512")
    if kind == "rs256-header":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(fresh, key, algorithm="RS256")
    if kind == "refresh-type":
        return jwt.encode({**fresh, "typ": "refresh"}, secret, algorithm="HS256")
    if kind == "missing-jti":
        return jwt.encode({k: v for k, v in fresh.items() if k != "jti"}, secret, algorithm="HS256")
    if kind == "missing-exp":
        return jwt.encode({k: v for k, v in fresh.items() if k != "exp"}, secret, algorithm="HS256")
    if kind == "tampered-role":
        header, _, signature = jwt.encode(fresh, secret, algorithm="HS256").split(".")
        return f"{header}.{b64(json.dumps({**fresh, 'role': 'admin'}).encode())}.{signature}"
    if kind == "unknown-session":
        return jwt.encode({**fresh, "sid": "0" * 32}, secret, algorithm="HS256")
    raise AssertionError(kind)


FORGED = {
    "expired": "Token has expired",
    "alg-none": "Token is invalid",
    "wrong-key": "Token is invalid",
    "hs512-header": "Token is invalid",
    "rs256-header": "Token is invalid",
    "refresh-type": "Not an access token",
    "missing-jti": "Token is invalid",
    "missing-exp": "Token is invalid",
    "tampered-role": "Token is invalid",
    "unknown-session": "Token is invalid",
}


@pytest.mark.parametrize(("kind", "message"), FORGED.items(), ids=list(FORGED))
def test_forged_or_expired_access_tokens_are_401(client, developer_claims, tmp_path, kind, message):
    token = forged(kind, developer_claims, signing_secret(tmp_path))
    assert assert_error(client.get("/api/users", headers=bearer(token)), 401)["message"] == message
    assert_error(client.post("/api/auth/logout", headers=bearer(token)), 401)


def test_the_real_refresh_token_is_not_an_access_token(client, acme):
    response = client.get("/api/users", headers=bearer(acme["developer"].refresh_token))
    assert "access" in assert_error(response, 401)["message"]


def test_leeway_accepts_a_token_expired_seconds_ago_unless_set_to_zero(make_app, tmp_path):
    app = make_app()
    developer = seed_org(app)["developer"]
    claims = claims_of(developer.headers["Authorization"][7:], signing_secret(tmp_path))
    now = int(time.time())
    just_expired = jwt.encode({**claims, "iat": now - 900, "exp": now - 2}, signing_secret(tmp_path), "HS256")
    assert app.test_client().get("/api/users", headers=bearer(just_expired)).status_code == 200

    strict = make_app(jwt_leeway_seconds=0)
    assert_error(strict.test_client().get("/api/users", headers=bearer(just_expired)), 401)


# --- refresh ---------------------------------------------------------------------------------------


def refresh(client: Any, token: str) -> Any:
    return client.post("/api/auth/refresh", json={"refresh_token": token})


def test_refresh_returns_a_new_pair_and_the_old_refresh_token_stops_working(client, acme, tmp_path):
    developer = acme["developer"]
    response = refresh(client, developer.refresh_token)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60
    assert body["refresh_token"] != developer.refresh_token
    secret = signing_secret(tmp_path)
    old, new = claims_of(developer.headers["Authorization"][7:], secret), claims_of(body["access_token"], secret)
    assert (new["sub"], new["sid"], new["typ"]) == (developer.user.id, old["sid"], "access")
    assert new["jti"] != old["jti"]
    assert client.get("/api/users", headers=bearer(body["access_token"])).status_code == 200

    assert_error(refresh(client, developer.refresh_token), 401)


def test_reusing_a_rotated_refresh_token_revokes_its_whole_family_only(client, acme):
    admin = acme["admin"]
    other_session = login(client, admin.user.email, admin.password)
    first = admin.refresh_token
    second = refresh(client, first).get_json()
    third = refresh(client, second["refresh_token"]).get_json()
    assert client.get("/api/users", headers=bearer(third["access_token"])).status_code == 200

    reuse = refresh(client, first)
    assert "already used" in assert_error(reuse, 401)["message"]

    assert_error(client.get("/api/users", headers=bearer(third["access_token"])), 401)
    assert_error(refresh(client, third["refresh_token"]), 401)
    assert_error(client.get("/api/users", headers=admin.headers), 401)
    # A second login of the same user is another family and keeps working.
    assert client.get("/api/users", headers=bearer(other_session["access_token"])).status_code == 200
    assert refresh(client, other_session["refresh_token"]).status_code == 200


def test_an_access_token_is_not_a_refresh_token(client, acme):
    access_token = acme["developer"].headers["Authorization"][7:]
    assert_error(refresh(client, access_token), 401)
    # Refused before it could count as a reuse: the session goes on.
    assert client.get("/api/users", headers=acme["developer"].headers).status_code == 200


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param(b"{}", {"refresh_token"}, id="missing"),
        pytest.param(b'{"refresh_token": 42}', {"refresh_token"}, id="not-a-string"),
        pytest.param(b'{"refresh_token": ""}', {"refresh_token"}, id="empty"),
        pytest.param(b'{"refresh_token": "a.b.c", "scope": "all"}', {"scope"}, id="unknown-field"),
        pytest.param(b"{not json", set(), id="malformed-json"),
    ],
)
def test_bad_refresh_bodies_are_400(client, body, fields):
    error = assert_error(client.post("/api/auth/refresh", data=body, content_type="application/json"), 400)
    assert set(error["details"]) == fields


def race(attempt: Any, threads: int = 8, timeout: float = 30) -> list[int]:
    """Run `attempt` in `threads` threads released at once; the statuses they got."""
    barrier = threading.Barrier(threads, timeout=timeout)
    statuses: list[int] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        status = attempt()
        with lock:
            statuses.append(status)

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout)
    assert not any(worker.is_alive() for worker in workers), "a refresh did not finish"
    return sorted(statuses)


def test_concurrent_refreshes_of_one_token_in_threads_exactly_one_succeeds(app, acme):
    token = acme["developer"].refresh_token
    statuses = race(lambda: refresh(app.test_client(), token).status_code)
    assert statuses == [200] + [401] * 7


def run_create_org(database: Path, name: str, email: str) -> subprocess.CompletedProcess[str]:
    """`flask --app app create-org` in a subprocess, as an operator runs it."""
    env = {
        **os.environ,
        "WEATHER_METRICS_DATABASE": databases.location(database),
        "WEATHER_METRICS_JWT_SECRET": TEST_JWT_SECRET,
        **cheap_env(),
    }
    env["WEATHER_METRICS_CONFIG"] = os.devnull
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "create-org", name, "--admin", email],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def cli_create_org(database: Path, name: str, email: str) -> str:
    """The admin's one-time password printed by a successful create-org."""
    done = run_create_org(database, name, email)
    assert done.returncode == 0, done.stderr
    match = re.search(r"^password\s+(\S+)$", done.stdout, re.MULTILINE)
    assert match, done.stdout
    return match.group(1)


def cheap_env() -> dict[str, str]:
    return {f"WEATHER_METRICS_{key.upper()}": str(value) for key, value in CHEAP_ARGON2.items()}


def test_concurrent_refreshes_against_the_real_server_exactly_one_succeeds(tmp_path):
    database = tmp_path / "server.db"
    password = cli_create_org(database, "Acme", "a@acme.test")
    with Server(database) as server:
        status, _, tokens = http("POST", server.url + "/api/auth/login", {"email": "a@acme.test", "password": password})
        assert status == 200, tokens

        def attempt() -> int:
            return http("POST", server.url + "/api/auth/refresh", {"refresh_token": tokens["refresh_token"]})[0]

        statuses = race(attempt)
        assert statuses == [200] + [401] * 7
        # The seven late copies count as reuse, so the session they share is over.
        status, _, body = http("GET", server.url + "/api/users", headers=bearer(tokens["access_token"]))
        assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"


# --- logout ----------------------------------------------------------------------------------------


def test_logout_ends_the_session_at_once(client, acme):
    developer = acme["developer"]
    other = login(client, developer.user.email, developer.password)
    response = client.post("/api/auth/logout", headers=developer.headers)
    assert response.status_code == 204
    assert response.get_data() == b""

    assert_error(client.get("/api/users", headers=developer.headers), 401)
    assert_error(client.post("/api/auth/logout", headers=developer.headers), 401)
    assert_error(refresh(client, developer.refresh_token), 401)
    # Only that session ends: the same user's other login still works.
    assert client.get("/api/users", headers=bearer(other["access_token"])).status_code == 200


def test_logout_needs_an_access_token(client, acme):
    assert_error(client.post("/api/auth/logout"), 401)
    assert_error(client.post("/api/auth/logout", headers=bearer(acme["developer"].refresh_token)), 401)
    assert refresh(client, acme["developer"].refresh_token).status_code == 200


# --- rate limits -----------------------------------------------------------------------------------


def attempt_login(client: Any, email: str, password: str = "wrong-password-123", ip: str = "10.0.0.1") -> Any:
    return client.post("/api/auth/login", json={"email": email, "password": password}, environ_base={"REMOTE_ADDR": ip})


def assert_rate_limited(response: Any, limit: int) -> None:
    assert_error(response, 429)
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > time.time()
    assert 0 < int(response.headers["Retry-After"]) <= 60
    # The spec's name for the same wait.
    assert response.headers["X-RateLimit-Retry-After"] == response.headers["Retry-After"]


@pytest.mark.usefixtures("one_minute_window")
def test_login_is_limited_per_account(make_app):
    app = make_app(login_rate_limit_per_account="3 per minute")
    developer = seed_org(app)["developer"]
    client = app.test_client()
    for _ in range(3):
        assert_error(attempt_login(client, "ghost@acme.test"), 401)
    assert_rate_limited(attempt_login(client, "GHOST@acme.test"), 3)
    assert_rate_limited(attempt_login(client, "ghost@acme.test", ip="10.0.0.2"), 3)
    # Another account from the same IP still gets in.
    assert attempt_login(client, developer.user.email, developer.password).status_code == 200


@pytest.mark.usefixtures("one_minute_window")
def test_login_is_limited_per_ip(make_app):
    app = make_app(login_rate_limit_per_ip="3 per minute")
    developer = seed_org(app)["developer"]
    client = app.test_client()
    for n in range(3):
        assert_error(attempt_login(client, f"user{n}@acme.test", ip="10.0.0.9"), 401)
    # Even the right password: this IP has used its attempts.
    assert_rate_limited(attempt_login(client, developer.user.email, developer.password, ip="10.0.0.9"), 3)
    assert attempt_login(client, developer.user.email, developer.password, ip="10.0.0.10").status_code == 200


@pytest.mark.usefixtures("one_minute_window")
def test_api_requests_are_limited_per_user(make_app):
    app = make_app(api_rate_limit="5 per minute")
    acme = seed_org(app)
    client = app.test_client()
    for remaining in range(4, -1, -1):
        response = client.get("/api/users", headers=acme["admin"].headers)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
        assert int(response.headers["X-RateLimit-Reset"]) > time.time()
    limited = client.get("/api/users", headers=acme["admin"].headers)
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "RATE_LIMITED"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Retry-After"] == limited.headers["Retry-After"]
    # Per user, not per IP: the manager on the same address is not limited.
    assert client.get("/api/users", headers=acme["manager"].headers).status_code == 200


@pytest.mark.usefixtures("one_minute_window")
def test_a_rate_limited_api_request_keeps_its_request_id(make_app):
    app = make_app(api_rate_limit="1 per minute")
    admin = seed_org(app)["admin"]
    client = app.test_client()
    assert client.get("/api/users", headers=admin.headers).status_code == 200
    limited = client.get("/api/users", headers={**admin.headers, "X-Request-ID": "trace-0001"})
    assert limited.status_code == 429
    assert limited.headers["X-Request-ID"] == "trace-0001"
    assert limited.get_json()["error"]["request_id"] == "trace-0001"


# --- settings --------------------------------------------------------------------------------------


def test_a_short_jwt_secret_is_refused_at_start(make_app):
    with pytest.raises(SettingsError, match="jwt_secret"):
        make_app(jwt_secret="x" * 31)


def test_a_configured_jwt_secret_signs_the_tokens(make_app, tmp_path):
    secret = "s" * 32
    app = make_app(jwt_secret=secret)
    developer = seed_org(app)["developer"]
    assert claims_of(developer.headers["Authorization"][7:], secret)["sub"] == developer.user.id


def test_start_up_refuses_a_missing_secret(make_app):
    with pytest.raises(SettingsError, match="setting 'jwt_secret': required"):
        make_app(jwt_secret="")


def test_tokens_survive_a_restart_with_the_same_secret(make_app):
    first = make_app()
    developer = seed_org(first)["developer"]
    first.extensions["weather_metrics"].close()
    client = make_app().test_client()
    assert client.get("/api/users", headers=developer.headers).status_code == 200
    assert refresh(client, developer.refresh_token).status_code == 200


def test_create_org_prints_a_password_that_logs_in_as_admin(make_app, tmp_path):
    password = cli_create_org(tmp_path / "metrics.db", "Beta", "Boss@Beta.test")
    app = make_app()
    client = app.test_client()
    tokens = login(client, "boss@beta.test", password)
    assert tokens["user"]["role"] == "admin"
    assert tokens["user"]["email"] == "boss@beta.test"
    listed = client.get("/api/users", headers=bearer(tokens["access_token"])).get_json()
    assert [user["email"] for user in listed["users"]] == ["boss@beta.test"]


def test_create_org_with_a_taken_email_fails_clearly(make_app, tmp_path):
    cli_create_org(tmp_path / "metrics.db", "Beta", "boss@beta.test")
    again = run_create_org(tmp_path / "metrics.db", "Gamma", "BOSS@beta.test")
    assert again.returncode != 0
    assert "boss@beta.test already exists" in again.stderr
    assert "password" not in again.stdout
    app = make_app()
    with app.app_context():
        assert [org.name for org in Organization.select()] == ["Beta"]  # no half-made Gamma


def test_create_org_runs_from_the_test_cli_runner(app):
    result = app.test_cli_runner().invoke(args=["create-org", "Beta", "--admin", "boss@beta.test"])
    assert result.exit_code == 0, repr(result.exception)
    password = re.search(r"^password\s+(\S+)$", result.output, re.MULTILINE)
    assert password, result.output
    assert login(app.test_client(), "boss@beta.test", password.group(1))["user"]["role"] == "admin"
