"""POST /v1/events without Flask's per-request work, when the request needs none of it.

Most of the service's requests are batches of events that the compiled path accepts
(ingest/events/compiled.py). Routing, the request context and a dozen hooks cost about as much
CPU as decoding the batch, so such a request is answered here instead: one sent with a
Content-Length within the limit, no Idempotency-Key and no query string, from an address within
its rate limit. It gets the same status, body and headers as the view would give
(tests/test_shortcut.py holds them equal), is counted in the same rate-limit bucket and request
metrics, and carries a request id.

Every other request goes on to Flask as it came, the body already read put back. What was decided
here travels with it in the WSGI environ: the rate-limit decision (so a request is counted once),
the request id, and the error met offering the batch (the writer did not take it, or anything
else went wrong): the view raises that instead of offering the batch again, which could store it
twice, and the answer is the /v1 error body as always.

Under gunicorn the server's event loop calls it first, with LOOP in the environ
(runtime/loop_answers.py): then it queues the batch without waiting for its commit and returns a
`Later`, whose answer the loop writes once the writer has committed it, or `Declined`. A declined
request goes to a request thread with what was decided carried in its environ (RATE_DECISION
among it), and reaches Flask from here without being counted or offered again.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from weather_metrics.core.ratelimit import TokenBucketLimiter
from weather_metrics.ingest.delivery import outcome, submit
from weather_metrics.runtime.logs import current_request_id
from weather_metrics.runtime.loop_answers import LOOP, Declined, Later
from weather_metrics.runtime.prometheus import http_request_duration_seconds, http_requests_total
from weather_metrics.web.observability import REQUEST_ID, REQUEST_ID_KEY

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from weather_metrics.core.ratelimit import Decision
    from weather_metrics.store.batches import PendingBatch
    from weather_metrics.web.services import ServiceState

PATH = "/v1/events"
MAX_BODY_BYTES = 100 * 1024
# What the shortcut hands on to Flask in the environ.
RATE_DECISION = "weather_metrics.rate_limit"
OFFER_FAILED = "weather_metrics.offer_failed"
# What a declined request's environ carries to its request thread.
CARRIED = (RATE_DECISION, REQUEST_ID_KEY, OFFER_FAILED)


def bucket_key(bucket: str, address: str | None) -> str:
    """The limiter key of an address's `bucket`: "events" (POST /v1/events) or "reads" (/v1 reads, pages)."""
    return f"{bucket}:{address or 'unknown'}"


