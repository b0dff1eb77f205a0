"""Hostile clients at attack volume against the real server: answers under slow clients, memory after bad requests.

    python -m bench.hostile                     # everything, with this release's worker
    python -m bench.hostile --worker gthread    # the same with gunicorn's stock gthread worker, for comparison
    python -m bench.hostile --only slow         # slow | memory | logins

Slow clients: 300 connections (100 dripping a head, 100 dripping a body, 100 opening TLS and
never finishing the handshake on the HTTPS run), each reconnecting at once when dropped,
plus 100 idle anonymous WebSockets; meanwhile /v1/health and a 100-event POST are timed.
Memory: RSS after 2,000 and after 10,000 rejected maximum-size requests of each kind.
Logins: peak RSS of the worker through 200 concurrent failed logins at the default Argon2id cost.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.support import (
    NGINX,
    Nginx,
    Server,
    http,
    make_event,
    seed_org,
    seeded_database,
    self_signed_certificate,
    upgrade_request,
)

ATTACKERS = 100  # of each kind
SAMPLES = 20
unique = itertools.count()


def start(folder: Path, worker: str, **settings: Any) -> Server:
    server = Server(folder / "metrics.db", **settings)
    if worker == "gthread":
        server.env["GUNICORN_CMD_ARGS"] = "--worker-class gthread"
    return server.start(timeout=60)


class Attackers:
    """Threads keeping `count` slow connections of one kind open, reconnecting as soon as one is dropped."""

    def __init__(self, port: int, first_bytes: bytes, count: int) -> None:
        self.port, self.first_bytes, self.count = port, first_bytes, count
        self.stop = threading.Event()
        self.reconnects = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    if self.first_bytes:
                        sock.sendall(self.first_bytes)
                    while not self.stop.is_set():
                        sock.settimeout(1.0)
                        try:
                            if sock.recv(4096) == b"":
                                break  # dropped: come straight back
                        except TimeoutError:
                            sock.send(b"x" if self.first_bytes.endswith(b"\r\n\r\n{") else b"X")  # one more byte
            except OSError:
                time.sleep(0.05)
            self.reconnects += 1

    def __enter__(self) -> Attackers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()


def timed(fn: Any) -> float:
    started = time.monotonic()
    try:
        status = fn()
    except OSError:
        return float("inf")
    return time.monotonic() - started if status in (200,) else float("inf")


def bench_slow(worker: str, tls: bool, via_nginx: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        settings: dict[str, Any] = {"trusted_proxies": 1} if via_nginx else {}
        if tls:
            settings["tls_certfile"], settings["tls_keyfile"] = self_signed_certificate(folder)
        server = start(folder, worker, **settings)
        target: Server | Nginx = server
        if via_nginx:  # the attackers and the measured requests all go to nginx (docs/nginx.conf)
            target = stack.enter_context(Nginx(server.port, folder / "nginx"))
        batch = {"events": [make_event(session_id=f"s{i}") for i in range(100)]}
        url, context = (target.url, None) if via_nginx else (server.url, server.context)
        head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"
        body = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"
        kinds = [Attackers(target.port, head, ATTACKERS), Attackers(target.port, body, ATTACKERS)]
        if tls:
            kinds.append(Attackers(target.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ATTACKERS))
        sockets: list[socket.socket] = []
        try:
            for attackers in kinds:
                attackers.__enter__()
            for n in range(ATTACKERS if not tls and worker != "gthread" else 0):  # from 20 addresses, left idle
                opened = _websocket(target.port, f"127.0.0.{2 + n % 20}")
                if opened is not None:
                    sockets.append(opened)
            time.sleep(3)
            health: list[float] = []
            posts: list[float] = []
            # Over 15 s: past the head deadline, so dropped attackers reconnect while we measure.
            until = time.monotonic() + 15
            while time.monotonic() < until and len(health) < SAMPLES:
                health.append(timed(lambda: http("GET", url + "/v1/health", timeout=5, context=context)[0]))
                posts.append(timed(lambda: http("POST", url + "/v1/events", batch, timeout=5, context=context)[0]))
                time.sleep(0.5)
        finally:
            for attackers in kinds:
                attackers.__exit__()
            for sock in sockets:
                sock.close()
            server.stop()
        label = f"slow clients, {'nginx' if via_nginx else 'https' if tls else 'http'}, {worker}"
        if not tls and worker != "gthread":
            print(f"{label:34} idle anonymous WebSockets open: {len(sockets)} of {ATTACKERS}")
        for name, values, limit in (("GET /v1/health", health, 1.0), ("POST 100 events", posts, 2.0)):
            answered = [v for v in values if v != float("inf")]
            median = statistics.median(values)
            print(
                f"{label:34} {name:16} median {median:7.3f} s  max {max(values):7.3f} s  "
                f"answered {len(answered)}/{len(values)}  target < {limit} s  "
                f"{'ok' if max(values) < limit else 'MISSED'}"
            )
        print(f"{label:34} reconnects of dropped attackers: {sum(a.reconnects for a in kinds)}")


def _websocket(port: int, source: str) -> socket.socket | None:
    """An anonymous WebSocket from `source`, left open; None when the server refuses it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    try:
        sock.sendall(upgrade_request())
        if sock.recv(4096).startswith(b"HTTP/1.1 101"):
            return sock
    except OSError:
        pass  # no answer at all: the server is busy
    sock.close()
    return None


