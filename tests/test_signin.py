"""Signing in to the pages: the session cookie, forms other sites cannot send, where sign-in leads, and every way
a browser session ends (it is one of the API's login sessions). In Chromium: test_pages_browser.py."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from flask import Blueprint

from tests.support import TEST_JWT_SECRET, login
from weather_metrics.accounts.logins import secret_hash
from weather_metrics.store.models import AuthSession
from weather_metrics.web.pages.csrf import protect_forms
from weather_metrics.web.pages.sessions import current_viewer, signed_in

SESSION, SIGN_IN = "weather_metrics_session", "weather_metrics_sign_in"
TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
STRICT = "default-src 'none'; script-src 'self'"  # the start of the pages' policy


def form_token(client: Any, path: str = "/sign-in", **kwargs: Any) -> str:
    """The csrf_token of the first form of a page (its cookie stays in `client`)."""
    page = client.get(path, **kwargs)
    assert page.status_code == 200, page.text[:500]
    found = TOKEN.search(page.text)
    assert found, page.text[:2000]
    return found.group(1)


def sign_in(client: Any, member: Any, password: str | None = None, **form: str) -> Any:
    base_url = form.pop("base_url", "http://localhost")
    token = form_token(client, base_url=base_url)
    body = {"email": member.user.email, "password": password or member.password, "csrf_token": token, **form}
    return client.post("/sign-in", data=body, base_url=base_url)


def bearer(client: Any, member: Any) -> dict[str, str]:
    """Headers of a fresh API login: the seeded ones may have expired in a long run of the suite."""
    return {"Authorization": "Bearer " + login(client, member.user.email, member.password)["access_token"]}


def cookie_header(response: Any, name: str) -> dict[str, str]:
    """The attributes of the Set-Cookie of `name` (lower-case keys; a flag maps to '')."""
    for header in response.headers.getlist("Set-Cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        key, _, value = first.partition("=")
        if key == name:
            found = {"value": value}
            for attribute in attributes:
                k, _, v = attribute.partition("=")
                found[k.lower()] = v
            return found
    raise AssertionError(f"no Set-Cookie {name}: {response.headers.getlist('Set-Cookie')}")


def signed_in_as(client: Any, base_url: str = "http://localhost") -> str | None:
    """The email /account shows, None when it sends the browser to sign in."""
    page = client.get("/account", base_url=base_url)
    if page.status_code == 303:
        assert page.headers["Location"] == "/sign-in"
        return None
    assert page.status_code == 200, page.text[:500]
    return re.search(r"Signed in as ([^<]+)<", page.text).group(1)  # type: ignore[union-attr]


def session_row(client: Any) -> AuthSession:
    return AuthSession.get_by_id(secret_hash(TEST_JWT_SECRET, client.get_cookie(SESSION).value))


# --- the cookie ----------------------------------------------------------------------------------


def test_signing_in_sets_an_httponly_strict_cookie_of_a_random_secret_stored_only_as_its_hash(service, acme):
    app = service(browser_session_days=3)
    client = app.test_client()
    developer = acme["developer"]
    response = sign_in(client, developer)
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    cookie = cookie_header(response, SESSION)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie["value"])  # 256 random bits
    assert cookie["httponly"] == "" and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert "secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    assert "domain" not in cookie  # this host only
    assert cookie["max-age"] == str(3 * 86400)
    assert cookie_header(response, SIGN_IN)["max-age"] == "0"  # the sign-in cookie has done its work
    with app.app_context():
        row = session_row(client)
        assert row.user_id == developer.user.id
        assert row.expires_at - row.created_at == 3 * 86400
        assert AuthSession.get_or_none(AuthSession.id == cookie["value"]) is None  # never the secret itself
    account = client.get("/account")
    assert signed_in_as(client) == developer.user.email
    assert cookie["value"] not in account.text  # no page holds the secret
    assert account.headers["Cache-Control"] == "no-store" and "Cookie" in account.headers["Vary"]
    assert account.headers["Content-Security-Policy"].startswith(STRICT)
    for shown in ("Developer", "Acme", developer.user.email):
        assert shown in account.text


def test_a_new_jwt_secret_signs_browsers_out_too(service, make_app, acme):
    client = service().test_client()
    assert sign_in(client, acme["developer"]).status_code == 303
    renewed = make_app(jwt_secret="a-renewed-signing-secret-" + "r" * 40).test_client()
    renewed.set_cookie(SESSION, client.get_cookie(SESSION).value)
    assert signed_in_as(renewed) is None
    assert signed_in_as(client) == acme["developer"].user.email  # the old secret still finds it


@pytest.mark.parametrize(
    ("settings", "request_options"),
    [
        ({}, {"base_url": "https://localhost"}),  # the service's own TLS
        ({"trusted_proxies": 1}, {"headers": {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.0.0.7"}}),
    ],
    ids=["tls", "behind-a-proxy"],
)
def test_the_cookie_is_secure_when_the_request_came_over_tls(service, acme, settings, request_options):
    app = service(**settings)
    client = app.test_client()
    page = client.get("/sign-in", **request_options)
    assert "secure" in cookie_header(page, SIGN_IN)
    token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    form = {"email": acme["admin"].user.email, "password": acme["admin"].password, "csrf_token": token}
    response = client.post("/sign-in", data=form, **request_options)
    assert response.status_code == 303, response.text[:500]
    assert cookie_header(response, SESSION)["secure"] == ""


def test_a_proxy_header_is_not_believed_without_trusted_proxies(service, acme):
    client = service().test_client()
    forged = {"X-Forwarded-Proto": "https"}
    page = client.get("/sign-in", headers=forged)
    assert "secure" not in cookie_header(page, SIGN_IN)
    token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    form = {"email": acme["admin"].user.email, "password": acme["admin"].password, "csrf_token": token}
    response = client.post("/sign-in", data=form, headers=forged)
    assert response.status_code == 303 and "secure" not in cookie_header(response, SESSION)


def test_no_page_that_names_the_viewer_or_holds_a_form_token_is_cached(service, acme):
    """Error pages of URLs outside the pages' routes too: their header names the viewer and holds the sign-out token."""
    client = service().test_client()
    form = client.get("/sign-in")  # its token belongs to this browser's sign-in cookie
    assert form.headers["Cache-Control"] == "no-store" and "Cookie" in form.headers["Vary"]
    developer = acme["developer"]
    assert sign_in(client, developer).status_code == 303
    for method, path, status in (("GET", "/no-such-page", 404), ("GET", "/sign-out", 405), ("PUT", "/account", 405)):
        page = client.open(path, method=method, headers={"Accept": "text/html"})
        assert page.status_code == status and developer.user.name in page.text and TOKEN.search(page.text)
        assert page.headers["Cache-Control"] == "no-store" and "Cookie" in page.headers["Vary"], (method, path)
        assert page.headers["Content-Security-Policy"].startswith(STRICT)
    client.set_cookie(SESSION, "x" * 43)  # a cookie of no live session is taken back there too
    page = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert page.status_code == 404 and cookie_header(page, SESSION)["max-age"] == "0"


