"""Several gunicorn worker processes on one database: what they must share, they share.

Real parts: gunicorn with two workers, the machine's Redis for rate-limit counters.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import Server, http, seed_org, seeded_database

REDIS = ("127.0.0.1", 6379)
START_REDIS = [
    "redis-server",
    "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "", "--appendonly", "no",
    "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip


def redis_answers() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The local Redis, started if it is installed but down."""
    if not redis_answers():
        if shutil.which("redis-server") is None:
            pytest.skip("Redis is neither running on 127.0.0.1:6379 nor installed (redis-server)")
        subprocess.run(START_REDIS, check=True, capture_output=True)
        deadline = time.monotonic() + 10
        while not redis_answers():
            assert time.monotonic() < deadline, "redis-server started but does not answer"
            time.sleep(0.1)
    return "redis://127.0.0.1:6379"


def test_rate_limits_count_across_workers_with_redis(tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "metrics.db"
    members = seeded_database(path, lambda app: seed_org(app, "Acme"))
    with Server(path, workers=2, rate_limit_storage=redis_url, api_rate_limit="8 per minute") as server:
        statuses = []
        for _ in range(12):  # a new connection each: either worker may answer
            status, headers, _ = http("GET", server.url + "/api/users", headers=members["admin"].headers)
            statuses.append(status)
        assert statuses == [200] * 8 + [429] * 4, statuses
        assert headers["X-RateLimit-Limit"] == "8"


def test_a_rate_limit_storage_that_is_not_memory_or_redis_stops_start_up(tmp_path: Path) -> None:
    server = Server(tmp_path / "metrics.db", rate_limit_storage="mongodb://localhost")
    with pytest.raises(RuntimeError, match="rate_limit_storage"):
        server.start()
