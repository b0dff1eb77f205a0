"""End to end against the real server: gunicorn started from the Procfile, real HTTP, real SQLite."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from contextlib import ExitStack
from http.client import HTTPException
from pathlib import Path

import pytest

from tests import databases
from tests.support import Server, http, make_event


def post_batch(server: Server, batch_id: int, size: int = 20, **headers: str) -> int:
    """Post one batch whose events carry session_id b<batch_id>; returns the status."""
    events = [make_event(session_id=f"b{batch_id}", sequence_number=i, analytics_level="detailed") for i in range(size)]
    try:
        return http("POST", server.url + "/v1/events", {"events": events}, headers=headers, timeout=30)[0]
    except (OSError, HTTPException):
        return 0  # refused, reset or cut short: the server is gone, nothing was acknowledged


def stored_per_batch(database: Path) -> Counter[str]:
    return Counter(dict(databases.rows(database, "SELECT session_id, COUNT(*) FROM events GROUP BY session_id")))


class Stream:
    """Threads posting numbered batches until stopped; remembers which were acknowledged."""

    def __init__(self, server: Server, threads: int = 4, size: int = 20, first: int = 0) -> None:
        """`first`: the number of the first batch (streams to several servers number theirs apart)."""
        self.server, self.size = server, size
        self.acked: list[int] = []
        self.statuses: Counter[int] = Counter()
        self._next = iter(range(first, first + 1_000_000))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                batch_id = next(self._next)
            status = post_batch(self.server, batch_id, self.size)
            with self._lock:
                self.statuses[status] += 1
                if status == 200:
                    self.acked.append(batch_id)

    def __enter__(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def wait_for_acks(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.acked) >= count, f"only {len(self.acked)} batches acknowledged: {self.statuses}"

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def test_posted_events_come_back_in_stats(tmp_path):
    with Server(tmp_path / "metrics.db") as server:
        events = [make_event(tool="get_weather_summary", service="nifc", response_time_ms=100 + i) for i in range(10)]
        events.append(make_event(tool="get_weather_summary", status="error", error_type="NetworkError", country="CA"))
        status, headers, body = http("POST", server.url + "/v1/events", {"events": events})
        assert (status, body["status"], body["count"]) == (200, "accepted", 11)
        assert "x-ratelimit-remaining" in {k.lower() for k in headers}

        status, _, tool = http("GET", server.url + "/v1/stats/tool/get_weather_summary?period=7d")
        assert status == 200
        assert tool["summary"]["calls"] == 11
        assert tool["summary"]["success_rate"] == round(10 / 11, 4)
        assert {c["country"]: c["calls"] for c in tool["countries"]} == {"US": 10, "CA": 1}

        _, _, errors = http("GET", server.url + "/v1/stats/errors")
        assert [(e["type"], e["count"]) for e in errors["errors"]] == [("NetworkError", 1)]
        _, _, perf = http("GET", server.url + "/v1/stats/performance")
        assert perf["service_distribution"] == {"nifc": 10, "noaa": 1}

        _, _, metrics = http("GET", server.url + "/metrics")
        assert 'events_received_total{analytics_level="standard",tool="get_weather_summary"} 11.0' in metrics
        assert 'http_requests_total{method="POST",route="/v1/events",status_code="200"} 1.0' in metrics
        assert "http_request_duration_seconds_bucket" in metrics
        assert "weather_metrics_writer_queue_rows" in metrics


def test_sigkill_loses_no_acknowledged_event_and_stores_none_twice(tmp_path):
    database = tmp_path / "metrics.db"
    server = Server(database, ack="commit").start()
    with Stream(server) as stream:
        stream.wait_for_acks(40)
        server.stop(signal.SIGKILL)
    acked = list(stream.acked)

    with Server(database) as restarted:  # the service opens the same file again
        assert http("GET", restarted.url + "/v1/health")[0] == 200
    stored = stored_per_batch(database)
    assert all(stored[f"b{batch_id}"] == 20 for batch_id in acked), "an acknowledged batch is missing"
    assert all(count == 20 for count in stored.values()), "a batch was stored partly or twice"


@pytest.mark.parametrize("ack", ["commit", "enqueue"])
def test_sigterm_writes_everything_accepted(tmp_path, ack):
    database = tmp_path / "metrics.db"
    server = Server(database, ack=ack, ack_timeout_seconds=20).start()
    with Stream(server) as stream, ExitStack() as blocker:
        stream.wait_for_acks(10)
        blocker.enter_context(databases.holding_write_lock(database))  # the writer stalls: accepted work piles up
        time.sleep(1.0)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        blocker.close()
        assert server.process.wait(60) == 0
    acked = list(stream.acked)
    stored = stored_per_batch(database)
    assert len(acked) >= 10
    assert all(stored[f"b{batch_id}"] == 20 for batch_id in acked), "an accepted batch was lost on SIGTERM"


def test_overload_answers_503_with_retry_after_and_recovers(tmp_path):
    database = tmp_path / "metrics.db"
    with Server(
        database, queue_max_events=200, metrics_max_items=100, ack_timeout_seconds=1, retry_after_seconds=3
    ) as server:
        blocker = ExitStack()
        blocker.enter_context(databases.holding_write_lock(database))  # the writer is slowed on purpose
        answers: list[tuple[int, dict[str, str], object]] = []

        def post(i: int) -> None:
            events = [make_event(sequence_number=j) for j in range(100)]
            answers.append(http("POST", server.url + "/v1/events", {"events": events}))

        threads = [threading.Thread(target=post, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert http("GET", server.url + "/v1/health")[0] == 200  # readers are not blocked by the writer
        blocker.close()

        statuses = Counter(status for status, _, _ in answers)
        assert statuses[503] >= 10 and set(statuses) <= {200, 503}, statuses
        for status, headers, body in answers:
            if status == 503:
                assert headers["Retry-After"] == "3"
                assert body["error"] == "service_unavailable" and body["retry_after"] == 3

        deadline = time.monotonic() + 15  # what was already in the writer's hands commits first
        while http("GET", server.url + "/v1/status")[2]["queue"]["depth"] and time.monotonic() < deadline:
            time.sleep(0.05)
        status, _, body = http("POST", server.url + "/v1/events", {"events": [make_event()]})
        assert (status, body.get("count")) == (200, 1), body
        assert http("GET", server.url + "/v1/health")[2]["status"] == "healthy"


def test_idempotent_retry_over_http_is_counted_once(tmp_path):
    with Server(tmp_path / "metrics.db") as server:
        body = {"events": [make_event(tool="get_alerts")] * 3}
        first = http("POST", server.url + "/v1/events", body, headers={"Idempotency-Key": "retry-1"})
        second = http("POST", server.url + "/v1/events", body, headers={"Idempotency-Key": "retry-1"})
        assert first[0] == second[0] == 200
        assert first[2] == second[2]
        _, _, tools = http("GET", server.url + "/v1/stats/tools")
        assert {t["name"]: t["calls"] for t in tools["tools"]} == {"get_alerts": 3}


def test_rate_limit_holds_for_the_whole_server(tmp_path):
    server = Server(tmp_path / "metrics.db")
    server.env.pop("WEATHER_METRICS_RATE_LIMIT_PER_MINUTE")  # the default: 60 a minute plus a burst of 10
    with server:
        statuses = [http("GET", server.url + "/v1/stats/tools")[0] for _ in range(71)]
        assert statuses[:70] == [200] * 70
        status, headers, body = http("GET", server.url + "/v1/stats/tools")
        assert status == 429 and statuses[70] == 429
        assert body["error"] == "rate_limit_exceeded" and body["retry_after"] >= 1
        assert int(headers["Retry-After"]) >= 1 and headers["x-ratelimit-remaining"] == "0"
        assert http("GET", server.url + "/v1/health")[0] == 200  # exempt
        assert http("GET", server.url + "/metrics")[0] == 200  # exempt


def test_health_reports_a_broken_database(tmp_path):
    database = tmp_path / "metrics.db"
    with Server(database) as server:
        databases.rows(database, "DROP TABLE schema_version")
        status, _, body = http("GET", server.url + "/v1/health")
        assert (status, body) == (503, {"status": "unhealthy", "database": "disconnected"})
        assert http("GET", server.url + "/v1/status")[2]["database"]["connected"] is False
