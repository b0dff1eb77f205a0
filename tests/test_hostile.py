"""Hostile and careless clients against the real gunicorn server: nothing they send may hold memory for good."""

from __future__ import annotations

import itertools
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.support import Server, http, make_event

unique = itertools.count()


def rss_mb(server: Server) -> int:
    """Resident memory of the worker that answers (one worker: the one that served the requests)."""
    status, _, body = http("GET", server.url + "/v1/status")
    assert status == 200, body
    return int(body["memory"]["used_mb"])


def post_rejected(server: Server, **fields: object) -> None:
    status, _, body = http("POST", server.url + "/v1/events", {"events": [make_event(**fields)]})
    assert status == 400, body


def long_parameter() -> dict[str, object]:
    return {"parameters": {"query": f"{next(unique)}-" + "x" * 90_000}}


def long_timestamp() -> dict[str, object]:
    return {"timestamp_hour": f"2026-01-01T00:00:00Z{next(unique)}" + "0" * 90_000}


def test_rejected_requests_leave_no_memory_behind(tmp_path):
    """Long parameter values and timestamps are refused without being kept (no cache keyed on them)."""
    with Server(tmp_path / "metrics.db") as server:
        for _ in range(100):  # let the worker reach its working size first
            post_rejected(server, **long_parameter())
            post_rejected(server, **long_timestamp())
        before = rss_mb(server)
        for _ in range(400):  # 2 x 400 x 90 KB: 72 MB if each were kept
            post_rejected(server, **long_parameter())
            post_rejected(server, **long_timestamp())
        after = rss_mb(server)
    assert after - before < 20, (before, after)


def worker_peak_mb(server: Server) -> int:
    """The highest resident memory the server's worker process has had (VmHWM), in MB."""
    assert server.process is not None
    children = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 1, children
    with open(f"/proc/{children[0]}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) // 1024


def test_a_burst_of_failed_logins_cannot_take_the_memory(tmp_path):
    """40 failed logins at once with 64 MiB hashes: two hash at a time (128 MiB budget), the rest wait or get 503."""
    settings = {
        "password_memory_kib": 65536,
        "password_memory_budget_mib": 128,
        "login_rate_limit_per_ip": "10000 per minute",
        "login_rate_limit_per_account": "10000 per minute",
    }
    with Server(tmp_path / "metrics.db", **settings) as server:
        body = {"email": "nobody@example.test", "password": "not-the-password-1"}

        def attempt(_: int) -> tuple[int, dict[str, str], object]:
            return http("POST", server.url + "/api/auth/login", body, timeout=60)

        with ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(attempt, range(40)))
        peak = worker_peak_mb(server)
    statuses = Counter(status for status, _, _ in answers)
    assert set(statuses) <= {401, 503} and statuses[401] >= 2, statuses
    for status, headers, answer in answers:
        if status == 503:
            assert int(headers["Retry-After"]) >= 1
            assert answer["error"]["code"] == "SERVICE_UNAVAILABLE", answer  # type: ignore[index]
    assert peak < 500, f"the worker reached {peak} MB"