# --- forms from elsewhere ------------------------------------------------------------------------


def test_a_sign_in_without_its_token_or_with_another_browser_s_is_refused(service, acme):
    app = service()
    client, other = app.test_client(), app.test_client()
    admin = acme["admin"]
    form = {"email": admin.user.email, "password": admin.password}
    refused = client.post("/sign-in", data=form)  # no token, no cookie: a login CSRF
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    assert "The form had no security token" in refused.text
    assert '<a href="/sign-in">Back to the sign-in page</a>' in refused.text
    assert '<a href="/sign-in">Sign in</a>' in refused.text  # a link in the header, not "you are here"
    assert refused.headers["Content-Security-Policy"].startswith(STRICT)
    theirs = form_token(other)
    form_token(client)
    for token in (theirs, "0" * 64, theirs[:-1], "é" * 64):
        wrong = client.post("/sign-in", data={**form, "csrf_token": token})
        assert wrong.status_code == 403, token
        assert "security token is not this browser" in wrong.text
    cookieless = app.test_client()
    assert "sent no cookie" in cookieless.post("/sign-in", data={**form, "csrf_token": theirs}).text
    assert client.get_cookie(SESSION) is None
    assert sign_in(client, admin).status_code == 303


CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://localhost.evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"},
]


def test_a_form_from_another_site_is_refused_even_with_the_right_token(service, acme):
    client = service().test_client()
    assert sign_in(client, acme["manager"]).status_code == 303
    token = form_token(client, "/account")
    for headers in CROSS_SITE:
        refused = client.post("/sign-out", data={"csrf_token": token}, headers=headers)
        assert refused.status_code == 403 and "did not come from a page of this service" in refused.text, headers
    assert signed_in_as(client) == acme["manager"].user.email  # still signed in
    same_site = client.post(
        "/sign-out", data={"csrf_token": token}, headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    )
    assert same_site.status_code == 303
    assert signed_in_as(client) is None


