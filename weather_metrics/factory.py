"""The app factory: settings, database, writer, threads and blueprints, wired into one Flask app."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from functools import partial
from typing import Any

from flask import Flask, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing.exceptions import WebsocketMismatch

from weather_metrics import dashboards
from weather_metrics.accounts.oidc import OidcProvider
from weather_metrics.accounts.passwords import Passwords
from weather_metrics.accounts.sso import OidcVerifier
from weather_metrics.accounts.tokens import TokenService
from weather_metrics.alerts.evaluator import AlertEvaluator
from weather_metrics.alerts.rules import SEVERITIES
from weather_metrics.core.ratelimit import TokenBucketLimiter
from weather_metrics.core.shared_ratelimit import SharedTokenBucketLimiter, redis_client
from weather_metrics.core.times import HOUR
from weather_metrics.ingest.events.intake import EventIntake
from weather_metrics.ingest.org.intake import OrgIntake
from weather_metrics.live import events as live
from weather_metrics.live.hub import Hub
from weather_metrics.live.relay import Relay
from weather_metrics.query import stats
from weather_metrics.reports.builder import FORMATS
from weather_metrics.reports.runner import ReportRunner
from weather_metrics.runtime import prometheus
from weather_metrics.runtime.logs import configure_logging
from weather_metrics.settings import ENV_PREFIX, SettingsError, load_settings, require_secret
from weather_metrics.store.backup import backup_folder
from weather_metrics.store.batches import write_batches
from weather_metrics.store.db import CannotOpen, database, is_postgresql, open_database
from weather_metrics.store.folds import fold
from weather_metrics.store.pruning import prune_step
from weather_metrics.store.writer import EventWriter
from weather_metrics.web import api, cli, docs, limits, mcp, nul, observability, pages, v1, ws
from weather_metrics.web.errors import ApiProblem, error_response
from weather_metrics.web.services import EXTENSION, ServiceState
from weather_metrics.web.v1.blueprint import error_response as v1_error_response
from weather_metrics.web.v1.shortcut import EventsShortcut
from weather_metrics.web.ws import connection
from weather_metrics.webhooks.deliveries import Subscribers, WebhookDeliverer, collected_recorder
from weather_metrics.webhooks.signing import SecretBox


def _housekeeping(settings: dict[str, Any]) -> bool:
    """Ended days added to their spans, then one pruning step; True while more remains."""
    now = datetime.now(UTC)
    fold(now)
    return prune_step(
        now,
        settings["retention_days"],
        settings["rollup_retention_days"],
        settings["idempotency_ttl_hours"],
    )[1]


def _sso(settings: dict[str, Any]) -> OidcVerifier | None:
    if not settings["oidc_issuer"]:
        return None
    try:
        return OidcVerifier(
            settings["oidc_issuer"], settings["oidc_audience"], settings["oidc_jwks"], settings["jwt_leeway_seconds"]
        )
    except (OSError, ValueError) as exc:
        raise SettingsError(f"setting 'oidc_jwks': cannot load keys: {exc}") from None


def _sign_in_provider(settings: dict[str, Any]) -> OidcProvider | None:
    if not settings["oidc_issuer"]:
        return None
    return OidcProvider(settings["oidc_issuer"], settings["oidc_audience"], settings["oidc_client_secret"])


def _within(*hooks: Any) -> Any:
    """One `write_batches` hook that calls each of `hooks` inside the commit's transaction, in turn."""

    def record(batches: Any) -> None:
        for hook in hooks:
            hook(batches)

    return record


def _on_commit(*hooks: Any) -> Any:
    """One writer on_commit hook that calls each of `hooks`; one failing does not skip the rest."""

    def record(batches: Any, stored: int, seconds: float) -> None:
        for hook in hooks:
            try:
                hook(batches, stored, seconds)
            except Exception:  # noqa: BLE001 - a listener must not stop the writer or the others
                logging.getLogger(__name__).exception("commit listener %s failed", hook)

    return record


def open_store(settings: dict[str, Any], config: dict[str, Any] | None = None, max_connections: int = 128) -> None:
    """Open the database the settings name; one that cannot be opened stops start-up, naming the setting.

    `config`: the overrides the settings were loaded with (a value there did not come from the environment).
    """
    backups = backup_folder(settings["backup_dir"], settings["database"]) if settings["backup_before_upgrade"] else None
    try:
        open_database(settings["database"], settings["synchronous"], max_connections, backup_dir=backups)
    except CannotOpen as exc:
        variable = ENV_PREFIX + "DATABASE"
        given = os.environ.get(variable) == settings["database"] and "database" not in (config or {})
        raise SettingsError(f"setting 'database'{f' ({variable})' if given else ''}: {exc}") from None


def _v1_limiter(settings: dict[str, Any]) -> TokenBucketLimiter | SharedTokenBucketLimiter:
    """The /v1 per-address buckets: in this process, or in Redis when redis_url is set (checked here, at start)."""
    own = TokenBucketLimiter(settings["rate_limit_per_minute"], settings["rate_limit_burst"])
    if not settings["redis_url"]:
        return own
    fallback = prometheus.rate_limit_fallbacks_total.labels("v1").inc
    shared = SharedTokenBucketLimiter(
        redis_client(settings["redis_url"]), limits.key_prefix(settings) + ":v1", own, on_fallback=fallback
    )
    try:
        shared.check()
    except RedisError as exc:
        where = limits.shown(settings["redis_url"])
        raise SettingsError(f"setting 'redis_url': Redis does not answer at {where}: {exc}") from None
    return shared


