"""Hostile and careless clients against the real gunicorn server: nothing they send may hold memory for good."""

from __future__ import annotations

import errno
import itertools
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests import databases
from tests.support import Server, http, make_event, raw_upgrade, seed_org, seeded_database, upgrade_request

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


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB file system of its own (tmpfs), so the test can fill it without touching the machine's disk."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        for log in mount.glob("*.log"):
            (tmp_path / log.name).write_bytes(log.read_bytes())
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    # Unbuffered: a block only partly written is not left in a buffer for close() to fail on.
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


@databases.sqlite_only  # the database file is on the full disk; tests/test_postgresql.py has the server's own
def test_a_full_disk_is_503_with_retry_after_on_api_and_recovers(small_disk):
    database = small_disk / "metrics.db"
    admin = seeded_database(database, seed_org)["admin"]
    credentials = {"email": admin.user.email, "password": admin.password}
    with Server(database, ack_timeout_seconds=2) as server:
        status, _, tokens = http("POST", server.url + "/api/auth/login", credentials)
        assert status == 200, tokens
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        filler = fill(small_disk)
        try:
            for path, body in (("/api/auth/login", credentials), ("/api/teams", {"name": "Core"})):
                status, answer_headers, answer = http("POST", server.url + path, body, headers=headers)
                assert status == 503, (path, status, answer)
                assert int(answer_headers["Retry-After"]) >= 1
                assert answer["error"]["code"] == "SERVICE_UNAVAILABLE" and "full" in answer["error"]["message"]
            status, _, _ = http("POST", server.url + "/v1/events", {"events": [make_event()]})
            assert status == 503
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as upgrade:
                upgrade.sendall(upgrade_request())
                head = upgrade.recv(65536)
            assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After" in head, head
        finally:
            filler.unlink()
        # Space again: the same server works without a restart.
        status, _, answer = http("POST", server.url + "/api/teams", {"name": "Core"}, headers=headers)
        assert status == 201, answer
        assert http("POST", server.url + "/api/auth/login", credentials)[0] == 200
        deadline = time.monotonic() + 60  # the writer retries with a growing pause: allow it one more
        while http("POST", server.url + "/v1/events", {"events": [make_event()]})[0] != 200:
            assert time.monotonic() < deadline, "the writer did not recover"
            time.sleep(0.5)


def test_anonymous_websockets_cannot_take_the_room_of_signed_in_users(tmp_path):
    """12 threads: 4 for sockets, of which 2 for sockets without credentials; HTTP keeps its own."""
    database = tmp_path / "metrics.db"
    admin = seeded_database(database, seed_org)["admin"]
    with Server(database, threads=12) as server, ExitStack() as stack:
        for _ in range(2):
            stack.enter_context(raw_upgrade(server.port))
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as third:
            third.sendall(upgrade_request())
            assert third.recv(4096).startswith(b"HTTP/1.1 503 "), "a third anonymous socket was let in"
        token = admin.headers["Authorization"].split()[1]
        stack.enter_context(raw_upgrade(server.port, f"?token={token}"))  # asserts 101
        assert http("GET", server.url + "/v1/health")[0] == 200
