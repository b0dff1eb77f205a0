"""Single sign-on: verifying an OpenID Connect ID token from the configured identity provider."""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from weather_metrics.core.errors import ServiceError
from weather_metrics.store.models import User

# Only asymmetric algorithms: a provider's public key must never double as an HMAC secret.
ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"})


def loopback_http(url: str) -> bool:
    """A plain-http URL on this machine: a provider running beside the service (in tests, or in development)."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


class SsoError(ServiceError):
    """The ID token is not acceptable; the message is safe to show."""


class OidcVerifier:
    """Checks an ID token's signature, issuer, audience and expiry, and returns its email."""

    def __init__(self, issuer: str, audience: str, jwks: str, leeway_seconds: int) -> None:
        self.issuer, self.audience, self._leeway = issuer, audience, leeway_seconds
        self._client: PyJWKClient | None = None
        self._keys: PyJWKSet | None = None
        if jwks.startswith("https://") or loopback_http(jwks):
            self._client = PyJWKClient(jwks, cache_keys=True, lifespan=3600, timeout=10)
        else:
            data = json.loads(Path(jwks).read_text())
            if not isinstance(data, dict) or not data.get("keys"):
                raise ValueError(f"{jwks} holds no keys (expected a JWKS object with a 'keys' list)")
            try:
                self._keys = PyJWKSet.from_dict(data)
            except jwt.PyJWKSetError as exc:
                raise ValueError(f"{jwks}: {exc}") from None

    def _key(self, token: str) -> PyJWK:
        try:
            kid: str | None = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise SsoError("SSO token is malformed") from None
        try:
            if self._keys is not None and kid is None and len(self._keys.keys) == 1:
                return self._keys.keys[0]
            if kid is None:
                raise KeyError("no kid")
            if self._client is not None:
                return self._client.get_signing_key(kid)
            assert self._keys is not None
            return self._keys[kid]
        except (KeyError, jwt.PyJWKClientError, jwt.InvalidTokenError):
            raise SsoError("SSO token is signed with an unknown key") from None

    def email(self, token: str, nonce: str | None = None) -> str:
        """The email of a valid ID token; with `nonce`, the token must carry exactly that nonce."""
        key = self._key(token)
        if key.algorithm_name not in ALLOWED_ALGORITHMS:
            raise SsoError("SSO key uses an algorithm that is not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],  # from the provider's key, not the token
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise SsoError("SSO token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise SsoError(f"SSO token is not valid: {exc}") from None
        if nonce is not None:
            found = claims.get("nonce")
            if not isinstance(found, str) or not hmac.compare_digest(found.encode(), nonce.encode()):
                raise SsoError("SSO token was not issued for this sign-in (its nonce differs)")
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise SsoError("SSO token carries no email")
        if claims.get("email_verified") is False:
            raise SsoError("SSO email is not verified by the identity provider")
        return email.lower()


def sso_user(email: str) -> User:
    """The active user an SSO email signs in, as the API's login and the pages' sign-in map it."""
    user = User.get_or_none(User.email == email)
    if user is None or not user.active:
        raise SsoError("No active user of an organization has this SSO email")
    return user
