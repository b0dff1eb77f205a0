"""Webhooks: registration, subscribers, and the deliverer that sends them (secrets and signatures: signing.py).

A delivery is a row of webhook_deliveries, written when the event happens, so pending
deliveries survive a restart. `WebhookDeliverer.run_once` sends the oldest due one;
failed attempts are retried with exponential backoff and jitter, and a webhook whose
deliveries keep failing is disabled.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from weather_metrics.core.errors import NotFound, ServiceError
from weather_metrics.core.times import HOUR, iso
from weather_metrics.runtime.loops import StepThreads
from weather_metrics.runtime.prometheus import webhook_deliveries_total, webhooks_disabled_total
from weather_metrics.store import versions
from weather_metrics.store.batches import PendingBatch
from weather_metrics.store.db import database, write_transaction
from weather_metrics.store.models import Webhook, WebhookDelivery
from weather_metrics.webhooks import transport
from weather_metrics.webhooks.signing import SecretBox, signed_body
from weather_metrics.webhooks.subscribers import Subscribers
from weather_metrics.webhooks.transport import DeliveryError, Resolver

log = logging.getLogger(__name__)


EVENTS = ("metrics.collected", "alert.triggered")
MAX_PER_ORGANIZATION = 20
SECRET_LENGTH = (16, 256)
BACKOFF_BASE = 30.0  # seconds before the second attempt
BACKOFF_CAP = float(HOUR)
JITTER = 0.2
IDLE_WAIT = 0.5  # seconds a deliverer thread sleeps when nothing is due
REGISTRATION_DNS_SECONDS = 3.0  # a registration waits this long for DNS
CLAIM_CANDIDATES = 8  # due deliveries read at once; another process may claim some of them first
HEADER_SIGNATURE = "X-Webhook-Signature"
HEADER_TIMESTAMP = "X-Webhook-Timestamp"
HEADER_DELIVERY = "X-Webhook-Delivery"
HEADER_EVENT = "X-Webhook-Event"


def validation_problems(body: Any, allow_private: bool, resolver: Resolver = socket.getaddrinfo) -> dict[str, str]:
    """What is wrong with a registration body (organization_id is checked by the view); empty when fine."""
    if not isinstance(body, dict):
        return {"body": "Must be a JSON object"}
    problems: dict[str, str] = {}
    unknown = sorted(set(body) - {"hook_url", "events", "organization_id", "secret"})
    if unknown:
        problems[unknown[0]] = "Unknown field"
    url = body.get("hook_url")
    try:
        _scheme, host, port, _path = transport.parse_target(url)
        if not allow_private:  # a slow name server must not hold the request: delivery checks again
            transport.checked_addresses(host, port, allow_private, transport.within(REGISTRATION_DNS_SECONDS, resolver))
    except DeliveryError as exc:
        if url is None:
            problems["hook_url"] = "Required"
        elif exc.retryable:  # resolution failed: checked again at every delivery
            pass
        else:
            problems["hook_url"] = str(exc)
    events = body.get("events")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        problems["events"] = f"Must be a non-empty list of event names: {', '.join(EVENTS)}"
    elif set(events) - set(EVENTS):
        problems["events"] = f"Unknown event {sorted(set(events) - set(EVENTS))[0]!r}; one of {', '.join(EVENTS)}"
    secret = body.get("secret")
    if not isinstance(secret, str) or not SECRET_LENGTH[0] <= len(secret) <= SECRET_LENGTH[1]:
        problems["secret"] = f"Required: a string of {SECRET_LENGTH[0]} to {SECRET_LENGTH[1]} characters"
    if not isinstance(body.get("organization_id"), str):
        problems["organization_id"] = "Required: the organization of the API key"
    return problems


def register(organization_id: str, body: dict[str, Any], box: SecretBox, now: datetime) -> Webhook:
    """Store a validated registration; TooMany past MAX_PER_ORGANIZATION."""
    with write_transaction():
        if Webhook.select().where(Webhook.organization == organization_id).count() >= MAX_PER_ORGANIZATION:
            raise TooMany(f"An organization has at most {MAX_PER_ORGANIZATION} webhooks")
        versions.bump([versions.WEBHOOKS])
        return Webhook.create(
            id=str(uuid.uuid4()),
            organization=organization_id,
            url=body["hook_url"],
            events=json.dumps(sorted(set(body["events"]))),
            secret_encrypted=box.seal(body["secret"]),
            secret_hint=body["secret"][-4:],
            enabled=True,
            consecutive_failures=0,
            created_at=int(now.timestamp()),
        )


class TooMany(ServiceError):
    """The organization already has the most webhooks allowed."""


def find_hook(organization_id: str, hook_id: str) -> Webhook:
    hook = Webhook.get_or_none((Webhook.id == hook_id) & (Webhook.organization == organization_id))
    if hook is None:
        raise NotFound(f"Webhook {hook_id} not found")
    return hook


def delete_hook(organization_id: str, hook_id: str) -> None:
    """Delete the webhook with its deliveries; NotFound when it is not the organization's."""
    with write_transaction():
        hook = find_hook(organization_id, hook_id)
        versions.bump([versions.WEBHOOKS])
        WebhookDelivery.delete().where(WebhookDelivery.webhook == hook.id).execute()
        hook.delete_instance()