def _dashboard_data(viewer: Any, dashboard_id: str, now: datetime, max_days: int) -> dict[str, Any]:
    return dashboards.dashboard_data(viewer, dashboard_id, now, max_days)


def create_app(config: dict[str, Any] | None = None, *, background: bool = True) -> Flask:
    """Build the service: settings, database, blueprints, metrics, and (unless `background` is False) its threads.

    Without them (app.py, which `flask --app app <command>` also imports) nothing runs until
    `ServiceState.start`: gunicorn's workers call it (runtime/gunicorn_conf.py), a command never does.
    """
    settings = load_settings(config)
    configure_logging(settings["log_format"], settings["log_level"])
    v1_limiter = _v1_limiter(settings)  # before the database: an unreachable Redis stops the start at once

    app = Flask(__name__, static_folder=None)  # each blueprint serves its own files: pages at /static
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # A connection for each request thread and each background thread that may hold one at once.
    workers = settings["webhook_workers"] + settings["export_workers"] + 8  # + writer, alerts, live relay, keeper
    open_store(settings, config, max_connections=settings["threads"] + workers)

    stats.ANSWERS.resize(settings["stats_cache_mib"] * 2**20)

    webhooks = WebhookDeliverer(settings, SecretBox(require_secret(settings)), Subscribers())
    writer = EventWriter(
        write=partial(
            write_batches,
            idempotency_ttl=settings["idempotency_ttl_hours"] * HOUR,
            within=_within(live.batch_recorder(), collected_recorder(webhooks.subscribers)),
        ),
        max_events=settings["queue_max_events"],
        max_batch_events=settings["writer_max_batch_events"],
        on_commit=_on_commit(
            observability.commit_recorder(observability.ToolLabels(settings["metrics_max_tools"])),
        ),
        housekeeping=partial(_housekeeping, settings),
        housekeeping_interval=settings["prune_interval_seconds"],
        connect=partial(database.connect, reuse_if_open=True),
        disconnect=database.close,
    )
    intake = EventIntake(writer, settings)
    state = ServiceState(
        settings=settings,
        writer=writer,
        intake=intake,
        org_intake=OrgIntake(writer, settings, intake.cpu_gate),
        limiter=v1_limiter,
        passwords=Passwords(
            settings["password_time_cost"],
            settings["password_memory_kib"],
            settings["password_memory_budget_mib"] * 1024,
        ),
        tokens=TokenService(
            require_secret(settings),
            settings["access_token_minutes"],
            settings["refresh_token_days"],
            settings["jwt_leeway_seconds"],
        ),
        sso=_sso(settings),
        reports=ReportRunner(settings),
        webhooks=webhooks,
        relay=Relay(
            Hub(),
            settings,
            partial(_dashboard_data, max_days=settings["metrics_max_range_days"]),
        ),
        alerts=AlertEvaluator(settings, webhooks.subscribers),
        sign_in_provider=_sign_in_provider(settings),
    )
    app.extensions[EXTENSION] = state
    prometheus.PROCESS_GAUGES.watch(lambda: writer.depth, lambda: len(state.relay.hub))
    prometheus.start_at_zero(FORMATS, SEVERITIES)
    prometheus.describe_database("postgresql" if is_postgresql() else "sqlite")
    # Inside ProxyFix: the shortcut's rate limit counts the client's address, not the proxy's.
    app.wsgi_app = EventsShortcut(app.wsgi_app, state, app.json.dumps)  # type: ignore[method-assign,assignment]
    if settings["trusted_proxies"]:
        n = settings["trusted_proxies"]
        # Not X-Forwarded-Host: nginx sends the browser's Host itself (docs/nginx.conf) and passes on any
        # X-Forwarded-Host a client writes, which would choose the origin forms and WebSockets are checked against.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]

    observability.init_app(app)  # first: request ids and timers before any limiter runs
    limits.init_app(app)
    connection.init_app(app)
    nul.init_app(app)  # before the blueprints' own hooks, which may look up what a request names
    for surface in (v1, api, mcp, ws, pages):
        app.register_blueprint(surface.bp)

    @app.errorhandler(HTTPException)
    def unmatched(exc: HTTPException) -> Any:
        """Unknown URLs and methods, in the error format of the surface asked for (a page for a browser)."""
        if isinstance(exc, WebsocketMismatch) and request.path == "/ws":
            exc = ApiProblem(400, "/ws speaks WebSocket: send a GET with Upgrade: websocket")
        if request.path.startswith(("/api/", "/mcp/", "/ws")):
            return error_response(exc)
        if pages.wants_page():
            return pages.error_page(exc)
        return v1_error_response(exc)

    cli.init_app(app)
    docs.init_app(app)
    pages.compile_templates(app)  # last: every template filter is registered

    @app.teardown_appcontext
    def release_connection(_exc: BaseException | None) -> None:
        if not database.is_closed():
            database.close()

    if background:
        state.start()  # last: an app that failed to build leaves no thread running
    return app
