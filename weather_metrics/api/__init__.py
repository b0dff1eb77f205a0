"""The organization surface: /api (JWT-authenticated, scoped to the caller's organization)."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from weather_metrics.accounts import Conflict, NotFound
from weather_metrics.bodies import MalformedJson, NotText, parse_json, read_body
from weather_metrics.intake import NotStored, Unavailable
from weather_metrics.models import User
from weather_metrics.orgintake import Rejected
from weather_metrics.orgmetrics import pagination  # noqa: F401 - the views' pagination block
from weather_metrics.stats import iso
from weather_metrics.tokens import TokenError
from weather_metrics.windows import OutOfScope, QueryError, UnknownTarget

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_BODY_BYTES = 64 * 1024
CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


class ApiProblem(HTTPException):
    """An error answer of this surface: status, message and per-field details."""

    def __init__(
        self, status: int, message: str, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description=message)
        self.code = status
        self.details = details or {}
        self.extra_headers = headers or {}


def client_ip() -> str:
    return request.remote_addr or "unknown"


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def caller_key() -> str:
    """Rate-limit key: the signed-in user when the token verifies, else the client IP."""
    token = bearer_token()
    if token:
        try:
            return "user:" + current_app.extensions["weather_metrics"].tokens.decode(token, "access")["sub"]
        except TokenError:
            pass
    return "ip:" + client_ip()


# Storage comes from the setting rate_limit_storage (see init_app).
limiter = Limiter(key_func=client_ip, headers_enabled=True, strategy="sliding-window-counter")
# Every /api route: the spec's "1,000 requests per hour per user" (setting api_rate_limit).
limiter.limit(lambda: current_app.extensions["weather_metrics"].settings["api_rate_limit"], key_func=caller_key)(bp)


def account_limit(key_func: Callable[[], str], **options: Any) -> Callable[..., Any]:
    """The per-account login limit: every route that tests an account's password shares it."""
    return limiter.shared_limit(
        lambda: current_app.extensions["weather_metrics"].settings["login_rate_limit_per_account"],
        scope="login-account",
        key_func=key_func,
        **options,
    )


def account_key(email: str) -> str:
    return f"login:{email.lower()}"


def as_problem(exc: Exception) -> Exception:
    """The ApiProblem a domain exception stands for; other exceptions unchanged."""
    if isinstance(exc, (NotFound, UnknownTarget)):
        return ApiProblem(404, str(exc))
    if isinstance(exc, Conflict):
        return ApiProblem(409, str(exc))
    if isinstance(exc, OutOfScope):
        return ApiProblem(403, str(exc))
    if isinstance(exc, (Rejected, QueryError)):
        return ApiProblem(getattr(exc, "status", 400), str(exc), exc.details)
    if isinstance(exc, NotStored):
        log.error("a batch was refused by the database: %s", exc)
        return ApiProblem(500, "The database refused this batch; nothing of it was stored")
    if isinstance(exc, Unavailable):  # nothing of the request was stored
        wait = g.retry_after_wait = current_app.extensions["weather_metrics"].settings["retry_after_seconds"]
        return ApiProblem(503, str(exc), {"retry_after": wait}, {"Retry-After": str(wait)})
    return exc


def error_response(exc: Exception) -> tuple[Response, int]:
    """{"error": {"code", "message", "details", "timestamp", "request_id"}} for any exception."""
    headers: list[tuple[str, str]] = []
    details: dict[str, Any] = {}
    exc = as_problem(exc)
    if isinstance(exc, ApiProblem):
        status, message, details = exc.code or 500, exc.description or "", exc.details
        headers = list(exc.extra_headers.items())
    elif isinstance(exc, RateLimitExceeded):
        status, message = 429, f"Rate limit exceeded: {exc.description}"
    elif isinstance(exc, HTTPException):
        status, message = exc.code or 500, exc.description or ""
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    else:
        log.exception("unhandled error on %s %s", request.method, request.path)
        status, message = 500, "An unexpected error occurred"
    body = {
        "error": {
            "code": CODES.get(status, "HTTP_ERROR"),
            "message": message,
            "details": details,
            "timestamp": iso(datetime.now(UTC)),
            "request_id": g.get("request_id", ""),
        }
    }
    response = jsonify(body)
    response.headers.extend(headers)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response, status


