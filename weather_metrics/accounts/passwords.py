"""Password hashing with Argon2id; verifying costs the same whether or not the account exists."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from weather_metrics.core.errors import ServiceError

MIN_LENGTH = 12
MAX_LENGTH = 128


class PasswordPolicyError(ServiceError, ValueError):
    """The password does not meet the policy; the message says why."""


def check_policy(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise PasswordPolicyError(f"Must be {MIN_LENGTH}-{MAX_LENGTH} characters")


def generate_password() -> str:
    """A one-time password: 24 URL-safe characters, 144 bits."""
    return secrets.token_urlsafe(18)


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        self._decoy: str | None = None

    def hash(self, password: str) -> str:
        check_policy(password)
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches `stored`; None (no such user) spends the same time."""
        if self._decoy is None:
            # Compared against when the account does not exist, so both answers take as long.
            self._decoy = self._hasher.hash(secrets.token_urlsafe(18))
        try:
            return self._hasher.verify(stored or self._decoy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False
