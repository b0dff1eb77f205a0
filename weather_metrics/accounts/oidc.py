"""Signing in through the OpenID Connect provider: the authorization-code flow with PKCE (S256), state and nonce.

A sign-in starts with a random state, nonce and PKCE verifier, sealed (HMAC with jwt_secret)
into a short-lived cookie of the browser that started it; the provider sends the browser back
with a code and the state. The callback needs the cookie and the same state, spends the state
and the code once (`redeem`: a replayed callback is refused in every worker process), swaps
the code and verifier for an ID token at the provider's token endpoint, and checks that token
as the API's SSO does (accounts/sso.py), with the nonce. The provider's endpoints come from its
discovery document, `<oidc_issuer>/.well-known/openid-configuration`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from peewee import IntegrityError

from weather_metrics.accounts.sso import loopback_http
from weather_metrics.core.errors import ServiceError
from weather_metrics.store.db import write_transaction
from weather_metrics.store.models import OidcRedemption

SIGN_IN_SECONDS = 600  # from leaving for the provider to coming back
DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_SECONDS = 3600  # the provider's endpoints are looked up again after this
MAX_ANSWER_BYTES = 256 * 1024  # a discovery document or token answer larger than this is refused
TIMEOUT_SECONDS = 10
USER_AGENT = "weather-metrics-sign-in/1"


class SignInRefused(ServiceError):
    """The callback does not complete a sign-in this browser started; the message is safe to show."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ProviderUnavailable(ServiceError):
    """The provider could not be reached or answered something unusable (a 502 page)."""


@dataclass(frozen=True)
class PendingSignIn:
    """What the callback must match: kept in the sign-in cookie, sealed."""

    state: str
    nonce: str
    verifier: str
    next_path: str
    expires_at: int

    @property
    def challenge(self) -> str:
        """The PKCE S256 code challenge of the verifier."""
        return _b64(hashlib.sha256(self.verifier.encode()).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_sign_in(next_path: str, now: float) -> PendingSignIn:
    return PendingSignIn(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        verifier=secrets.token_urlsafe(48),  # 64 characters: RFC 7636 wants 43 to 128
        next_path=next_path,
        expires_at=int(now) + SIGN_IN_SECONDS,
    )


def _mac(key: str, payload: str) -> str:
    return hmac.new(key.encode(), b"oidc-sign-in:" + payload.encode(), hashlib.sha256).hexdigest()


def seal(key: str, pending: PendingSignIn) -> str:
    """The cookie value of a pending sign-in: its fields (base64url JSON) and their HMAC."""
    payload = _b64(json.dumps(asdict(pending), separators=(",", ":")).encode())
    return f"{payload}.{_mac(key, payload)}"


def unseal(key: str, value: str | None, now: float) -> PendingSignIn:
    """The pending sign-in of a cookie this service sealed and that has not expired; SignInRefused otherwise."""
    lost = "This sign-in did not start in this browser, or took longer than 10 minutes. Start it again."
    if not value or len(value) > 4096 or value.count(".") != 1:
        raise SignInRefused(lost)
    payload, mac = value.split(".")
    if not hmac.compare_digest(_mac(key, payload).encode(), mac.encode("utf-8", "replace")):
        raise SignInRefused(lost)
    try:
        pending = PendingSignIn(**json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (ValueError, TypeError):
        raise SignInRefused(lost) from None
    if pending.expires_at < now:
        raise SignInRefused(lost)
    return pending


def check_state(pending: PendingSignIn, state: str | None) -> None:
    """The state the provider sent back is the one this browser left with: else a forged or crossed callback."""
    if not state or not hmac.compare_digest(pending.state.encode(), state.encode("utf-8", "replace")):
        raise SignInRefused("This answer of the sign-in provider does not belong to this browser's sign-in.", 403)


def redeem(state: str, code: str, expires_at: int, now: float) -> None:
    """Spend a state and its code once: SignInRefused when either was used before (a replayed callback)."""
    spent = (("state", state), ("code", code))
    digests = [hashlib.sha256(f"{kind}:{value}".encode()).hexdigest() for kind, value in spent]
    try:
        with write_transaction():
            OidcRedemption.delete().where(OidcRedemption.expires_at < int(now)).execute()
            OidcRedemption.insert_many([(digest, expires_at) for digest in digests]).execute()
    except IntegrityError:
        raise SignInRefused("This sign-in was already used. Start a new one.") from None


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str


class OidcProvider:
    """The provider's authorization and token endpoints, from its discovery document (cached for an hour)."""

    def __init__(self, issuer: str, client_id: str, client_secret: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.issuer, self.client_id = issuer.rstrip("/"), client_id
        self._client_secret, self._timeout = client_secret, timeout
        self._endpoints: Endpoints | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()

    def endpoints(self) -> Endpoints:
        with self._lock:
            if self._endpoints is None or time.monotonic() - self._fetched > DISCOVERY_SECONDS:
                self._endpoints = self._discover()
                self._fetched = time.monotonic()
            return self._endpoints

    def _discover(self) -> Endpoints:
        document = self._call(urllib.request.Request(self.issuer + DISCOVERY_PATH))
        if str(document.get("issuer", "")).rstrip("/") != self.issuer:
            raise ProviderUnavailable("the provider's discovery document names another issuer")
        urls = [document.get("authorization_endpoint"), document.get("token_endpoint")]
        for url in urls:
            if not isinstance(url, str) or not _trusted_url(url):
                raise ProviderUnavailable("its discovery document lacks an https authorization or token endpoint")
        return Endpoints(str(urls[0]), str(urls[1]))

    def authorization_url(self, pending: PendingSignIn, redirect_uri: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email",
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pending.challenge,
            "code_challenge_method": "S256",
        }
        endpoint = self.endpoints().authorization
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)

    def id_token(self, code: str, pending: PendingSignIn, redirect_uri: str) -> str:
        """Swap the code (with the PKCE verifier) for the provider's ID token."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": pending.verifier,
        }
        if self._client_secret:
            form["client_secret"] = self._client_secret
        request = urllib.request.Request(
            self.endpoints().token,
            data=urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        answer = self._call(request, refused_status=True)
        token = answer.get("id_token")
        if not isinstance(token, str) or not token:
            raise ProviderUnavailable("the provider's token answer holds no ID token")
        return token

    def _call(self, request: urllib.request.Request, refused_status: bool = False) -> dict[str, Any]:
        """One request to the provider: no redirects, a timeout, and an answer of at most MAX_ANSWER_BYTES of JSON."""
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        opener = urllib.request.build_opener(_NoRedirects)
        try:
            with opener.open(request, timeout=self._timeout) as response:
                body = response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as error:
            error.close()
            if refused_status and error.code == 400:  # invalid_grant: a used, expired or stolen code
                raise SignInRefused("The sign-in provider refused this sign-in's code. Start a new one.") from None
            raise ProviderUnavailable(f"the sign-in provider answered {error.code}") from None
        except (OSError, ValueError) as exc:
            raise ProviderUnavailable(f"the sign-in provider could not be reached ({type(exc).__name__})") from None
        if len(body) > MAX_ANSWER_BYTES:
            raise ProviderUnavailable("the sign-in provider's answer is too large")
        try:
            document = json.loads(body)
        except ValueError:
            raise ProviderUnavailable("the sign-in provider's answer is not JSON") from None
        if not isinstance(document, dict):
            raise ProviderUnavailable("the sign-in provider's answer is not a JSON object")
        return document


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an HTTPError, never followed


def _trusted_url(url: str) -> bool:
    return urlsplit(url).scheme == "https" or loopback_http(url)