def test_behind_a_proxy_a_form_s_origin_is_checked_against_the_host_not_a_forwarded_host(service, acme):
    """nginx passes the browser's Host and any X-Forwarded-Host a client sends: only the Host names this service."""
    client = service(trusted_proxies=1).test_client()
    assert sign_in(client, acme["manager"]).status_code == 303
    token = form_token(client, "/account")
    forged = {"X-Forwarded-Host": "evil.example", "Origin": "http://evil.example"}
    refused = client.post("/sign-out", data={"csrf_token": token}, headers=forged)
    assert refused.status_code == 403 and "not from http://localhost" in refused.text
    assert signed_in_as(client) == acme["manager"].user.email


def test_an_https_origin_reaching_a_plain_http_service_says_to_trust_the_proxy(service, acme):
    client = service().test_client()
    token = form_token(client)
    refused = client.post("/sign-in", data={"csrf_token": token}, headers={"Origin": "https://localhost"})
    assert refused.status_code == 403 and "set trusted_proxies" in refused.text


def test_once_signed_in_only_the_session_s_token_is_accepted(service, acme):
    """A sign-in cookie planted from elsewhere (a sibling subdomain) cannot stand in for the session's token."""
    app = service()
    client, attacker = app.test_client(), app.test_client()
    assert sign_in(client, acme["developer"]).status_code == 303
    planted_token = form_token(attacker)
    client.set_cookie(SIGN_IN, attacker.get_cookie(SIGN_IN).value)
    assert client.post("/sign-out", data={"csrf_token": planted_token}).status_code == 403
    assert signed_in_as(client) == acme["developer"].user.email
    # Scripts send the session's token in a header instead of a field.
    token = form_token(client, "/account")
    assert client.post("/sign-out", headers={"X-CSRF-Token": token}).status_code == 303
    assert signed_in_as(client) is None


def test_the_check_guards_any_blueprint_that_asks_and_signed_in_checks_the_role(service, acme):
    """What the organization pages build on: protect_forms() on their blueprint, @signed_in(role) on a view."""
    app = service()
    admin_pages = Blueprint("admin_pages", __name__)
    protect_forms(admin_pages)

    @admin_pages.route("/admin-only", methods=["GET", "POST"])
    @signed_in("admin")
    def admin_only() -> str:
        login = current_viewer()
        return f"{login.user.email} {login.organization.name} {login.role}"

    app.register_blueprint(admin_pages)
    client = app.test_client()
    away = client.get("/admin-only?x=1")
    assert away.status_code == 303 and away.headers["Location"] == "/sign-in?next=/admin-only?x%3D1"
    assert sign_in(client, acme["developer"]).status_code == 303
    assert client.get("/admin-only").status_code == 403
    admin = app.test_client()
    assert sign_in(admin, acme["admin"], next="/admin-only?x=1").headers["Location"] == "/admin-only?x=1"
    assert admin.get("/admin-only").text == f"{acme['admin'].user.email} Acme admin"
    assert admin.post("/admin-only").status_code == 403  # a POST there needs the token too
    assert admin.post("/admin-only", data={"csrf_token": form_token(admin, "/account")}).status_code == 200


# --- where sign-in leads -------------------------------------------------------------------------


ELSEWHERE = [
    "//evil.example/",
    "https://evil.example/",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "javascript:alert(1)",
    " //evil.example",
    "evil.example",
    "///evil.example",
    "/" + "a" * 2001,
]


def test_sign_in_never_leads_to_another_site(service, acme):
    app = service()
    for target in ELSEWHERE:
        client = app.test_client()
        page = client.get("/sign-in", query_string={"next": target})
        assert 'name="next"' not in page.text, target  # dropped at once, not carried in the form
        response = sign_in(client, acme["developer"], next=target)
        assert response.status_code == 303 and response.headers["Location"] == "/account", target


def test_sign_in_leads_back_to_the_page_asked_for(service, acme):
    client = service().test_client()
    away = client.get("/account")
    assert away.status_code == 303
    response = sign_in(client, acme["developer"], next="/tools/get_forecast?period=7d")
    assert response.headers["Location"] == "/tools/get_forecast?period=7d"
    # Signed in already: the form goes straight on.
    again = client.get("/sign-in?next=/?period=90d")
    assert again.status_code == 303 and again.headers["Location"] == "/?period=90d"


