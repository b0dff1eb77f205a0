"""Signing in to the pages through an OpenID Connect provider (/sign-in/oidc): a small provider started here, with
keys made here, and the service under gunicorn, spoken to over real HTTP with a cookie jar as a browser would."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests import databases
from tests.support import Server

CLIENT_ID = "weather-pages"
SIGNED_IN_AS = re.compile(r"Signed in as ([^<]+)<")


class Provider(ThreadingHTTPServer):
    """Discovery, authorize (signs in `email` at once and sends the browser back with a code), token, JWKS.

    Its token endpoint checks the PKCE verifier but takes a code again and again: refusing a
    replayed callback is the service's own job here.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ProviderHandler)
        # localhost, while the service is 127.0.0.1: another site, as a real provider is (SameSite rules apply).
        self.issuer = f"http://localhost:{self.server_address[1]}"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.email = "developer@acme.test"
        self.nonce: str | None = None  # with a value: the nonce every ID token carries, whatever was asked
        self.codes: dict[str, dict[str, str]] = {}
        self.authorize_queries: list[dict[str, str]] = []
        self.token_calls = 0
        self.interactive = False  # True: authorize shows a page with a link back, as a person would follow
        self.padding = 0  # bytes of white space after the discovery document

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": "test-key", "alg": "RS256", "use": "sig"}]}

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "u-1", "iat": now, "exp": now + 300}
        claims |= {"email": self.email, "email_verified": True, "nonce": self.nonce or nonce}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "test-key"})


