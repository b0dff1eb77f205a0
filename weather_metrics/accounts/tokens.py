"""Access and refresh tokens: HS256 JWTs tied to a stored login session.

Refresh tokens rotate on every use. A refresh token used twice means it was copied:
the whole session (every token of its family) is revoked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from weather_metrics.core.errors import ServiceError
from weather_metrics.core.times import DAY
from weather_metrics.store.db import database, write_transaction
from weather_metrics.store.models import AuthSession, RefreshToken, User

ALGORITHM = "HS256"  # fixed here; never taken from a token's header
REQUIRED_CLAIMS = ("sub", "org", "role", "exp", "iat", "jti", "sid", "typ")


class TokenError(ServiceError):
    """The token cannot be used; the message is safe to show."""


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


class TokenService:
    def __init__(
        self,
        secret: str,
        access_minutes: int,
        refresh_days: int,
        leeway_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.access_seconds = access_minutes * 60
        self.refresh_seconds = refresh_days * DAY
        self._leeway = leeway_seconds
        self._clock = clock

    def _sign(self, user: User, session_id: str, kind: str, jti: str, lifetime: int) -> str:
        now = int(self._clock())
        claims = {
            "sub": user.id,
            "org": user.organization_id,
            "role": user.role,
            "iat": now,
            "exp": now + lifetime,
            "jti": jti,
            "sid": session_id,
            "typ": kind,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def _pair(self, user: User, session: AuthSession) -> TokenPair:
        refresh_id = uuid.uuid4().hex
        RefreshToken.create(id=refresh_id, session=session.id, created_at=int(self._clock()))
        lifetime = min(self.refresh_seconds, session.expires_at - int(self._clock()))
        return TokenPair(
            access_token=self._sign(user, session.id, "access", uuid.uuid4().hex, self.access_seconds),
            refresh_token=self._sign(user, session.id, "refresh", refresh_id, lifetime),
            expires_in=self.access_seconds,
        )

    def decode(self, token: str, kind: str) -> dict[str, Any]:
        """Claims of a well-signed, unexpired token of the given type."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": list(REQUIRED_CLAIMS)},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("Token has expired") from None
        except jwt.InvalidTokenError:
            raise TokenError("Token is invalid") from None
        if claims["typ"] != kind:
            raise TokenError(f"Not an {kind} token" if kind == "access" else f"Not a {kind} token")
        return claims

    def start_session(self, user: User) -> TokenPair:
        now = int(self._clock())
        with database.atomic():
            session = AuthSession.create(
                id=uuid.uuid4().hex, user=user.id, created_at=now, expires_at=now + self.refresh_seconds
            )
            return self._pair(user, session)

    def refresh(self, token: str) -> TokenPair:
        """New tokens for a refresh token, which can never be used again."""
        claims = self.decode(token, "refresh")
        now = int(self._clock())
        with write_transaction():
            claimed = (
                RefreshToken.update(used_at=now)
                .where((RefreshToken.id == claims["jti"]) & RefreshToken.used_at.is_null())
                .execute()
            )
            session = AuthSession.get_or_none(AuthSession.id == claims["sid"])
            if session is None:
                raise TokenError("Token is invalid")
            reason: str | None = "Refresh token was already used; the session is revoked"
            if not claimed:
                self._revoke(session, "refresh token reused", now)
            else:
                reason = self._unusable(session, now)
            if reason is None:
                return self._pair(session.user, session)
        raise TokenError(reason)

    def ended(self, session: AuthSession) -> str | None:
        """Why a login session can no longer be used (ended, expired, account disabled); None while it lasts."""
        return self._unusable(session, int(self._clock()))

    def _unusable(self, session: AuthSession, now: int) -> str | None:
        if session.revoked_at is not None:
            return "Session has ended"
        if session.expires_at <= now:
            return "Session has expired"
        if not session.user.active:
            return "Account is disabled"
        return None

    def authenticate(self, token: str) -> tuple[User, dict[str, Any]]:
        """The user an access token speaks for, while its session lasts."""
        claims = self.decode(token, "access")
        return self._live_session(claims["sid"], claims["sub"], "Token is invalid").user, claims

    def check_session(self, session_id: str, user_id: str) -> None:
        """TokenError unless the login session is the user's and still lasts (for credentials other than a token)."""
        self._live_session(session_id, user_id, "Session has ended")

    def _live_session(self, session_id: str, user_id: str, unknown: str) -> AuthSession:
        """The user's login session while it lasts; TokenError (`unknown` when there is no such session)."""
        session = AuthSession.get_or_none(AuthSession.id == session_id)
        if session is None or session.user_id != user_id:
            raise TokenError(unknown)
        reason = self._unusable(session, int(self._clock()))
        if reason:
            raise TokenError(reason)
        return session

    def logout(self, session_id: str) -> None:
        with write_transaction():
            session = AuthSession.get_or_none(AuthSession.id == session_id)
            if session is not None:
                self._revoke(session, "logout", int(self._clock()))

    def revoke_user_sessions(self, user_id: str, keep: str | None = None) -> None:
        """End every live session of a user, but `keep`."""
        query = AuthSession.update(revoked_at=int(self._clock()), revoked_reason="account changed").where(
            (AuthSession.user == user_id) & AuthSession.revoked_at.is_null()
        )
        if keep:
            query = query.where(AuthSession.id != keep)
        with write_transaction():
            query.execute()

    @staticmethod
    def _revoke(session: AuthSession, reason: str, now: int) -> None:
        if session.revoked_at is None:
            AuthSession.update(revoked_at=now, revoked_reason=reason).where(AuthSession.id == session.id).execute()
