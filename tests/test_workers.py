"""Several gunicorn worker processes on one database: what they must share, they share.

Real parts: gunicorn with two workers, the machine's Redis for rate-limit counters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.redis_store import local_redis_url
from tests.support import Server, http, seed_org, seeded_database


@pytest.fixture(scope="module")
def redis_url() -> str:
    return local_redis_url()


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