class EventsShortcut:
    """WSGI middleware in front of the Flask app: answers plain accepted batches, passes on the rest."""

    def __init__(self, app: WSGIApplication, state: ServiceState, dumps: Callable[..., str]) -> None:
        self.app = app
        self.state = state
        self.dumps = dumps
        labels = ("POST", PATH, "200")
        self.requests = http_requests_total.labels(*labels)
        # Whether the rate limit is this process's own (no Redis): only then may the event loop ask it.
        self.in_process = isinstance(state.limiter, TokenBucketLimiter)
        self.duration = http_request_duration_seconds.labels(*labels)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes] | Later | Declined:
        length = plain_length(environ)
        if LOOP in environ and (length is None or not self.in_process):
            return declined(environ)  # nothing decided: a shared limiter's round trip must not hold the event loop
        if length is None or RATE_DECISION in environ:  # not one for here, or decided already by the event loop
            return self.app(environ, start_response)
        started = time.perf_counter()
        decision = environ[RATE_DECISION] = self.state.limiter.hit(bucket_key("events", environ.get("REMOTE_ADDR")))
        if not decision.allowed:
            return declined(environ) if LOOP in environ else self.app(environ, start_response)
        raw = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(raw)  # for Flask, should it get the request after all
        given = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = environ[REQUEST_ID_KEY] = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        if LOOP in environ:
            later = Queued(self, decision, request_id, started)
            return later if len(raw) == length and later.offer(raw, environ) else declined(environ)
        answer = None
        if len(raw) == length:  # else the client went away: Flask's answer to a short body
            token = current_request_id.set(request_id)
            try:
                answer = self.state.intake.accept_plain(raw)
            except Exception as exc:  # noqa: BLE001 - rendered by Flask's /v1 error handler, as the view's would be
                environ[OFFER_FAILED] = exc
            finally:
                current_request_id.reset(token)
        if answer is None:
            return self.app(environ, start_response)
        status, headers, body = self.answered(answer, decision, request_id, started)
        start_response(status, headers)
        return [body]

    def answered(
        self, answer: dict[str, Any], decision: Decision, request_id: str, started: float
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """The 200 answer to an accepted batch, counted and timed: status, headers, body."""
        body = (self.dumps(answer, separators=(",", ":")) + "\n").encode()  # as jsonify writes it
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        headers += decision.headers().items()
        headers.append(("X-Request-ID", request_id))
        self.requests.inc()
        self.duration.observe(time.perf_counter() - started)
        return "200 OK", headers, body


def declined(environ: WSGIEnvironment) -> Declined:
    """The event loop's answer for a request a thread must take: what was decided goes with it."""
    return Declined({key: environ[key] for key in CARRIED if key in environ})


class Queued(Later):
    """A batch the event loop queued without waiting: its answer once committed (at once with ack = enqueue).

    `carried(failure)` is what a request thread's environ must hold when the request goes to Flask
    after all (the commit was refused or did not come in time): the batch is not offered again.
    """

    def __init__(self, shortcut: EventsShortcut, decision: Decision, request_id: str, started: float) -> None:
        self.shortcut = shortcut
        self.decision = decision
        self.request_id = request_id
        self.started = started
        self.batch: PendingBatch | None = None

    def offer(self, raw: bytes, environ: WSGIEnvironment) -> bool:
        """Validate and queue the body; False (the environ says why, if anything failed) when Flask must judge it."""
        intake = self.shortcut.state.intake
        token = current_request_id.set(self.request_id)
        try:
            batch = intake.plain_batch(raw, wait=False)
            if batch is None:
                return False
            if intake.ack_on_commit:
                batch.on_done = partial(environ[LOOP], self)
            submit(intake.writer, batch)
        except Exception as exc:  # noqa: BLE001 - rendered by Flask's /v1 error handler, as the view's would be
            environ[OFFER_FAILED] = exc
            return False
        finally:
            current_request_id.reset(token)
        self.batch = batch
        return True

    @property
    def ready(self) -> bool:
        """Whether the answer is known: the commit happened, or none is awaited."""
        assert self.batch is not None
        return not self.shortcut.state.intake.ack_on_commit or self.batch.done.is_set()

    def answer(self) -> tuple[str, list[tuple[str, str]], bytes]:
        """The 200 answer; raises the ServiceError of a commit that refused the batch."""
        assert self.batch is not None
        result = outcome(self.batch) if self.shortcut.state.intake.ack_on_commit else self.batch.response
        return self.shortcut.answered(result, self.decision, self.request_id, self.started)

    def withdraw(self) -> bool:
        """Take the batch back from the writer's queue; False once it is being written."""
        assert self.batch is not None
        return self.shortcut.state.intake.writer.withdraw(self.batch)

    def carried(self, failure: Exception) -> dict[str, Any]:
        """What was decided, for the environ of the request thread that takes the request instead."""
        return {RATE_DECISION: self.decision, REQUEST_ID_KEY: self.request_id, OFFER_FAILED: failure}


def plain_length(environ: WSGIEnvironment) -> int | None:
    """The body's length when the request may take the shortcut; None when Flask must see it."""
    if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != PATH:
        return None
    if environ.get("QUERY_STRING") or "HTTP_IDEMPOTENCY_KEY" in environ or "HTTP_TRANSFER_ENCODING" in environ:
        return None
    length = environ.get("CONTENT_LENGTH") or ""
    if not (0 < len(length) <= 6 and length.isascii() and length.isdigit()) or int(length) > MAX_BODY_BYTES:
        return None
    return int(length)
