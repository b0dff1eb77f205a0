"""Hostile and careless clients against the real gunicorn server: nothing they send may hold memory for good."""

from __future__ import annotations

import itertools

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