class ProviderHandler(BaseHTTPRequestHandler):
    server: Provider

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any], padding: int = 0) -> None:
        data = json.dumps(body).encode() + b" " * padding
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        issuer = self.server.issuer
        if parts.path == "/.well-known/openid-configuration":
            self._json(200, {"issuer": issuer, "authorization_endpoint": issuer + "/authorize",
                             "token_endpoint": issuer + "/token", "jwks_uri": issuer + "/jwks"},
                       padding=self.server.padding)  # fmt: skip
        elif parts.path == "/jwks":
            self._json(200, self.server.jwks())
        elif parts.path == "/authorize":
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            self.server.authorize_queries.append(query)
            code = secrets.token_urlsafe(16)
            self.server.codes[code] = query
            back = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
            if self.server.interactive:  # a page of the provider's own where the person approves
                page = f'<!doctype html><title>Provider</title><a id="approve" href="{escape(back)}">Approve</a>'
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page.encode())))
                self.end_headers()
                self.wfile.write(page.encode())
                return
            self.send_response(302)
            self.send_header("Location", back)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:  # noqa: N802
        self.server.token_calls += 1
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
        asked = self.server.codes.get(form.get("code", ""))
        verifier = form.get("code_verifier", "").encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
        if (
            asked is None
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != CLIENT_ID
            or form.get("redirect_uri") != asked["redirect_uri"]
            or challenge != asked["code_challenge"]
        ):
            self._json(400, {"error": "invalid_grant"})
            return
        self._json(200, {"id_token": self.server.id_token(asked["nonce"]), "access_token": "x", "token_type": "Bearer"})


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    server = Provider()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def site(provider: Provider, seeded_db: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("oidc")
    databases.copy(seeded_db[0], folder / "metrics.db")
    settings = {"oidc_issuer": provider.issuer, "oidc_audience": CLIENT_ID, "oidc_jwks": provider.issuer + "/jwks"}
    with Server(folder / "metrics.db", **settings) as server:
        yield server


@pytest.fixture
def fresh(provider: Provider) -> Provider:
    provider.email, provider.nonce, provider.interactive, provider.padding = "developer@acme.test", None, False, 0
    return provider


def to_callback(site: Server, browser: requests.Session, next_path: str = "/account") -> str:
    """Start a sign-in and follow it to the provider; the callback URL the provider sends the browser to."""
    start = browser.get(site.url + "/sign-in/oidc", params={"next": next_path}, allow_redirects=False, timeout=30)
    assert start.status_code == 303, start.text[:500]
    at_provider = browser.get(start.headers["Location"], allow_redirects=False, timeout=30)
    assert at_provider.status_code == 302
    return at_provider.headers["Location"]


def signed_in_as(site: Server, browser: requests.Session) -> str | None:
    page = browser.get(site.url + "/account", allow_redirects=False, timeout=30)
    if page.status_code == 303:
        return None
    assert page.status_code == 200, page.text[:500]
    return SIGNED_IN_AS.search(page.text).group(1)  # type: ignore[union-attr]


def test_the_code_flow_with_pkce_signs_in_to_the_same_session_a_password_gives(site, fresh):
    browser = requests.Session()
    start = browser.get(site.url + "/sign-in/oidc", params={"next": "/account"}, allow_redirects=False, timeout=30)
    cookie = start.headers["Set-Cookie"]
    assert "weather_metrics_oidc=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/sign-in/oidc" in cookie and "Max-Age=600" in cookie
    asked = parse_qs(urlsplit(start.headers["Location"]).query)
    assert asked["code_challenge_method"] == ["S256"] and len(asked["code_challenge"][0]) == 43
    assert asked["client_id"] == [CLIENT_ID] and asked["redirect_uri"] == [site.url + "/sign-in/oidc/callback"]
    assert len(asked["state"][0]) >= 43 and len(asked["nonce"][0]) >= 43 and asked["state"] != asked["nonce"]
    assert "openid" in asked["scope"][0].split()

    landed = browser.get(start.headers["Location"], timeout=30)  # provider, then back to the callback
    assert landed.status_code == 200, landed.text[:500]
    assert urlsplit(landed.url).path == "/sign-in/oidc/callback"
    assert '<meta http-equiv="refresh" content="0;url=/account">' in landed.text
    assert signed_in_as(site, browser) == "developer@acme.test"
    assert "weather_metrics_oidc" not in browser.cookies  # spent
    # The same session as a password sign-in: signing out ends it.
    form = browser.get(site.url + "/account", timeout=30).text
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', form).group(1)  # type: ignore[union-attr]
    out = browser.post(site.url + "/sign-out", data={"csrf_token": token}, allow_redirects=False, timeout=30)
    assert out.status_code == 303
    assert signed_in_as(site, browser) is None


def test_a_forged_state_is_refused_and_the_real_callback_still_signs_in(site, fresh):
    browser = requests.Session()
    callback = to_callback(site, browser)
    query = parse_qs(urlsplit(callback).query)
    calls = fresh.token_calls
    for forged in ("forged-" + query["state"][0][7:], ""):
        url = site.url + "/sign-in/oidc/callback?" + urlencode({"code": query["code"][0], "state": forged})
        refused = browser.get(url, timeout=30)
        assert refused.status_code == 403, refused.text[:500]
        assert "does not belong to this browser" in refused.text and "text/html" in refused.headers["Content-Type"]
    assert fresh.token_calls == calls  # the code never left the service
    assert signed_in_as(site, browser) is None
    assert browser.get(callback, timeout=30).status_code == 200
    assert signed_in_as(site, browser) == "developer@acme.test"


def test_a_replayed_callback_or_code_is_refused(site, fresh):
    victim = requests.Session()
    callback = to_callback(site, victim)
    attacker = requests.Session()
    attacker.cookies.update(victim.cookies)  # even with the sign-in cookie copied
    assert victim.get(callback, timeout=30).status_code == 200
    replayed = attacker.get(callback, timeout=30)
    assert replayed.status_code == 400 and "already used" in replayed.text
    assert signed_in_as(site, attacker) is None

    # The code again, on a sign-in of the attacker's own: spent as well.
    fresh_callback = to_callback(site, attacker)
    state = parse_qs(urlsplit(fresh_callback).query)["state"][0]
    old_code = parse_qs(urlsplit(callback).query)["code"][0]
    again = attacker.get(site.url + "/sign-in/oidc/callback?" + urlencode({"code": old_code, "state": state}))
    assert again.status_code == 400 and "already used" in again.text
    assert signed_in_as(site, attacker) is None


def test_an_id_token_with_another_nonce_is_refused(site, fresh):
    fresh.nonce = "not-this-sign-in"
    browser = requests.Session()
    refused = browser.get(to_callback(site, browser), timeout=30)
    assert refused.status_code == 403 and "nonce" in refused.text
    assert signed_in_as(site, browser) is None


def test_refusals_without_a_sign_in_of_this_browser_an_unknown_email_or_a_provider_error(site, fresh):
    stranger = requests.Session()
    callback = to_callback(site, requests.Session())  # another browser's callback, without its cookie
    lost = stranger.get(callback, timeout=30)
    assert lost.status_code == 400 and "did not start in this browser" in lost.text
    tampered = requests.Session()
    tampered_callback = to_callback(site, tampered)
    for cookie in tampered.cookies:  # one character of the sealed value changed
        cookie.value = ("y" if cookie.value[0] == "x" else "x") + cookie.value[1:]  # type: ignore[operator,index]
    assert tampered.get(tampered_callback, timeout=30).status_code == 400

    fresh.email = "nobody@acme.test"
    browser = requests.Session()
    unknown = browser.get(to_callback(site, browser), timeout=30)
    assert unknown.status_code == 403 and "No active user" in unknown.text

    denied = browser.get(site.url + "/sign-in/oidc/callback?error=access_denied&state=x", timeout=30)
    assert denied.status_code == 403 and "access_denied" in denied.text
    assert signed_in_as(site, browser) is None


def test_the_sign_in_form_offers_single_sign_on_only_when_a_provider_is_set(site, service):
    page = requests.get(site.url + "/sign-in", params={"next": "/account"}, timeout=30)
    assert 'href="/sign-in/oidc?next=/account"' in page.text
    client = service().test_client()
    assert "/sign-in/oidc" not in client.get("/sign-in").get_data(as_text=True)
    assert client.get("/sign-in/oidc").status_code == 404
    assert client.get("/sign-in/oidc/callback?code=a&state=b").status_code == 404


def test_in_chromium_the_single_sign_on_button_ends_on_the_page_asked_for(browser, site, fresh, tmp_path):
    """The callback's page moves on by itself: a navigation of our own page, so the new SameSite=Strict
    session cookie goes with it (after a redirect from the provider's site it would not)."""
    from selenium.webdriver.common.by import By

    from tests.support import console_problems, wait_drawn
    from tests.test_pages_browser import DESKTOP, PHONE, accessibility_problems, full_page_screenshot, set_width

    browser.delete_all_cookies()
    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        browser.get(site.url + "/sign-in?next=/account")
        full_page_screenshot(browser, tmp_path / f"sign-in-sso-{width}.png", width)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        assert accessibility_problems(browser) == [], width
    console_problems(browser)
    fresh.interactive = True  # the way back starts on the provider's page: a navigation from another site
    browser.find_element(By.LINK_TEXT, "Sign in with your organization's single sign-on").click()
    wait_drawn(browser, lambda d: d.current_url.startswith(fresh.issuer + "/authorize"))
    browser.find_element(By.ID, "approve").click()
    wait_drawn(browser, lambda d: d.current_url == site.url + "/account")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Your account"
    assert "Signed in as developer@acme.test" in browser.find_element(By.CSS_SELECTOR, ".page-head").text
    assert browser.get_cookie("weather_metrics_session")["sameSite"] == "Strict"
    assert browser.get_cookie("weather_metrics_oidc") is None
    assert [p for p in console_problems(browser) if not p.startswith(fresh.issuer)] == []  # the provider's: its own


def test_the_pkce_challenge_is_rfc_7636s_and_the_sealed_sign_in_refuses_tampering_and_age():
    from weather_metrics.accounts.oidc import PendingSignIn, SignInRefused, new_sign_in, seal, unseal

    example = PendingSignIn("s", "n", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "/", 0)
    assert example.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636, appendix B
    key, now = "k" * 32, time.time()
    pending = new_sign_in("/dashboards", now)
    assert unseal(key, seal(key, pending), now + 599) == pending
    for value in (seal("x" * 32, pending), seal(key, pending) + "0", "", "a.b.c"):
        with pytest.raises(SignInRefused):
            unseal(key, value, now)
    with pytest.raises(SignInRefused):
        unseal(key, seal(key, pending), now + 601)  # ten minutes is all a sign-in may take


def test_a_provider_that_cannot_be_reached_or_answers_too_much_is_a_502_page(make_app, provider, tmp_path):
    from tests.support import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = {"oidc_issuer": nowhere, "oidc_audience": CLIENT_ID, "oidc_jwks": nowhere + "/jwks"}
    client = make_app(**settings).test_client()
    page = client.get("/sign-in/oidc")
    assert page.status_code == 502 and "could not be asked" in page.text and "text/html" in page.content_type

    provider.padding = 300 * 1024  # past the 256 KiB an answer of the provider may be
    try:
        settings = {"oidc_issuer": provider.issuer, "oidc_audience": CLIENT_ID, "oidc_jwks": provider.issuer + "/jwks"}
        client = make_app(database=databases.location(tmp_path / "second.db"), **settings).test_client()
        page = client.get("/sign-in/oidc")
    finally:
        provider.padding = 0
    assert page.status_code == 502 and "too large" in page.text
