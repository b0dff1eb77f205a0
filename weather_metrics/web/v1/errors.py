"""The /v1 error answer, and the one place domain errors become /v1 answers; the blueprint renders them."""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import HTTPException

from weather_metrics.core.errors import InvalidBatch, Unavailable
from weather_metrics.web.services import services


class ApiError(HTTPException):
    """An error answer: status, machine-readable code, human-readable details."""

    def __init__(self, status: int, error: str, details: Any, retry_after: int | None = None) -> None:
        super().__init__(description=details if isinstance(details, str) else error)
        self.code = status
        self.error = error
        self.details = details
        self.retry_after = retry_after


def invalid_request(details: str) -> ApiError:
    return ApiError(400, "invalid_request", details)


def as_api_error(exc: Exception) -> Exception:
    """The ApiError a domain exception stands for; other exceptions unchanged."""
    if isinstance(exc, InvalidBatch):
        if exc.problems is not None:
            return ApiError(400, "validation_failed", exc.problems)
        return invalid_request(str(exc))
    if isinstance(exc, Unavailable):  # nothing of the request was stored
        wait = services().settings["retry_after_seconds"]
        return ApiError(503, "service_unavailable", str(exc), retry_after=wait)
    return exc
