"""The services one app shares (settings, writer, intakes, background runners), and `services()` to reach them."""

from __future__ import annotations

import atexit
import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from weather_metrics.accounts.oidc import OidcProvider
from weather_metrics.accounts.passwords import Passwords
from weather_metrics.accounts.sso import OidcVerifier
from weather_metrics.accounts.tokens import TokenService
from weather_metrics.alerts.evaluator import AlertEvaluator
from weather_metrics.core.ratelimit import TokenBucketLimiter
from weather_metrics.core.shared_ratelimit import SharedTokenBucketLimiter
from weather_metrics.ingest.events.intake import EventIntake
from weather_metrics.ingest.org.intake import OrgIntake
from weather_metrics.live.relay import Relay
from weather_metrics.reports.runner import ReportRunner
from weather_metrics.runtime.logs import Sampler
from weather_metrics.store.writer import EventWriter
from weather_metrics.webhooks.deliveries import WebhookDeliverer

EXTENSION = "weather_metrics"  # the key of app.extensions


@dataclass
class ServiceState:
    """What the views of this app share: settings, the writer, the limiter."""

    settings: dict[str, Any]
    writer: EventWriter
    intake: EventIntake
    org_intake: OrgIntake
    limiter: TokenBucketLimiter | SharedTokenBucketLimiter  # the /v1 per-address buckets
    passwords: Passwords
    tokens: TokenService
    sso: OidcVerifier | None
    reports: ReportRunner
    webhooks: WebhookDeliverer
    relay: Relay
    alerts: AlertEvaluator
    # The pages' sign-in through the same provider (accounts/oidc.py); None when SSO is off.
    sign_in_provider: OidcProvider | None = None
    started: float = field(default_factory=time.monotonic)
    # The background threads run (start()): only in a process that serves, never in a `flask` command.
    running: bool = False
    # Refused /v1 batches logged: a few a minute per address.
    refusals: Sampler = field(default_factory=lambda: Sampler(per_minute=3))

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def start(self) -> None:
        """Start the background threads: the writer (and its pruning), exports, webhook deliveries, the live relay,
        alert evaluation. Idempotent; they stop at close() or when the process exits."""
        if self.running:
            return
        self.running = True
        self.writer.start()
        self.reports.start()  # settles exports a stopped process left behind first
        self.webhooks.start()
        self.relay.start()
        self.alerts.start()
        atexit.register(self.close)

    def close(self) -> None:
        """Stop the background threads and close the sockets, then the writer once everything accepted is written.

        Nothing to do where they never started (a `flask` command's app).
        """
        if not self.running:
            return
        self.relay.close()
        self.alerts.close()
        self.reports.close()
        self.webhooks.close()
        self.writer.close()


def services() -> ServiceState:
    """The services of the app handling the current request or command."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]