def test_the_header_s_sign_in_link_comes_back_to_the_page(client):
    page = client.get("/?period=7d")
    assert 'href="/sign-in?next=/?period%3D7d">Sign in</a>' in page.text
    assert "Set-Cookie" not in page.headers  # reading the statistics sets no cookie


# --- what the form says --------------------------------------------------------------------------


def test_wrong_email_wrong_password_and_a_disabled_account_read_the_same(service, acme):
    app = service()
    client = app.test_client()
    admin, developer = acme["admin"], acme["developer"]
    disabled = client.put(f"/api/users/{developer.user.id}", json={"active": False}, headers=bearer(client, admin))
    assert disabled.status_code == 200
    answers = [
        sign_in(client, admin, password="not-the-password-1"),
        sign_in(client, developer),  # the right password of a disabled account
    ]
    ghost = client.post(
        "/sign-in",
        data={"email": "ghost@acme.test", "password": "whatever-password", "csrf_token": form_token(client)},
    )
    for answer in [*answers, ghost]:
        assert answer.status_code == 401 and answer.mimetype == "text/html"
        assert "Email or password is incorrect." in answer.text
        assert 'role="alert"' in answer.text
        assert SESSION not in answer.headers.get("Set-Cookie", "")
    assert ghost.text.replace("ghost@acme.test", "E") == answers[0].text.replace(admin.user.email, "E")


FIELD_PROBLEMS = [
    ("", "a-password-here", "email", "Enter your email address."),
    ("not-an-email", "a-password-here", "email", "Enter an email address such as name@example.com."),
    ("a@" + "b" * 260 + ".test", "a-password-here", "email", "Enter an email address such as"),
    ("ada@acme.test", "", "password", "Enter your password."),
    ("ada@acme.test", "p" * 129, "password", "at most 128 characters"),
]


def test_a_field_the_api_would_refuse_is_named_on_the_form(client):
    token = form_token(client)
    for email, password, field, message in FIELD_PROBLEMS:
        answer = client.post("/sign-in", data={"email": email, "password": password, "csrf_token": token})
        assert answer.status_code == 400 and message in answer.text, (email, password)
        assert f'aria-describedby="{field}-problem"' in answer.text and 'aria-invalid="true"' in answer.text
        assert f'value="{email}"' in answer.text  # what was typed stays; the password never does
        assert not password or password not in answer.text


def test_a_password_login_with_sso_configured_answers_as_the_api_does(make_app, tmp_path, acme):
    """SSO signs people in through the API with ID tokens; their passwords keep working here as there."""
    from tests.test_sso import AUDIENCE, ISSUER

    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": [{"kty": "oct", "k": "AAAA", "kid": "k"}]}')
    app = make_app(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks=str(jwks))
    from tests.support import seed_org

    people = seed_org(app, "Initech")
    client = app.test_client()
    member = people["developer"]
    api = client.post("/api/auth/login", json={"email": member.user.email, "password": member.password})
    assert api.status_code == 200
    assert sign_in(client, member).status_code == 303
    api_refused = client.post("/api/auth/login", json={"email": member.user.email, "password": "wrong-password-1"})
    page_refused = sign_in(app.test_client(), member, password="wrong-password-1")
    assert api_refused.status_code == page_refused.status_code == 401
    assert api_refused.json["error"]["message"] + "." in page_refused.text


# --- how a browser session ends ------------------------------------------------------------------


def _api_tokens_of_browser_session(app: Any, client: Any) -> dict[str, str]:
    """Access and refresh tokens of the browser's own login session (as the API would hold them)."""
    with app.app_context():
        row = session_row(client)
        return app.extensions["weather_metrics"].tokens._pair(row.user, row).as_dict()


def test_api_logout_of_the_session_ends_it_in_the_browser(service, acme):
    app = service()
    client = app.test_client()
    sign_in(client, acme["developer"])
    tokens = _api_tokens_of_browser_session(app, client)
    assert signed_in_as(client) == acme["developer"].user.email
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert signed_in_as(client) is None


def test_a_reused_refresh_token_revokes_the_session_in_the_browser_too(service, acme):
    app = service()
    client = app.test_client()
    sign_in(client, acme["developer"])
    tokens = _api_tokens_of_browser_session(app, client)
    assert client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
    assert signed_in_as(client) == acme["developer"].user.email
    assert client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert signed_in_as(client) is None