def hook_view(hook: Webhook) -> dict[str, Any]:
    """The webhook as the API shows it: never its secret, only the last 4 characters."""
    return {
        "id": hook.id,
        "organization_id": hook.organization_id,
        "hook_url": hook.url,
        "events": json.loads(hook.events),
        "enabled": hook.enabled,
        "disabled_reason": hook.disabled_reason,
        "consecutive_failures": hook.consecutive_failures,
        "secret_hint": "****" + hook.secret_hint,
        "created_at": iso(hook.created_at),
    }


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    finished = delivery.finished_at
    return {
        "id": delivery.id,
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "last_error": delivery.last_error,
        "created_at": iso(delivery.created_at),
        "finished_at": None if finished is None else iso(finished),
        "payload": json.loads(delivery.payload),
        "log": json.loads(delivery.attempt_log),
    }


def recent_deliveries(hook: Webhook, limit: int) -> list[dict[str, Any]]:
    rows = (
        WebhookDelivery.select()
        .where(WebhookDelivery.webhook == hook.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit)
    )
    return [delivery_view(row) for row in rows]


def enqueue(hook_ids: list[str], event: str, payload: dict[str, Any], now: int) -> None:
    """One pending delivery of `payload` per webhook that still exists and is enabled, due now.

    The ids come from a cache that another process may not have refreshed yet: a webhook
    deleted there is skipped here, not allowed to fail the other deliveries (or an alert).
    """
    with write_transaction():
        enabled = Webhook.select(Webhook.id).where(Webhook.id.in_(hook_ids) & (Webhook.enabled == True))  # noqa: E712
        existing = {h.id for h in enabled}
        rows = [
            {
                "id": str(uuid.uuid4()),
                "webhook": hook_id,
                "event": event,
                "payload": json.dumps(payload, sort_keys=True),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "attempt_log": "[]",
                "created_at": now,
            }
            for hook_id in hook_ids
            if hook_id in existing
        ]
        if rows:
            WebhookDelivery.insert_many(rows).execute()


def collected_recorder(subscribers: Subscribers) -> Callable[[list[PendingBatch]], None]:
    """A `write_batches` hook: a metrics.collected delivery per subscribed webhook and stored organization batch.

    It runs inside the commit's transaction, so a batch's deliveries commit with its rows: a
    batch is acknowledged only with them, and a webhook registered after that never hears it.
    """

    def record(batches: list[PendingBatch]) -> None:
        try:
            with database.atomic():  # a savepoint: the rows commit even if their deliveries cannot be stored
                enqueue_collected(batches)
        except Exception:  # noqa: BLE001 - losing a delivery must not lose the data
            log.exception("metrics.collected deliveries of a commit could not be stored")

    def enqueue_collected(batches: list[PendingBatch]) -> None:
        now = datetime.now(UTC)
        for batch in batches:
            if batch.kind is None or not batch.stored or not batch.rows:
                continue  # /v1 events, replays and refused batches fire nothing
            organization_id = batch.organization_id
            assert organization_id is not None  # an organization batch
            hook_ids = subscribers.of(organization_id, "metrics.collected")
            if hook_ids:
                payload = {
                    "event": "metrics.collected",
                    "organization_id": organization_id,
                    "batch_id": batch.response["batch_id"],
                    "metric_count": batch.stored,
                    "timestamp": iso(now),
                }
                enqueue(hook_ids, "metrics.collected", payload, int(now.timestamp()))

    return record


def backoff(attempt: int, rng: random.Random) -> float:
    """Seconds before the attempt after `attempt`: 30 s doubling, ±20% jitter, at most an hour."""
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1) * rng.uniform(1 - JITTER, 1 + JITTER))


