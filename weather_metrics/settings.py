"""Every setting in one table: name, default, one-line help, and how to read it."""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limits import parse_many
from redis.connection import parse_url

from weather_metrics.core.errors import ServiceError

ENV_PREFIX = "WEATHER_METRICS_"


class SettingsError(ServiceError, ValueError):
    """A setting has a bad value; the message names the key."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("database", "weather_metrics.db", "A SQLite file's path, or a postgresql://user@host/name URL."),
    Setting("backup_dir", "", "Folder for database backups; empty means a 'backups' folder beside the database."),
    Setting("backup_before_upgrade", True, "Copy the database to backup_dir before migrating an older schema."),
    Setting("host", "127.0.0.1", "Address the server listens on."),
    Setting("port", 3000, "Port the server listens on (the PORT variable also sets it).", minimum=1, maximum=65535),
    Setting("threads", 64, "Request threads of each server process.", minimum=1, maximum=1024),
    Setting("request_header_timeout_seconds", 10.0, "Time for a request's head to arrive (408 after).", minimum=0.5),
    Setting("request_body_timeout_seconds", 30.0, "Time for a body to arrive after its head (408 after).", minimum=0.5),
    Setting("request_buffer_mib", 256, "Memory for requests still arriving, per process (503 past it).", minimum=4),
    Setting("tls_certfile", "", "Serve HTTPS with this certificate chain (PEM); empty: plain HTTP."),
    Setting("tls_keyfile", "", "The private key of tls_certfile (PEM)."),
    Setting(
        "workers",
        1,
        "Server processes. One suits most installations; with more, set redis_url so that "
        "rate limits count across them (docs/configuration.md, 'Several worker processes').",
        minimum=1,
        maximum=64,
    ),
    Setting(
        "redis_url",
        "",
        "A Redis (redis://host:port/db) that every process and host of the service shares for its rate limits "
        "(/v1, /api, /mcp); empty: each process counts alone.",
    ),
    Setting(
        "rate_limit_storage",
        "",
        "Where /api and /mcp rate limits are counted, if not redis_url: memory:// (each process alone) or redis://.",
    ),
    Setting(
        "ack",
        "commit",
        "When POST /v1/events answers 200: 'commit' after the events are committed, "
        "'enqueue' as soon as they are queued.",
        choices=("commit", "enqueue"),
    ),
    Setting("ack_timeout_seconds", 10.0, "Longest wait for a commit before answering 503.", minimum=0.1, maximum=300),
    Setting("queue_max_events", 50_000, "Events the write queue holds (then 503).", minimum=100, maximum=10_000_000),
    Setting(
        "writer_max_batch_events",
        10_000,
        "Most events the writer commits in one transaction.",
        minimum=100,
        maximum=1_000_000,
    ),
    Setting(
        "synchronous",
        "full",
        "SQLite synchronous mode: 'full' survives power loss, 'normal' survives process crashes only.",
        choices=("full", "normal"),
    ),
    Setting(
        "retention_days", 90, "Days raw events are kept; older events are pruned and rejected.", minimum=1, maximum=3650
    ),
    Setting("rollup_retention_days", 400, "Days hourly and daily rollups are kept.", minimum=90, maximum=36500),
    Setting("prune_interval_seconds", 3600.0, "Seconds between pruning runs of the writer.", minimum=1, maximum=86400),
    Setting("idempotency_ttl_hours", 24, "Hours an Idempotency-Key is remembered.", minimum=1, maximum=720),
    Setting(
        "rate_limit_per_minute", 60, "Requests per minute allowed to one client IP on /v1.", minimum=1, maximum=10**9
    ),
    Setting("rate_limit_burst", 10, "Extra requests a quiet client may send at once.", minimum=0, maximum=10**9),
    Setting("public_pages", True, "Serve the statistics pages / and /tools/<name> to anyone; false: they answer 404."),
    Setting("stats_cache_mib", 16, "Memory for /v1 statistics kept in each process.", minimum=0, maximum=4096),
    Setting(
        "trusted_proxies",
        0,
        "Reverse proxies in front of the service whose X-Forwarded-For and X-Forwarded-Proto are trusted.",
        minimum=0,
        maximum=10,
    ),
    Setting("retry_after_seconds", 5, "Retry-After sent with 503 answers.", minimum=1, maximum=3600),
    Setting(
        "metrics_max_tools", 200, "Tool labels on /metrics before the rest count as 'other'.", minimum=1, maximum=10**5
    ),
    Setting("log_level", "info", "Log level of the server.", choices=("debug", "info", "warning", "error")),
    Setting("log_format", "text", "Log lines: text, or one JSON object each.", choices=("text", "json")),
    Setting(
        "jwt_secret",
        "",
        "Secret that signs access and refresh tokens: required, at least 32 random characters. "
        "`make run` writes a random one into config.toml on first run.",
    ),
    Setting("access_token_minutes", 15, "Lifetime of an access token.", minimum=1, maximum=1440),
    Setting("refresh_token_days", 30, "Lifetime of a login session and its refresh tokens.", minimum=1, maximum=365),
    Setting("browser_session_days", 7, "Lifetime of a web page sign-in and its cookie.", minimum=1, maximum=365),
    Setting("jwt_leeway_seconds", 10, "Clock skew allowed when checking token times.", minimum=0, maximum=300),
    Setting("password_time_cost", 3, "Argon2id passes for password hashes (OWASP: at least 2).", minimum=2, maximum=20),
    Setting(
        "password_memory_kib",
        65536,
        "Argon2id memory for password hashes, KiB (OWASP: 19456+).",
        minimum=19456,
        maximum=4_194_304,
    ),
    Setting("password_memory_budget_mib", 256, "Memory for password hashes at once (503 past it).", minimum=19),
    Setting("api_rate_limit", "1000 per hour", "Requests allowed to one user on /api (flask-limiter syntax)."),
    Setting("login_rate_limit_per_ip", "30 per 15 minutes", "Login attempts allowed from one client IP."),
    Setting("login_rate_limit_per_account", "10 per 15 minutes", "Login attempts allowed for one email."),
    Setting("oidc_issuer", "", "SSO: issuer (iss) of accepted ID tokens; empty turns SSO off."),
    Setting("oidc_audience", "", "SSO: audience (aud) ID tokens must name, usually the client id."),
    Setting("oidc_jwks", "", "SSO: the identity provider's keys, a JWKS file path or an https:// URL."),
    Setting(
        "oidc_client_secret",
        "",
        "SSO: client secret the pages' sign-in sends to the token endpoint; empty for a public client (PKCE alone).",
    ),
    Setting(
        "mcp_rate_limit", "10000 per minute", "Requests allowed to one organization's API keys on /mcp/metrics/collect."
    ),
    Setting(
        "metrics_ingest_rate_limit",
        "10000 per hour",
        "Requests allowed to one organization on POST /api/metrics/productivity and /agents.",
    ),
    Setting(
        "metrics_max_items", 1000, "Most metrics or executions in one ingestion request.", minimum=1, maximum=10_000
    ),
    Setting(
        "metrics_max_body_bytes",
        1_048_576,
        "Largest ingestion request body on /api/metrics and /mcp, in bytes (larger: 413).",
        minimum=1024,
        maximum=64 * 1_048_576,
    ),
    Setting(
        "clock_skew_seconds",
        300,
        "How far in the future an organization metric's timestamp may be (clock skew of senders).",
        minimum=0,
        maximum=86400,
    ),
    Setting(
        "export_dir",
        "",
        "Folder for report export files; empty: 'exports' beside the SQLite file, or in the working directory.",
    ),
    Setting("export_workers", 2, "Exports built at once (a child process each).", minimum=1, maximum=16),
    Setting("export_ttl_hours", 24, "Hours an export job and its file are kept.", minimum=1, maximum=720),
    Setting(
        "export_max_rows",
        1_000_000,
        "Most data rows in one export; a larger one fails with a message naming the limit.",
        minimum=1000,
        maximum=50_000_000,
    ),
    Setting(
        "export_min_free_mib",
        1024,
        "Exports refuse to start (503), and a running one fails, while the disk holding export files has"
        " less free space than this; ingestion needs it more. 0 turns the check off.",
        minimum=0,
        maximum=1_048_576,
    ),
    Setting("export_rate_limit", "10 per hour", "Export requests allowed to one user (the spec's figure)."),
    Setting(
        "webhook_allow_private",
        False,
        "Webhooks may target loopback, private and other non-public addresses (on-premises receivers).",
    ),
    Setting("webhook_timeout_seconds", 5.0, "Timeout of one webhook delivery attempt.", minimum=0.1, maximum=60),
    Setting(
        "webhook_max_attempts", 8, "Attempts of one webhook delivery before it is given up.", minimum=1, maximum=50
    ),
    Setting(
        "webhook_disable_after_failures",
        20,
        "Consecutive given-up deliveries after which a webhook is disabled.",
        minimum=1,
        maximum=10_000,
    ),
    Setting("webhook_workers", 4, "Webhook deliveries sent at once (one per organization).", minimum=1, maximum=16),
    Setting(
        "ws_allowed_origins",
        "",
        "Comma-separated origins (https://host[:port]) whose pages may open /ws; the service's own "
        "origin always may. Clients that send no Origin (scripts) are not browsers and are let in.",
    ),
    Setting("ws_max_connections", 200, "Open WebSocket connections of the whole service.", minimum=1, maximum=100_000),
    Setting(
        "ws_max_connections_per_user",
        5,
        "Open WebSocket connections of one user, or of one address without a token (the spec's figure).",
        minimum=1,
        maximum=1000,
    ),
    Setting(
        "ws_ping_interval_seconds",
        25.0,
        "Seconds between WebSocket pings; a connection that misses a pong is closed.",
        minimum=1,
        maximum=3600,
    ),
    Setting(
        "ws_send_queue",
        256,
        "Messages waiting for one WebSocket client before it is dropped as too slow.",
        minimum=8,
        maximum=100_000,
    ),
    Setting(
        "ws_send_timeout_seconds",
        10.0,
        "Longest a message may wait in the socket for a client that does not read; it is then dropped.",
        minimum=0.5,
        maximum=300,
    ),
    Setting(
        "ws_send_buffer_bytes",
        262_144,
        "Kernel send buffer of each WebSocket: what a client that stops reading can hold up.",
        minimum=4096,
        maximum=16_777_216,
    ),
    Setting("ws_ticket_seconds", 30, "Lifetime of a single-use WebSocket ticket.", minimum=5, maximum=600),
    Setting(
        "ws_dashboard_interval_seconds",
        5.0,
        "Shortest time between two dashboard_update messages of one dashboard.",
        minimum=0.1,
        maximum=3600,
    ),
    Setting(
        "ws_public_interval_seconds",
        1.0,
        "Shortest time between two messages of the public room.",
        minimum=0.1,
        maximum=3600,
    ),
    Setting(
        "alert_evaluation_seconds",
        60,
        "Seconds between two evaluations of one alert rule.",
        minimum=1,
        maximum=86_400,
    ),
    Setting(
        "metrics_max_range_days", 400, "Longest date range of one metrics or analytics query.", minimum=1, maximum=3650
    ),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _coerce(setting: Setting, value: Any) -> Any:
    """Turn a raw value (from TOML or the environment) into the setting's type."""
    kind: Callable[[Any], Any] = type(setting.default)
    where = f"setting '{setting.name}'"
    wrong_type = SettingsError(f"{where}: expected {kind.__name__}, got {value!r}")
    if kind is bool:  # TOML true/false, or the words an environment variable spells them with
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS:
            return BOOLEAN_WORDS[value.strip().lower()]
        raise wrong_type
    if isinstance(value, bool) or (kind is str and not isinstance(value, str)):
        raise wrong_type
    if kind is not str and isinstance(value, str) and not value.strip():
        raise wrong_type
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        coerced = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise wrong_type from None
    if isinstance(coerced, float) and not math.isfinite(coerced):
        raise SettingsError(f"{where}: must be a finite number, got {value!r}")
    if setting.choices and coerced not in setting.choices:
        raise SettingsError(f"{where}: must be one of {', '.join(setting.choices)}, got {value!r}")
    if setting.minimum is not None and coerced < setting.minimum:
        raise SettingsError(f"{where}: must be at least {setting.minimum}, got {value!r}")
    if setting.maximum is not None and coerced > setting.maximum:
        raise SettingsError(f"{where}: must be at most {setting.maximum}, got {value!r}")
    return coerced