def rss_mb(server: Server) -> int:
    return int(http("GET", server.url + "/v1/status")[2]["memory"]["used_mb"])


def bench_memory(worker: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        key = seeded_database(folder / "metrics.db", _seed_key)
        server = start(folder, worker)
        kinds = {
            "/v1 parameter of 98 KB": lambda: _post(server, "/v1/events", _event(parameters=True)),
            "/v1 timestamp of 98 KB": lambda: _post(server, "/v1/events", _event(parameters=False)),
            "collect timestamp of 1 MB": lambda: _post(
                server, "/mcp/metrics/collect", _execution(), {"X-API-Key": key}
            ),
        }
        try:
            for name, send in kinds.items():
                counts = (2_000, 10_000) if "collect" not in name else (400, 2_000)
                figures = []
                sent = 0
                with ThreadPoolExecutor(8) as pool:
                    for count in counts:
                        list(pool.map(lambda _, send=send: send(), range(count - sent)))
                        sent = count
                        figures.append(rss_mb(server))
                growth = figures[1] - figures[0]
                print(
                    f"memory, {worker:8} {name:28} RSS after {counts[0]:>6}: {figures[0]:5} MB  "
                    f"after {counts[1]:>6}: {figures[1]:5} MB  growth {growth:+4} MB  target < 30 MB  "
                    f"{'ok' if growth < 30 else 'MISSED'}"
                )
        finally:
            server.stop()


def _seed_key(app: Any) -> str:
    admin = seed_org(app)["admin"]
    answer = app.test_client().post("/api/keys", json={"name": "bench"}, headers=admin.headers)
    return str(answer.get_json()["secret"])


def _event(parameters: bool) -> bytes:
    tag = f"{next(unique)}-"
    event = make_event(parameters={"q": tag + "x" * 98_000}) if parameters else make_event()
    if not parameters:
        event["timestamp_hour"] = tag + "0" * 98_000
    return json.dumps({"events": [event]}).encode()


def _execution() -> bytes:
    item = {"agent_name": "a", "command": "c", "execution_time_ms": 1, "success": True}
    item["timestamp"] = f"{next(unique)}-" + "0" * 1_000_000
    return json.dumps(item).encode()


def _post(server: Server, path: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    return http("POST", server.url + path, raw=body, headers=headers, timeout=60)[0]


def bench_logins(worker: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start(
            Path(tmp),
            worker,
            login_rate_limit_per_ip="1000000 per minute",
            login_rate_limit_per_account="1000000 per minute",
        )
        try:
            before = _worker_status(server, "VmRSS")
            body = {"email": "nobody@example.test", "password": "not-the-password-1"}
            with ThreadPoolExecutor(200) as pool:
                statuses = list(pool.map(lambda _: http("POST", server.url + "/api/auth/login", body)[0], range(200)))
            peak = _worker_status(server, "VmHWM")
        finally:
            server.stop()
        counts = {status: statuses.count(status) for status in sorted(set(statuses))}
        print(
            f"logins, {worker:8} 200 concurrent failed logins: RSS before {before} MB, peak {peak} MB  "
            f"answers {counts}  target < 500 MB  {'ok' if peak < 500 else 'MISSED'}"
        )


def _worker_status(server: Server, field: str) -> int:
    assert server.process is not None
    pid = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout.split()[0]
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith(field + ":")).split()[1]) // 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=("prefetching", "gthread"), default="prefetching")
    parser.add_argument("--only", choices=("slow", "memory", "logins"))
    args = parser.parse_args(argv)
    if args.only in (None, "slow"):
        bench_slow(args.worker, tls=False)
        bench_slow(args.worker, tls=True)
        if os.access(NGINX, os.X_OK):
            bench_slow(args.worker, tls=False, via_nginx=True)
        else:
            print(f"slow clients through nginx: skipped, {NGINX} is not installed (apt-get install nginx-light)")
    if args.only in (None, "memory"):
        bench_memory(args.worker)
    if args.only in (None, "logins"):
        bench_logins(args.worker)


if __name__ == "__main__":
    main()
