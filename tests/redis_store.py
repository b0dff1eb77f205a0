"""The machine's Redis for tests (started if installed but down), and private ones a test may stop."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REDIS = ("127.0.0.1", 6379)
START_REDIS = [
    "redis-server",
    "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "", "--appendonly", "no",
    "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip


def answers(address: tuple[str, int] = REDIS) -> bool:
    try:
        with socket.create_connection(address, timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait(address: tuple[str, int], up: bool) -> None:
    deadline = time.monotonic() + 10
    while answers(address) != up:
        assert time.monotonic() < deadline, f"redis-server on port {address[1]} did not {'start' if up else 'stop'}"
        time.sleep(0.05)


def local_redis_url() -> str:
    """The machine's Redis on 127.0.0.1:6379, started if it is installed but down."""
    if not answers():
        if shutil.which("redis-server") is None:
            pytest.skip("Redis is neither running on 127.0.0.1:6379 nor installed (redis-server)")
        subprocess.run(START_REDIS, check=True, capture_output=True)
        _wait(REDIS, up=True)
    return "redis://127.0.0.1:6379"


class PrivateRedis:
    """A redis-server of one test on its own port, which the test may stop and start again.

    Other work on this machine shares 127.0.0.1:6379; a test that takes Redis away takes its own.
    """

    def __init__(self, folder: Path, port: int) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.folder, self.port = folder, port
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        pidfile = self.folder / "redis.pid"
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--pidfile", str(pidfile),
             "--logfile", str(self.folder / "redis.log")],
            check=True, capture_output=True,
        )  # fmt: skip
        _wait(("127.0.0.1", self.port), up=True)

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], check=False, capture_output=True)
        _wait(("127.0.0.1", self.port), up=False)


@contextmanager
def private_redis(folder: Path, port: int) -> Iterator[PrivateRedis]:
    server = PrivateRedis(folder, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
