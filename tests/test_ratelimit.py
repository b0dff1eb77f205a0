"""TokenBucketLimiter: per_minute + burst at once, refill of per_minute a minute, per client."""

from __future__ import annotations

import threading

from tests.support import make_event
from weather_metrics.core.ratelimit import TokenBucketLimiter

START = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drain(limiter: TokenBucketLimiter, key: str, attempts: int) -> int:
    return sum(limiter.hit(key).allowed for _ in range(attempts))


def test_capacity_is_per_minute_plus_burst_then_denied():
    clock = FakeClock()
    limiter = TokenBucketLimiter(60, 10, clock=clock)
    decisions = [limiter.hit("1.2.3.4") for _ in range(70)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == list(range(69, -1, -1))
    denied = limiter.hit("1.2.3.4")
    assert not denied.allowed
    assert denied.remaining == 0
    assert denied.retry_after >= 1


def test_retry_after_is_the_wait_for_one_token():
    clock = FakeClock()
    limiter = TokenBucketLimiter(6, 2, clock=clock)  # a token every 10 s
    assert drain(limiter, "k", 8) == 8
    denied = limiter.hit("k")
    assert (denied.allowed, denied.retry_after) == (False, 10)
    clock.advance(4)
    assert limiter.hit("k").retry_after == 6
    clock.advance(6)
    allowed = limiter.hit("k")
    assert allowed.allowed and allowed.retry_after == 0
    assert not limiter.hit("k").allowed


def test_a_request_may_cost_several_tokens():
    """A page that runs the queries of four /v1/stats requests takes four tokens, and waits for four."""
    clock = FakeClock()
    limiter = TokenBucketLimiter(6, 3, clock=clock)  # 9 at once, a token every 10 s
    assert [limiter.hit("k", cost=4).allowed for _ in range(3)] == [True, True, False]
    denied = limiter.hit("k", cost=4)
    assert (denied.remaining, denied.retry_after) == (1, 30)
    assert limiter.hit("k").allowed  # the one token left still serves a cheap request
    clock.advance(39)
    assert not limiter.hit("k", cost=4).allowed
    clock.advance(1)
    assert limiter.hit("k", cost=4).allowed


def test_a_cost_above_the_bucket_takes_a_full_bucket():
    clock = FakeClock()
    limiter = TokenBucketLimiter(1, 0, clock=clock)
    assert limiter.hit("k", cost=4).allowed
    denied = limiter.hit("k", cost=4)
    assert (denied.allowed, denied.retry_after) == (False, 60)


def test_retry_after_is_at_least_one_second():
    clock = FakeClock()
    limiter = TokenBucketLimiter(6000, 0, clock=clock)  # a token every 10 ms
    assert drain(limiter, "k", 6000) == 6000
    denied = limiter.hit("k")
    assert not denied.allowed
    assert denied.retry_after == 1


def test_refills_per_minute_every_sixty_seconds():
    clock = FakeClock()
    limiter = TokenBucketLimiter(60, 10, clock=clock)
    assert drain(limiter, "k", 70) == 70
    clock.advance(60)
    assert drain(limiter, "k", 100) == 60
    clock.advance(30)
    assert drain(limiter, "k", 100) == 30


def test_refill_stops_at_capacity():
    clock = FakeClock()
    limiter = TokenBucketLimiter(60, 10, clock=clock)
    assert drain(limiter, "k", 5) == 5
    clock.advance(3600)
    assert drain(limiter, "k", 200) == 70


def test_headers_report_limit_remaining_and_reset():
    clock = FakeClock()
    limiter = TokenBucketLimiter(60, 10, clock=clock)
    first = limiter.hit("k")
    assert first.headers() == {
        "x-ratelimit-limit": "70",
        "x-ratelimit-remaining": "69",
        "x-ratelimit-reset": str(int(START) + 1),  # one token back after a second
    }
    drain(limiter, "k", 69)
    empty = limiter.hit("k")
    assert empty.headers() == {
        "x-ratelimit-limit": "70",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(int(START) + 70),  # full again after 70 tokens at 1/s
    }


def test_reset_rounds_up_to_a_whole_second():
    clock = FakeClock(START + 0.25)
    limiter = TokenBucketLimiter(60, 0, clock=clock)
    decision = limiter.hit("k")
    assert decision.headers()["x-ratelimit-reset"] == str(int(START) + 2)  # 1.25 s later, rounded up


def test_keys_are_independent():
    clock = FakeClock()
    limiter = TokenBucketLimiter(3, 1, clock=clock)
    assert drain(limiter, "10.0.0.1", 10) == 4
    other = limiter.hit("10.0.0.2")
    assert other.allowed and other.remaining == 3
    assert drain(limiter, "10.0.0.2", 10) == 3
    assert not limiter.hit("10.0.0.1").allowed


def test_forgetting_idle_clients_keeps_an_exhausted_one():
    clock = FakeClock()
    limiter = TokenBucketLimiter(3, 0, clock=clock, max_clients=2)
    assert drain(limiter, "greedy", 5) == 3
    for n in range(10):
        limiter.hit(f"visitor-{n}")
    assert not limiter.hit("greedy").allowed


def test_threads_sharing_a_key_get_exactly_capacity():
    clock = FakeClock()
    limiter = TokenBucketLimiter(60, 10, clock=clock)
    threads_count, hits_each = 16, 25
    barrier = threading.Barrier(threads_count)
    allowed = [0] * threads_count

    def worker(index: int) -> None:
        barrier.wait(timeout=10)
        allowed[index] = drain(limiter, "shared", hits_each)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert sum(allowed) == 70


def test_http_limit_answers_429_with_retry_after(make_app):
    client = make_app(rate_limit_per_minute=1, rate_limit_burst=1).test_client()
    for remaining in ("1", "0"):
        ok = client.get("/v1/stats/tools")
        assert ok.status_code == 200
        assert ok.headers["x-ratelimit-limit"] == "2"
        assert ok.headers["x-ratelimit-remaining"] == remaining
    limited = client.get("/v1/stats/tools")
    assert limited.status_code == 429
    assert limited.json["error"] == "rate_limit_exceeded"
    assert 1 <= limited.json["retry_after"] <= 60
    assert limited.headers["Retry-After"] == str(limited.json["retry_after"])
    assert client.get("/v1/health").status_code == 200  # health is never limited


def test_ingestion_and_reads_have_separate_buckets_of_the_contracts_size(make_app):
    """A stats read from the address of a weather server must not cost that server a batch."""
    client = make_app(rate_limit_per_minute=1, rate_limit_burst=1).test_client()
    assert [client.get("/v1/stats/overview").status_code for _ in range(3)] == [200, 200, 429]
    batch = {"events": [make_event()]}
    posts = [client.post("/v1/events", json=batch) for _ in range(3)]
    assert [p.status_code for p in posts] == [200, 200, 429]
    assert posts[0].headers["x-ratelimit-limit"] == "2" and posts[0].headers["x-ratelimit-remaining"] == "1"
    assert client.get("/v1/stats/tools").status_code == 429  # reads stay limited on their own


def test_refused_batches_are_logged_with_why_a_few_a_minute_per_address(make_app, caplog):
    client = make_app().test_client()
    bad = {"events": [make_event(tool="Not-A-Tool", session_id="value-never-logged")]}
    with caplog.at_level("INFO", logger="weather_metrics.web.v1.blueprint"):
        for _ in range(5):
            assert client.post("/v1/events", json=bad).status_code == 400
        assert client.post("/v1/events", json=bad, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "weather_metrics.web.v1.blueprint"]
    assert len(lines) == 4, lines  # three for the first address this minute, one for the other
    assert all("400 validation_failed" in line and "events[0].tool" in line for line in lines)
    assert sum("10.0.0.9" in line for line in lines) == 1
    assert not any("Not-A-Tool" in line or "value-never-logged" in line for line in lines)


def test_the_shared_counters_are_named_after_the_database_without_its_password():
    from weather_metrics.web.limits import key_prefix

    def prefix(url: str) -> str:
        return key_prefix({"database": url})

    old, new = prefix("postgresql://svc:old-secret@db:5432/metrics"), prefix("postgresql://svc:new@db:5432/metrics")
    assert old == new
    assert old != prefix("postgresql://svc:old-secret@db:5432/other")
