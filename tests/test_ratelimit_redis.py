"""Rate limits with redis_url: every instance of a service spends one allowance, and Redis failing is no 500.

Real parts: two gunicorn servers on one database, the machine's Redis (each test's keys are named
after its own database, and deleted afterwards), and a private redis-server for the outage test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests import databases
from tests.redis_store import local_redis_url, private_redis
from tests.support import Server, free_port, http
from weather_metrics.core.ratelimit import TokenBucketLimiter
from weather_metrics.core.shared_ratelimit import SharedTokenBucketLimiter, redis_client
from weather_metrics.settings import SettingsError, load_settings
from weather_metrics.web.limits import key_prefix

# Six requests, then one a minute: no token comes back while a test runs.
SMALL_BUCKET = {"rate_limit_per_minute": 1, "rate_limit_burst": 5}
WRONG_LOGIN = {"email": "nobody@example.test", "password": "not-the-password-1"}


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """The machine's Redis; the keys of this test's service (named after its database) are deleted afterwards."""
    url = local_redis_url()
    yield url
    client = redis.Redis.from_url(url)
    prefix = key_prefix({"database": databases.location(tmp_path / "metrics.db")})
    for key in client.scan_iter(match=f"*{prefix}*"):
        client.delete(key)
    client.close()


def servers(path: Path, **settings: object) -> tuple[Server, Server]:
    """Two instances of one service: two gunicorn servers on two ports, one database."""
    return Server(path, **settings).start(), Server(path, **settings).start()


def test_two_instances_share_one_v1_allowance_and_one_login_limit(tmp_path: Path, redis_url: str) -> None:
    first, second = servers(
        tmp_path / "metrics.db", redis_url=redis_url, login_rate_limit_per_ip="3 per hour", **SMALL_BUCKET
    )
    try:
        answers = [http("GET", server.url + "/v1/stats/overview") for server in (first, second) * 4]
        statuses = [status for status, _, _ in answers]
        assert statuses == [200] * 6 + [429] * 2, statuses
        assert [h["x-ratelimit-remaining"] for _, h, _ in answers] == ["5", "4", "3", "2", "1", "0", "0", "0"]
        assert {h["x-ratelimit-limit"] for _, h, _ in answers} == {"6"}
        # One bucket: each token taken, on either instance, puts its full moment a minute later.
        resets = [int(h["x-ratelimit-reset"]) - int(answers[0][1]["x-ratelimit-reset"]) for _, h, _ in answers]
        assert all(abs(got - 60 * min(i, 5)) <= 2 for i, got in enumerate(resets)), resets
        status, headers, body = answers[-1]
        assert body["error"] == "rate_limit_exceeded" and body["message"] == "Too many requests, please try again later"
        assert 1 <= body["retry_after"] <= 60 and headers["Retry-After"] == str(body["retry_after"])

        logins = [http("POST", server.url + "/api/auth/login", WRONG_LOGIN)[0] for server in (first, second) * 2]
        assert logins == [401, 401, 401, 429], logins
    finally:
        first.stop()
        second.stop()


def test_the_shared_buckets_answer_what_one_process_would(tmp_path: Path, redis_url: str) -> None:
    own = TokenBucketLimiter(1, 5)
    prefix = key_prefix({"database": databases.location(tmp_path / "metrics.db")}) + ":v1"
    shared = SharedTokenBucketLimiter(redis_client(redis_url), prefix, TokenBucketLimiter(1, 5))
    for cost in (1, 2, 1, 3, 1):
        mine, theirs = own.hit("reads:10.0.0.1", cost), shared.hit("reads:10.0.0.1", cost)
        assert (theirs.allowed, theirs.limit, theirs.remaining) == (mine.allowed, mine.limit, mine.remaining)
        assert abs(theirs.reset_at - mine.reset_at) <= 2 and theirs.retry_after == mine.retry_after
    assert shared.hit("reads:10.0.0.2").remaining == 5  # another address, another bucket
    # The key vanishes once its bucket would be full again: here after 6 minutes, with a second's margin.
    ttl = redis.Redis.from_url(redis_url).pttl(f"{prefix}:reads:10.0.0.1")
    assert 5 * 60_000 < ttl <= 6 * 60_000 + 1000


def test_redis_failing_leaves_each_instance_counting_alone_and_recovers(tmp_path: Path) -> None:
    port = free_port()
    with private_redis(tmp_path, port) as store:
        server = Server(
            tmp_path / "metrics.db", redis_url=store.url, login_rate_limit_per_ip="1000 per hour", **SMALL_BUCKET
        )
        with server:
            assert http("GET", server.url + "/v1/stats/overview")[1]["x-ratelimit-remaining"] == "5"
            assert http("GET", server.url + "/v1/stats/overview")[1]["x-ratelimit-remaining"] == "4"
            store.stop()
            # Not 500, not 503: the process's own bucket (full, never used) decides, and ingestion goes on.
            status, headers, _ = http("GET", server.url + "/v1/stats/overview")
            assert (status, headers["x-ratelimit-remaining"]) == (200, "5")
            assert http("POST", server.url + "/v1/events", {"events": []})[0] != 500
            assert http("POST", server.url + "/api/auth/login", WRONG_LOGIN)[0] == 401
            metrics = http("GET", server.url + "/metrics")[2]
            assert 'weather_metrics_rate_limit_fallbacks_total{limiter="v1"}' in metrics
            assert 'weather_metrics_rate_limit_fallbacks_total{limiter="v1"} 0.0' not in metrics
            assert 'weather_metrics_rate_limit_fallbacks_total{limiter="api"} 0.0' not in metrics
            assert "rate-limit store unreachable" in server.log.read_text()

            store.start()  # empty: the shared counts start again
            client = redis.Redis.from_url(store.url)
            deadline = time.monotonic() + 60  # /v1 tries Redis again after 5 s, flask-limiter after up to 32 s
            while not (client.keys("*:v1:reads:*") and client.keys("*login-address*")):
                assert time.monotonic() < deadline, "the limits never went back to Redis"
                http("GET", server.url + "/v1/stats/overview")
                http("POST", server.url + "/api/auth/login", WRONG_LOGIN)
                time.sleep(0.5)
            assert "rate-limit store answers again" in server.log.read_text()


def test_a_redis_url_that_is_not_one_stops_start_up() -> None:
    for url in ("http://127.0.0.1:6379", "redis://127.0.0.1:port", "redis://"):
        with pytest.raises(SettingsError, match="setting 'redis_url'"):
            load_settings({"redis_url": url}, environ={})


@pytest.mark.parametrize(
    ("setting", "url"),
    [
        ("redis_url", "redis://:s3cret-pw@:6379/0"),  # no host
        ("redis_url", "redis://:s3cret-pw@127.0.0.1:63790x/0"),  # a port that is not a number
        ("redis_url", "http://user:s3cret-pw@127.0.0.1:6379"),
        ("rate_limit_storage", "rediss+sentinel://:s3cret-pw@127.0.0.1:26379/main"),
    ],
)
def test_a_url_that_is_refused_at_start_up_is_named_without_its_password(setting: str, url: str) -> None:
    with pytest.raises(SettingsError, match=f"setting '{setting}'") as refused:
        load_settings({setting: url}, environ={})
    assert "s3cret" not in str(refused.value)  # the password stays out of logs
    assert ":6379" in str(refused.value) or "127.0.0.1" in str(refused.value)  # the rest says which URL it was


def test_a_redis_that_does_not_answer_stops_start_up(make_app) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        SettingsError, match=r"setting 'redis_url': Redis does not answer at redis://127\.0\.0\.1"
    ) as refused:
        make_app(redis_url=f"redis://:secret@127.0.0.1:{free_port()}/0")
    assert "secret" not in str(refused.value)  # the password stays out of logs
