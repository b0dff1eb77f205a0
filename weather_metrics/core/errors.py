"""The project's own errors. Domain code raises them; each surface maps them to its error body in one place."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the project's own errors: what went wrong in the service's terms, free of HTTP."""


class Unavailable(ServiceError):
    """Not done now, and nothing of it was done (queue full, writer stopped, no capacity): retry later."""


class Pending(Unavailable):
    """The batch is being committed but its outcome is not known yet: it is likely stored."""


class NotStored(ServiceError, RuntimeError):
    """The database refused the batch itself (a validation gap): a server error, nothing stored."""


class KeyReused(ServiceError):
    """The Idempotency-Key was already used with a different body."""

    def __init__(self) -> None:
        super().__init__("Idempotency-Key was already used with a different body")


class InvalidBatch(ServiceError):
    """A /v1 request the contract refuses: `problems` lists each problem of the events, else the message says why."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems


class Rejected(ServiceError):
    """The request is refused: an HTTP status, a message and per-field details."""

    def __init__(self, status: int, message: str, details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or {}


class QueryError(ServiceError):
    """Bad request parameters (or body content that names nothing real): a message and the offending fields."""

    def __init__(self, message: str, details: dict[str, str]) -> None:
        super().__init__(message)
        self.details = details


class OutOfScope(ServiceError):
    """The caller may not see the data asked for (a user or team outside their scope)."""


class UnknownTarget(ServiceError, LookupError):
    """A user or team id that is not in the caller's organization."""


class NotFound(ServiceError, LookupError):
    """No such thing in the caller's organization."""


class Conflict(ServiceError):
    """It already exists (a duplicate email, team name or membership)."""
