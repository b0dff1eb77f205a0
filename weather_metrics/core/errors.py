"""The project's own errors. Domain code raises them; each surface maps them to its error body in one place."""

from __future__ import annotations


class Unavailable(Exception):
    """The batch was not accepted now (queue full, writer stopped, commit too slow): retry later."""


class Pending(Unavailable):
    """The batch is being committed but its outcome is not known yet: it is likely stored."""


class NotStored(RuntimeError):
    """The database refused the batch itself (a validation gap): a server error, nothing stored."""


class KeyReused(Exception):
    """The Idempotency-Key was already used with a different body."""

    def __init__(self) -> None:
        super().__init__("Idempotency-Key was already used with a different body")


class Rejected(Exception):
    """The request is refused: an HTTP status, a message and per-field details."""

    def __init__(self, status: int, message: str, details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or {}


class QueryError(Exception):
    """Bad request parameters (or body content that names nothing real): a message and the offending fields."""

    def __init__(self, message: str, details: dict[str, str]) -> None:
        super().__init__(message)
        self.details = details


class OutOfScope(Exception):
    """The caller may not see the data asked for (a user or team outside their scope)."""


class UnknownTarget(LookupError):
    """A user or team id that is not in the caller's organization."""


class NotFound(LookupError):
    """No such thing in the caller's organization."""


class Conflict(Exception):
    """It already exists (a duplicate email, team name or membership)."""
