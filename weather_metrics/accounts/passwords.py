"""Password hashing with Argon2id; verifying costs the same whether or not the account exists.

Each hash takes `memory_kib` of memory while it runs, so hashes run only as many at a
time as the memory budget holds: a burst of failed logins cannot take the process's
memory. A hash that finds no free slot within HASH_WAIT_SECONDS raises PasswordsBusy.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from weather_metrics.core.errors import ServiceError, Unavailable

MIN_LENGTH = 12
MAX_LENGTH = 128
HASH_WAIT_SECONDS = 1.0

T = TypeVar("T")


class PasswordPolicyError(ServiceError, ValueError):
    """The password does not meet the policy; the message says why."""


class PasswordsBusy(Unavailable):
    """Every password-hashing slot of the memory budget is taken: retry shortly."""

    def __init__(self) -> None:
        super().__init__("Too many password checks at once; retry shortly")


def check_policy(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise PasswordPolicyError(f"Must be {MIN_LENGTH}-{MAX_LENGTH} characters")


def generate_password() -> str:
    """A one-time password: 24 URL-safe characters, 144 bits."""
    return secrets.token_urlsafe(18)


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int, memory_budget_kib: int | None = None) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        self._decoy: str | None = None
        self.slots = max(1, (memory_budget_kib or memory_kib) // memory_kib)
        self._slots = threading.BoundedSemaphore(self.slots)

    def _bounded(self, work: Callable[[], T]) -> T:
        """Run one hash within the memory budget; PasswordsBusy when no slot frees up in time."""
        if not self._slots.acquire(timeout=HASH_WAIT_SECONDS):
            raise PasswordsBusy
        try:
            return work()
        finally:
            self._slots.release()

    def hash(self, password: str) -> str:
        check_policy(password)
        return self._bounded(lambda: self._hasher.hash(password))

    def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches `stored`; None (no such user) spends the same time."""
        if self._decoy is None:
            # Compared against when the account does not exist, so both answers take as long.
            self._decoy = self._bounded(lambda: self._hasher.hash(secrets.token_urlsafe(18)))
        return self._bounded(lambda: self._check(stored, password))

    def _check(self, stored: str | None, password: str) -> bool:
        assert self._decoy is not None
        try:
            return self._hasher.verify(stored or self._decoy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False