def peek_body() -> dict[str, Any]:
    """The body's JSON object for rate-limit keys, before the view runs; {} when there is none."""
    try:
        body = parse_json(read_body(MAX_BODY_BYTES))
    except (MalformedJson, RequestEntityTooLarge):
        return {}
    return body if isinstance(body, dict) else {}


def json_body(schema: Schema) -> dict[str, Any]:
    """The request's JSON object, loaded by `schema`; 400 listing every bad field."""
    try:
        data = parse_json(read_body(MAX_BODY_BYTES) or b"null", strict=True)
    except NotText:
        raise ApiProblem(400, "Request body holds a string that is not valid Unicode") from None
    except MalformedJson:
        raise ApiProblem(400, "Malformed JSON") from None
    if not isinstance(data, dict):
        raise ApiProblem(400, "Request body must be a JSON object")
    return load(schema, data)


def load(schema: Schema, data: Any) -> dict[str, Any]:
    try:
        return schema.load(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise ApiProblem(400, "Request validation failed", _first_messages(exc.messages)) from None


def _first_messages(messages: Any) -> dict[str, Any]:
    if isinstance(messages, list):
        return {"_body": messages[0]}
    return {k: (v[0] if isinstance(v, list) else _first_messages(v)) for k, v in messages.items()}


def signed_in() -> tuple[User, dict[str, Any]]:
    """The user and claims of the request's access token, checked once per request; TokenError otherwise."""
    if "signed_in" not in g:
        g.signed_in = current_app.extensions["weather_metrics"].tokens.authenticate(bearer_token() or "")
    return g.signed_in  # type: ignore[no-any-return]


def authenticated(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The view needs a valid access token; with roles, one of them (403 otherwise)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer_token()
            if token is None:
                raise ApiProblem(401, "Authorization: Bearer <access token> is required")
            try:
                user, claims = signed_in()
            except TokenError as exc:
                raise ApiProblem(401, str(exc)) from None
            g.user, g.claims = user, claims
            if roles and user.role not in roles:
                raise ApiProblem(403, f"This needs the role {' or '.join(roles)}")
            return view(*args, **kwargs)

        return wrapper

    return decorate


def current_user() -> User:
    return g.user  # type: ignore[no-any-return]


def init_app(app: Flask) -> None:
    """Register the blueprint and its rate limiter."""
    app.register_blueprint(bp)

    # Registered before the limiter's own hook, so it runs after it (Flask runs them in reverse).
    @app.after_request
    def spec_retry_after(response: Response) -> Response:
        """Retry-After belongs to 429 (the limiter's wait, also as X-RateLimit-Retry-After) and 503.

        The limiter puts its window's reset into Retry-After on every response it counts;
        a 503 keeps the writer's own wait, and other answers get none.
        """
        if response.status_code == 429:
            if "Retry-After" in response.headers:
                response.headers["X-RateLimit-Retry-After"] = response.headers["Retry-After"]
        elif response.status_code == 503 and "retry_after_wait" in g:
            response.headers["Retry-After"] = str(g.retry_after_wait)
        elif response.status_code != 503:
            response.headers.pop("Retry-After", None)
        return response

    settings = app.extensions["weather_metrics"].settings
    app.config["RATELIMIT_STORAGE_URI"] = settings["rate_limit_storage"]
    # Every process of one service shares its counters, and only them: they are named after its database.
    database_path = str(Path(settings["database"]).expanduser().resolve())
    app.config["RATELIMIT_KEY_PREFIX"] = "weather_metrics:" + hashlib.sha256(database_path.encode()).hexdigest()[:16]
    limiter.init_app(app)


bp.register_error_handler(Exception, error_response)

from weather_metrics.api import (  # noqa: E402,F401 - registers the routes
    alerts,
    analytics,
    auth,
    dashboards,
    ingest,
    keys,
    metrics,
    organization,
    reports,
    teams,
    users,
    ws,
)
