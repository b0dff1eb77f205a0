"""Who may call what on /api: every route of app.url_map against every kind of caller.

The table ROUTES declares, for each route, the status each identity gets. Path ids come
from Acme's data, so the outsider (admin of another organization) asks for ids that are
not theirs and must get 404. A route added to /api without a row here fails the tests.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask

from tests.support import TEST_JWT_SECRET, Member, assert_api_error, seed_org
from weather_metrics import accounts

SIGNED_IN = ("admin", "manager", "developer", "outsider")
ANONYMOUS = ("no_token", "expired", "alg_none", "wrong_key", "refresh_as_access")
IDENTITIES = SIGNED_IN + ANONYMOUS


@dataclass
class World:
    """Two seeded organizations on one app, and the means to mint tokens for a cell."""

    app: Flask
    secret: str
    acme: dict[str, Member]
    other: dict[str, Member]
    target: Any  # an Acme developer that none of the callers is
    counter: list[int] = field(default_factory=lambda: [0])

    def unique(self, stem: str) -> str:
        self.counter[0] += 1
        return f"{stem}-{self.counter[0]}-{uuid.uuid4().hex[:8]}"

    def session(self, user: Any) -> dict[str, Any]:
        """A fresh login session (no password hashing), so a logout in one cell spares the others."""
        with self.app.app_context():
            return self.app.extensions["weather_metrics"].tokens.start_session(user).as_dict()

    def admin_claims(self) -> dict[str, Any]:
        """The claims of a real, live access token of Acme's admin."""
        token = self.session(self.acme["admin"].user)["access_token"]
        return jwt.decode(token, self.secret, algorithms=["HS256"])

    def headers_for(self, identity: str) -> dict[str, str]:
        if identity == "no_token":
            return {}
        if identity in ("admin", "manager", "developer"):
            token = self.session(self.acme[identity].user)["access_token"]
        elif identity == "outsider":
            token = self.session(self.other["admin"].user)["access_token"]
        elif identity == "refresh_as_access":
            token = self.session(self.acme["admin"].user)["refresh_token"]
        else:
            token = forge(identity, self.admin_claims(), self.secret)
        return {"Authorization": f"Bearer {token}"}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forge(kind: str, claims: dict[str, Any], secret: str) -> str:
    """A token that must be refused, built from otherwise valid claims."""
    now = int(time.time())
    if kind == "expired":
        return jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, secret, algorithm="HS256")
    if kind == "alg_none":
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    if kind == "wrong_key":
        return jwt.encode(claims, "not-the-service-secret-" + "k" * 48, algorithm="HS256")
    raise ValueError(kind)


def build_world(app: Flask, tmp_path: Path) -> World:
    acme, other = seed_org(app, "Acme"), seed_org(app, "Other")
    with app.app_context():
        target, _ = accounts.create_user(
            acme["admin"].user.organization_id,
            "target@acme.test",
            "Target",
            "developer",
            app.extensions["weather_metrics"].passwords,
        )
    secret = TEST_JWT_SECRET
    return World(app, secret, acme, other, target)


# What a cell needs before its request: path parameters (Acme's ids) and a JSON body.
Prepare = Callable[[World], tuple[dict[str, str], dict[str, Any] | None]]


def _org(world: World) -> str:
    return str(world.acme["admin"].user.organization_id)


def _team(world: World) -> str:
    with world.app.app_context():
        return str(accounts.create_team(_org(world), world.unique("team"), "").id)


def nothing(world: World) -> tuple[dict[str, str], None]:
    return {}, None


