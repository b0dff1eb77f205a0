"""The /v1 error answer; the blueprint's handler renders it in the contract's body."""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import HTTPException


class ApiError(HTTPException):
    """An error answer: status, machine-readable code, human-readable details."""

    def __init__(self, status: int, error: str, details: Any, retry_after: int | None = None) -> None:
        super().__init__(description=details if isinstance(details, str) else error)
        self.code = status
        self.error = error
        self.details = details
        self.retry_after = retry_after


def validation_failed(details: list[str]) -> ApiError:
    return ApiError(400, "validation_failed", details)


def invalid_request(details: str) -> ApiError:
    return ApiError(400, "invalid_request", details)


def service_unavailable(details: str, retry_after: int) -> ApiError:
    return ApiError(503, "service_unavailable", details, retry_after=retry_after)