def test_deactivation_and_a_new_password_end_browser_sessions(service, acme):
    app = service()
    admin, developer, manager = acme["admin"], acme["developer"], acme["manager"]
    browser, other = app.test_client(), app.test_client()
    sign_in(browser, developer)
    sign_in(other, manager)
    changed = browser.put(f"/api/users/{developer.user.id}", json={"active": False}, headers=bearer(browser, admin))
    assert changed.status_code == 200
    away = browser.get("/account")
    assert away.status_code == 303 and cookie_header(away, SESSION)["max-age"] == "0"  # the dead cookie is taken back
    assert browser.get_cookie(SESSION) is None
    assert signed_in_as(other) == manager.user.email
    new_password = {"password": "a brand new passphrase", "current_password": manager.password}
    assert (
        other.put(f"/api/users/{manager.user.id}", json=new_password, headers=bearer(other, manager)).status_code == 200
    )
    assert signed_in_as(other) is None


def test_an_expired_session_ends_and_signing_out_ends_the_session_row(service, acme):
    app = service()
    client = app.test_client()
    sign_in(client, acme["developer"])
    with app.app_context():
        row = session_row(client)
        AuthSession.update(expires_at=int(time.time()) - 1).where(AuthSession.id == row.id).execute()
    assert signed_in_as(client) is None
    sign_in(client, acme["developer"])
    with app.app_context():
        row = session_row(client)
    # Signing in again from the same browser ended nothing but the old session; signing out ends this one.
    out = client.post("/sign-out", data={"csrf_token": form_token(client, "/account")})
    assert out.status_code == 303 and out.headers["Location"] == "/sign-in?signed_out=1"
    assert cookie_header(out, SESSION)["max-age"] == "0"
    with app.app_context():
        assert AuthSession.get_by_id(row.id).revoked_reason == "logout"
    assert "You are signed out." in client.get(out.headers["Location"]).text


def test_signing_in_again_ends_the_browser_s_previous_session(service, acme):
    app = service()
    client = app.test_client()
    sign_in(client, acme["developer"])
    with app.app_context():
        first = session_row(client).id
    manager = acme["manager"]
    form = {"email": manager.user.email, "password": manager.password, "csrf_token": form_token(client, "/account")}
    assert client.post("/sign-in", data=form).status_code == 303
    with app.app_context():
        assert AuthSession.get_by_id(first).revoked_at is not None
    assert signed_in_as(client) == acme["manager"].user.email


def test_a_made_up_cookie_is_nobody(client):
    for value in ("x" * 43, "", "a" * 4000, "é", "' OR 1=1 --"):
        client.set_cookie(SESSION, value)
        assert signed_in_as(client) is None, value
        page = client.get("/")
        assert page.status_code == 200 and "Sign in</a>" in page.text


# --- the rate limit ------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_minute_window")
def test_sign_in_attempts_spend_the_api_s_login_allowance_per_account(service, acme):
    app = service(login_rate_limit_per_account="3 per minute")
    client = app.test_client()
    admin = acme["admin"]
    assert login(client, admin.user.email, admin.password)  # one through the API
    for _ in range(2):
        assert sign_in(client, admin, password="wrong-password-1").status_code == 401
    limited = sign_in(client, admin)  # even the right password: this account has used its attempts
    assert limited.status_code == 429 and limited.mimetype == "text/html"
    assert "Too many sign-in attempts" in limited.text and 0 < int(limited.headers["Retry-After"]) <= 60
    through_the_api = client.post("/api/auth/login", json={"email": admin.user.email, "password": admin.password})
    assert through_the_api.status_code == 429
    assert sign_in(client, acme["manager"]).status_code == 303  # another account still gets in


@pytest.mark.usefixtures("one_minute_window")
def test_sign_in_attempts_spend_the_api_s_login_allowance_per_address(service, acme):
    app = service(login_rate_limit_per_ip="2 per minute")
    client = app.test_client()
    address = {"REMOTE_ADDR": "10.0.0.9"}
    token = form_token(client)
    for n in range(2):
        form = {"email": f"user{n}@acme.test", "password": "wrong-password-1", "csrf_token": token}
        assert client.post("/sign-in", data=form, environ_base=address).status_code == 401
    manager = acme["manager"]
    body = {"email": manager.user.email, "password": manager.password}
    assert client.post("/api/auth/login", json=body, environ_base=address).status_code == 429
    assert client.post("/api/auth/login", json=body, environ_base={"REMOTE_ADDR": "10.0.0.10"}).status_code == 200