def login_body(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    admin = world.acme["admin"]
    return {}, {"email": admin.user.email, "password": admin.password}


def refresh_body(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"refresh_token": world.session(world.acme["admin"].user)["refresh_token"]}


def new_user(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"email": world.unique("user") + "@example.test", "name": "New", "role": "developer"}


def target_user(world: World) -> tuple[dict[str, str], None]:
    return {"user_id": world.target.id}, None


def rename_target(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {"user_id": world.target.id}, {"name": world.unique("name")}


def new_team(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"name": world.unique("team"), "description": "made by the matrix"}


def fresh_team(world: World) -> tuple[dict[str, str], None]:
    return {"team_id": _team(world)}, None


def fresh_team_new_member(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {"team_id": _team(world)}, {"user_id": world.target.id, "role": "member"}


def fresh_membership(world: World) -> tuple[dict[str, str], None]:
    team_id = _team(world)
    with world.app.app_context():
        accounts.add_member(accounts.find_team(_org(world), team_id), world.target, "member")
    return {"team_id": team_id, "user_id": world.target.id}, None


def new_key(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"name": world.unique("key")}


def fresh_key(world: World) -> tuple[dict[str, str], None]:
    with world.app.app_context():
        key, _ = accounts.create_api_key(_org(world), world.unique("key"), world.acme["admin"].user.id)
    return {"key_id": key.id}, None


@dataclass(frozen=True)
class Row:
    admin: int
    manager: int
    developer: int
    outsider: int
    prepare: Prepare = nothing
    anonymous: int = 401  # no token, expired token and each forged token

    def expected(self, identity: str) -> int:
        return self.anonymous if identity in ANONYMOUS else int(getattr(self, identity))


# fmt: off
ROUTES: dict[tuple[str, str], Row] = {
    #                                                   admin manager developer outsider
    ("POST", "/api/auth/login"):                         Row(200, 200, 200, 200, login_body, anonymous=200),
    ("POST", "/api/auth/refresh"):                       Row(200, 200, 200, 200, refresh_body, anonymous=200),
    ("POST", "/api/auth/logout"):                        Row(204, 204, 204, 204),
    ("GET", "/api/users"):                               Row(200, 200, 200, 200),
    ("POST", "/api/users"):                              Row(201, 403, 403, 201, new_user),
    ("GET", "/api/users/<user_id>"):                     Row(200, 200, 403, 404, target_user),
    ("PUT", "/api/users/<user_id>"):                     Row(200, 403, 403, 404, rename_target),
    ("GET", "/api/teams"):                               Row(200, 200, 200, 200),
    ("POST", "/api/teams"):                              Row(201, 201, 403, 201, new_team),
    ("DELETE", "/api/teams/<team_id>"):                  Row(204, 204, 403, 404, fresh_team),
    ("POST", "/api/teams/<team_id>/members"):            Row(201, 201, 403, 404, fresh_team_new_member),
    ("DELETE", "/api/teams/<team_id>/members/<user_id>"): Row(204, 204, 403, 404, fresh_membership),
    ("GET", "/api/keys"):                                Row(200, 403, 403, 200),
    ("POST", "/api/keys"):                               Row(201, 403, 403, 201, new_key),
    ("DELETE", "/api/keys/<key_id>"):                    Row(204, 403, 403, 404, fresh_key),
}
# fmt: on

PLACEHOLDER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def api_routes(app: Flask) -> list[tuple[str, str]]:
    """Every (method, rule) the app serves under /api/, HEAD and OPTIONS aside."""
    found = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    return sorted(found)


def fill(rule: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], rule)


def acme_fingerprints(world: World) -> list[str]:
    """Strings that only Acme's data contains: none may reach the outsider."""
    people = [member.user for member in world.acme.values()] + [world.target]
    return [_org(world)] + [u.id for u in people] + [u.email for u in people]


def run_cell(world: World, identity: str, method: str, rule: str, row: Row) -> str | None:
    """One request; a description of what went wrong, or None."""
    values, body = row.prepare(world)
    path = fill(rule, values)
    headers = world.headers_for(identity)
    response = world.app.test_client().open(path, method=method, headers=headers, json=body)
    want = row.expected(identity)
    where = f"{identity:>17} {method} {rule}"
    if response.status_code != want:
        return f"{where}: expected {want}, got {response.status_code} {response.get_data(as_text=True)[:200]}"
    if not response.headers.get("X-Request-ID"):
        return f"{where}: no X-Request-ID header"
    if want >= 300:
        try:
            assert_api_error(response, want)
        except AssertionError as exc:
            return f"{where}: error body: {exc}"
    elif identity == "outsider" and row.anonymous == 401:  # a route that acts for the token's user
        text = response.get_data(as_text=True)
        leaked = [s for s in acme_fingerprints(world) if s in text]
        if leaked:
            return f"{where}: the outsider saw Acme's data {leaked}"
    return None


def test_the_table_covers_every_api_route_and_nothing_else(app):
    served = set(api_routes(app))
    assert served, "no /api routes found: is the blueprint registered?"
    missing = sorted(served - set(ROUTES))
    stale = sorted(set(ROUTES) - served)
    assert not missing, f"add a row to ROUTES for each new /api route: {missing}"
    assert not stale, f"rows in ROUTES for routes that no longer exist: {stale}"


@pytest.mark.parametrize("identity", IDENTITIES)
def test_authorization_matrix(app, tmp_path, identity):
    world = build_world(app, tmp_path)
    problems = []
    for method, rule in api_routes(app):
        row = ROUTES.get((method, rule))
        if row is None:
            problems.append(f"{method} {rule}: no row in ROUTES")
            continue
        problem = run_cell(world, identity, method, rule, row)
        if problem:
            problems.append(problem)
    assert not problems, "\n".join(problems)


def test_crafted_tokens_differ_from_a_valid_one_only_in_their_defect(app, tmp_path):
    """Control for the forged cells: the same claims, signed properly and unexpired, are accepted."""
    world = build_world(app, tmp_path)
    claims = world.admin_claims()
    now = int(time.time())
    valid = jwt.encode({**claims, "iat": now, "exp": now + 600}, world.secret, algorithm="HS256")
    response = app.test_client().get("/api/users", headers={"Authorization": f"Bearer {valid}"})
    assert response.status_code == 200
    assert response.get_json()["pagination"]["total"] == 4  # Acme's admin sees all of Acme


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Basic YWRtaW46cGFzcw==", "Token {token}", "{token}", "Bearer not.a.jwt"],
)
def test_malformed_authorization_headers_get_401(app, tmp_path, header):
    world = build_world(app, tmp_path)
    token = world.session(world.acme["admin"].user)["access_token"]
    response = app.test_client().get("/api/users", headers={"Authorization": header.format(token=token)})
    assert_api_error(response, 401)


def test_the_bearer_scheme_is_case_insensitive(app, tmp_path):
    # RFC 7235: the authentication scheme is case-insensitive.
    world = build_world(app, tmp_path)
    token = world.session(world.acme["admin"].user)["access_token"]
    response = app.test_client().get("/api/users", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


def test_a_token_missing_a_required_claim_gets_401(app, tmp_path):
    world = build_world(app, tmp_path)
    claims = world.admin_claims()
    for name in ("sub", "org", "role", "exp", "iat", "jti", "sid", "typ"):
        partial = {k: v for k, v in claims.items() if k != name}
        token = jwt.encode(partial, world.secret, algorithm="HS256")
        response = app.test_client().get("/api/users", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert_api_error(response, 401)


def test_a_logged_out_access_token_stops_working_at_once(app, tmp_path):
    world = build_world(app, tmp_path)
    client = app.test_client()
    headers = world.headers_for("admin")
    assert client.get("/api/users", headers=headers).status_code == 200
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert_api_error(client.get("/api/users", headers=headers), 401)