class WebhookDeliverer:
    """Sends due deliveries: `run_once` sends one; `start` runs `webhook_workers` threads around it."""

    def __init__(
        self,
        settings: dict[str, Any],
        box: SecretBox,
        subscribers: Subscribers,
        clock: Callable[[], float] = time.time,
        resolver: Resolver = socket.getaddrinfo,
        rng: random.Random | None = None,
    ) -> None:
        self._allow_private = bool(settings["webhook_allow_private"])
        self._timeout = float(settings["webhook_timeout_seconds"])
        self._max_attempts = int(settings["webhook_max_attempts"])
        self._disable_after = int(settings["webhook_disable_after_failures"])
        self._workers = int(settings["webhook_workers"])
        self.box = box
        self.subscribers = subscribers
        self._clock = clock
        self._resolver = resolver
        self._rng = rng or random.Random()
        # A claimed delivery is not due again before this; a crash mid-send retries it after. An
        # attempt ends within the timeout (a total deadline, see transport), well inside its lease,
        # so one delivery is never sent twice at once.
        self._lease = int(self._timeout * 2 + 60)
        self._sending: set[str] = set()  # organizations with an attempt in flight in this process
        self._sending_lock = threading.Lock()
        self._claiming = threading.Lock()
        self._threads = StepThreads(
            "webhook",
            self._workers,
            lambda _number: self.run_once(datetime.fromtimestamp(self._clock(), UTC)),
            IDLE_WAIT,
        )

    def _due(self, at: int) -> Any:
        """The due deliveries of enabled webhooks, oldest first, but none of an organization being sent to."""
        due = (
            (WebhookDelivery.status == "pending") & (WebhookDelivery.next_attempt_at <= at) & (Webhook.enabled == True)  # noqa: E712 - peewee expression
        )
        busy = sorted(self._sending)  # one attempt at a time per organization (see run_once)
        if busy:
            due &= Webhook.organization.not_in(busy)
        oldest = (WebhookDelivery.next_attempt_at, WebhookDelivery.created_at, WebhookDelivery.id)
        return WebhookDelivery.select(WebhookDelivery, Webhook).join(Webhook).where(due).order_by(*oldest)

    def _claim(self, at: int) -> tuple[WebhookDelivery, Webhook] | None:
        """The oldest due delivery we could claim (read without the write lock), its attempt counted, leased to us."""
        with self._claiming:  # our threads in turn: each reads the organizations the one before took
            for delivery in list(self._due(at).limit(CLAIM_CANDIDATES)):
                pending = (WebhookDelivery.status == "pending") & (WebhookDelivery.attempts == delivery.attempts)
                still_due = (WebhookDelivery.id == delivery.id) & pending & (WebhookDelivery.next_attempt_at <= at)
                with write_transaction():  # holds only while still pending at the attempt read: one sender
                    counted = WebhookDelivery.update(
                        attempts=WebhookDelivery.attempts + 1, next_attempt_at=at + self._lease
                    )
                    claimed = counted.where(still_due).execute()
                    fresh = WebhookDelivery.get_by_id(delivery.id) if claimed else None
                if fresh is not None:
                    with self._sending_lock:
                        self._sending.add(delivery.webhook.organization_id)
                    return fresh, delivery.webhook
        return None

    def _send(self, delivery: WebhookDelivery, hook: Webhook, at: int) -> int:
        body, signature = signed_body(json.loads(delivery.payload), self.box.open(hook.secret_encrypted), at)
        headers = {
            HEADER_SIGNATURE: signature,
            HEADER_TIMESTAMP: str(at),
            HEADER_DELIVERY: delivery.id,
            HEADER_EVENT: delivery.event,
        }
        return transport.post(hook.url, body, headers, self._timeout, self._allow_private, self._resolver)

    def run_once(self, now: datetime) -> bool:
        """Send the oldest due delivery; False when none was due."""
        at = int(now.timestamp())
        claimed = self._claim(at)
        if claimed is None:
            return False
        delivery, hook = claimed
        started = time.perf_counter()
        status: int | None
        try:
            status, error, retryable = self._send(delivery, hook, at), None, False
        except DeliveryError as exc:
            status, error, retryable = exc.status, str(exc), exc.retryable
        except Exception as exc:  # noqa: BLE001 - e.g. a secret that no longer decrypts: not retryable
            log.exception("webhook delivery %s failed", delivery.id)
            status, error, retryable = None, f"internal error: {type(exc).__name__}", False
        finally:
            # A slow receiver of one organization never holds every thread: its next delivery
            # waits until this attempt ends, while other organizations' go out.
            with self._sending_lock:
                self._sending.discard(hook.organization_id)
        attempt = {
            "attempt": delivery.attempts,
            "at": iso(now),
            "status_code": status,
            "error": error,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        self._record(delivery, hook, at, attempt, retryable)
        return True

    def _record(self, delivery: WebhookDelivery, hook: Webhook, at: int, attempt: dict[str, Any], retry: bool) -> None:
        """Store the attempt and what follows from it: done, retried later, or given up."""
        log_entries = [*json.loads(delivery.attempt_log), attempt]
        changes: dict[str, Any] = {"attempt_log": json.dumps(log_entries), "last_error": attempt["error"]}
        if attempt["error"] is None:
            changes.update(status="delivered", finished_at=at)
        elif retry and delivery.attempts < self._max_attempts:
            changes["next_attempt_at"] = at + round(backoff(delivery.attempts, self._rng))
        else:
            changes.update(status="failed", finished_at=at)
        disabled: int | None = None
        ours = (WebhookDelivery.id == delivery.id) & (WebhookDelivery.status == "pending")
        ours &= WebhookDelivery.attempts == delivery.attempts  # not claimed again since: our lease held
        with write_transaction():
            if not WebhookDelivery.update(**changes).where(ours).execute():
                log.warning(
                    "webhook delivery %s: attempt %d ended after its lease; not recorded",
                    delivery.id,
                    delivery.attempts,
                )
                return
            if changes.get("status") == "delivered":
                Webhook.update(consecutive_failures=0).where(Webhook.id == hook.id).execute()
            elif changes.get("status") == "failed":
                disabled = self._count_failure(hook, attempt["error"], at)
        webhook_deliveries_total.labels(changes.get("status", "retried")).inc()
        if disabled is not None:  # and its pending deliveries failed with it
            webhooks_disabled_total.inc()
            webhook_deliveries_total.labels("failed").inc(disabled)
        if attempt["error"] is not None:
            retry_in = changes["next_attempt_at"] - at if "next_attempt_at" in changes else None
            _log_failed_attempt(delivery, hook, attempt, retry_in, disabled)

    def _count_failure(self, hook: Webhook, error: str, at: int) -> int | None:
        """Count a failed delivery and, past the limit, disable the webhook: then, how many pending ones it failed."""
        Webhook.update(consecutive_failures=Webhook.consecutive_failures + 1).where(Webhook.id == hook.id).execute()
        failures = Webhook.get_by_id(hook.id).consecutive_failures
        if failures < self._disable_after:
            return None
        reason = f"disabled after {failures} consecutive failed deliveries; last error: {error}"
        Webhook.update(enabled=False, disabled_reason=reason).where(Webhook.id == hook.id).execute()
        versions.bump([versions.WEBHOOKS])
        dropped = (
            WebhookDelivery.update(status="failed", finished_at=at, last_error="webhook disabled")
            .where((WebhookDelivery.webhook == hook.id) & (WebhookDelivery.status == "pending"))
            .execute()
        )
        return int(dropped)

    # -- threads -------------------------------------------------------------------------------

    def start(self) -> None:
        self._threads.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the threads after the delivery each is sending; idempotent."""
        self._threads.close(timeout)


def _log_failed_attempt(
    delivery: WebhookDelivery, hook: Webhook, attempt: dict[str, Any], retry_in: int | None, disabled: int | None
) -> None:
    """A failed attempt at WARNING: its ids, the receiver's status or the error, and what follows.

    Never the URL: it may hold a token of the receiver's.
    """
    outcome = "given up" if retry_in is None else f"retrying in {retry_in}s"
    if disabled is not None:
        outcome += f"; webhook disabled (webhook_disable_after_failures), {disabled} pending deliveries failed with it"
    fields: dict[str, Any] = {"event": "webhook_delivery_failed", "webhook_id": hook.id, "delivery_id": delivery.id}
    fields.update((key, attempt[key]) for key in ("attempt", "status_code", "error"))
    fields.update(
        organization_id=hook.organization_id, will_retry=retry_in is not None, webhook_disabled=disabled is not None
    )
    message = "webhook %s delivery %s attempt %d failed: %s; %s"
    log.warning(message, hook.id, delivery.id, attempt["attempt"], attempt["error"], outcome, extra=fields)