def load_settings(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Defaults, then the TOML file, then WEATHER_METRICS_* variables, then overrides."""
    environ = dict(os.environ if environ is None else environ)
    raw: dict[str, Any] = {s.name: s.default for s in SETTINGS}

    path = environ.get(ENV_PREFIX + "CONFIG")
    if path is None and Path("config.toml").is_file():
        path = "config.toml"
    if path:
        try:
            with open(path, "rb") as fh:
                from_file = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"config file {path}: {exc}") from None
        for key, value in from_file.items():
            if key not in SETTINGS_BY_NAME:
                raise SettingsError(f"config file {path}: unknown setting '{key}'")
            raw[key] = value

    if environ.get("PORT"):
        raw["port"] = environ["PORT"]
    for setting in SETTINGS:
        env_value = environ.get(ENV_PREFIX + setting.name.upper())
        if env_value is not None:
            raw[setting.name] = env_value

    for key, value in (overrides or {}).items():
        if key not in SETTINGS_BY_NAME:
            raise SettingsError(f"unknown setting '{key}'")
        raw[key] = value

    settings = {name: _coerce(SETTINGS_BY_NAME[name], value) for name, value in raw.items()}
    _check_together(settings)
    return settings


RATE_LIMIT_SETTINGS = (
    "api_rate_limit",
    "login_rate_limit_per_ip",
    "login_rate_limit_per_account",
    "mcp_rate_limit",
    "metrics_ingest_rate_limit",
    "export_rate_limit",
)


def _check_together(settings: dict[str, Any]) -> None:
    """Checks that need more than one value, or a parser."""
    for name in RATE_LIMIT_SETTINGS:
        try:
            parse_many(settings[name])
        except ValueError:
            raise SettingsError(
                f"setting '{name}': not a rate limit such as '1000 per hour', got {settings[name]!r}"
            ) from None
    if settings["queue_max_events"] < settings["metrics_max_items"]:
        raise SettingsError(
            "setting 'queue_max_events': must be at least metrics_max_items "
            f"({settings['metrics_max_items']}), or the largest request could never be queued"
        )
    if settings["rate_limit_storage"] and not settings["rate_limit_storage"].startswith(
        ("memory://", "redis://", "rediss://")
    ):
        raise SettingsError(
            "setting 'rate_limit_storage': must be memory:// or a redis://host:port URI, "
            f"got {shown_url(settings['rate_limit_storage'])!r}"
        )
    _check_redis_url(settings["redis_url"])
    secret = settings["jwt_secret"]
    if secret and len(secret) < 32:
        raise SettingsError("setting 'jwt_secret': must be at least 32 characters")
    sso = [name for name in ("oidc_issuer", "oidc_audience", "oidc_jwks") if settings[name]]
    if sso and len(sso) < 3:
        missing = sorted({"oidc_issuer", "oidc_audience", "oidc_jwks"} - set(sso))
        raise SettingsError(f"setting '{missing[0]}': SSO needs oidc_issuer, oidc_audience and oidc_jwks together")


def _check_redis_url(url: str) -> None:
    try:
        if url and (not url.startswith(("redis://", "rediss://")) or not parse_url(url).get("host")):
            raise ValueError("must be redis://host:port/db or rediss://…")
    except ValueError as exc:
        raise SettingsError(f"setting 'redis_url': {exc}, got {shown_url(url)!r}") from None


def shown_url(url: str) -> str:
    """A URL without its user, password and query (which may hold one), for messages and logs."""
    scheme, separator, rest = url.partition("://")
    where, slash, path = rest.partition("?")[0].partition("/")
    return scheme + separator + where.rpartition("@")[2] + slash + path


def require_secret(settings: dict[str, Any]) -> str:
    """The token signing secret; the service does not start without one."""
    if not settings["jwt_secret"]:
        raise SettingsError(
            "setting 'jwt_secret': required, at least 32 characters. Set WEATHER_METRICS_JWT_SECRET "
            "or jwt_secret in config.toml (`make run` writes a random one there)."
        )
    return str(settings["jwt_secret"])
