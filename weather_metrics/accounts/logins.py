"""Logging in: the password check the API and the sign-in page share, and browser sessions.

A browser session is a login session (an `AuthSession` row, like the API's) whose cookie
holds a random secret. The row's id is an HMAC-SHA256 of that secret keyed with jwt_secret:
the database holds no cookie, so a copy of it (a backup) signs nobody in, and a new
jwt_secret signs browsers out as it does the API's tokens. Logout, revocation, deactivation
and expiry end it exactly as they end the API's sessions, because it is the same row.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from weather_metrics.accounts.passwords import Passwords
from weather_metrics.accounts.tokens import TokenService
from weather_metrics.core.errors import ServiceError
from weather_metrics.core.times import DAY
from weather_metrics.store.db import write_transaction
from weather_metrics.store.models import AuthSession, Organization, User

BAD_LOGIN = "Email or password is incorrect"
SECRET_BYTES = 32
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)


class LoginRefused(ServiceError):
    """Wrong email, wrong password or a disabled account: one answer for all, so nobody learns who exists."""

    def __init__(self) -> None:
        super().__init__(BAD_LOGIN)


def password_login(passwords: Passwords, email: str, password: str) -> User:
    """The active user with this email and password; LoginRefused otherwise (PasswordsBusy when saturated)."""
    user = User.get_or_none(User.email == email.lower())
    # Verify even without a user, so the answer and its timing do not tell who exists.
    valid = passwords.verify(user.password_hash if user else None, password)
    if user is None or not valid or not user.active:
        raise LoginRefused
    return user


def secret_hash(key: str, secret: str) -> str:
    """The id of the login session of a cookie's secret."""
    return hmac.new(key.encode(), b"session:" + secret.encode(), hashlib.sha256).hexdigest()


def well_formed(secret: str | None) -> bool:
    """A value a browser session cookie could hold: anything else is not looked up."""
    return secret is not None and SECRET_PATTERN.fullmatch(secret) is not None


@dataclass(frozen=True)
class BrowserLogin:
    """Who a live browser session speaks for."""

    user: User
    organization: Organization
    session_id: str
    created_at: int
    expires_at: int

    @property
    def role(self) -> str:
        return str(self.user.role)


class BrowserSessions:
    """Start, find and end browser sessions; whether one still lasts is the TokenService's rule."""

    def __init__(self, tokens: TokenService, key: str, days: int, clock: Callable[[], float] = time.time) -> None:
        self._tokens = tokens
        self._key = key
        self.seconds = days * DAY
        self._clock = clock

    def start(self, user: User) -> tuple[str, BrowserLogin]:
        """A new session for `user`: the cookie's secret (never stored) and the login."""
        secret = secrets.token_urlsafe(SECRET_BYTES)
        now = int(self._clock())
        with write_transaction():
            session = AuthSession.create(
                id=secret_hash(self._key, secret), user=user.id, created_at=now, expires_at=now + self.seconds
            )
        return secret, BrowserLogin(user, user.organization, session.id, now, session.expires_at)

    def find(self, secret: str | None) -> BrowserLogin | None:
        """The login of a cookie's secret while its session lasts (not ended, not expired, account active)."""
        if not well_formed(secret):
            return None
        assert secret is not None
        row = (
            AuthSession.select(AuthSession, User, Organization)
            .join(User)
            .join(Organization)
            .where(AuthSession.id == secret_hash(self._key, secret))
            .get_or_none()
        )
        if row is None or self._tokens.ended(row) is not None:
            return None
        return BrowserLogin(row.user, row.user.organization, row.id, row.created_at, row.expires_at)

    def end(self, secret: str | None) -> None:
        """Sign out: the session of this secret ends at once (nothing happens for an unknown one)."""
        if well_formed(secret):
            assert secret is not None
            self._tokens.logout(secret_hash(self._key, secret))


def form_token(key: str, binding: str) -> str:
    """The anti-forgery token of forms bound to `binding`, a cookie's secret: an HMAC, so no page shows the secret."""
    return hmac.new(key.encode(), b"form:" + binding.encode(), hashlib.sha256).hexdigest()


def form_token_matches(key: str, binding: str, token: str) -> bool:
    return hmac.compare_digest(form_token(key, binding).encode(), token.encode("utf-8", "replace"))
