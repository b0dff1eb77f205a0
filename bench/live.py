"""WebSocket fan-out: does a room full of sockets, slow ones among them, cost ingestion?

`python -m bench.live` runs the real server and alternates rounds of /mcp/metrics/collect
load without sockets and with `--sockets` listeners in the `org` room plus `--slow`
sockets that subscribe and then never read. It prints collect throughput of both kinds of
round (medians and their ratio, same run), how many metric_ingested messages the
listeners got per batch, and the delay from commit to a listener's receipt.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.ingest import process_cpu_seconds, run_load
from bench.load import LoadPlan, http_post
from bench.org import BATCH, accepted_per_second, collect_bodies, seed_organization, with_header
from tests.support import TEST_JWT_SECRET, Server, http, masked_text, raw_upgrade
from weather_metrics import create_app
from weather_metrics.accounts import organizations as accounts
from weather_metrics.store.db import database
from weather_metrics.store.models import Organization

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@bench.test", "bench-admin-password"


def add_admin(db_path: Path) -> None:
    app = create_app({"database": str(db_path), "jwt_secret": TEST_JWT_SECRET, "log_level": "warning"})
    try:
        with app.app_context():
            org = Organization.get()
            passwords = app.extensions["weather_metrics"].passwords
            accounts.create_user(org.id, ADMIN_EMAIL, "Admin", "admin", passwords, password=ADMIN_PASSWORD)
    finally:
        app.extensions["weather_metrics"].close()
        database.close_all()


def listen(url: str, token: str, sockets: int, slow: int, report: Connection) -> None:
    """Open the sockets, say when they are subscribed, then count messages until told to stop."""
    from websockets.sync.client import connect

    delays: list[float] = []
    counts = [0] * sockets
    lock = threading.Lock()
    stop = threading.Event()
    with ExitStack() as stack:
        clients = [
            stack.enter_context(connect(f"{url}?token={token}", proxy=None, max_queue=None)) for _ in range(sockets)
        ]
        for ws in clients:
            ws.recv(10)  # welcome
            ws.send(json.dumps({"type": "subscribe", "rooms": ["org"]}))
            assert json.loads(ws.recv(10))["type"] == "subscribed"
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        laggards = []
        for _ in range(slow):
            raw = raw_upgrade(port, f"?token={token}", receive_buffer=4096)
            raw.sendall(masked_text(json.dumps({"type": "subscribe", "rooms": ["org"]})))
            laggards.append(raw)  # never read again

        def read(index: int, ws: Any) -> None:
            while not stop.is_set():
                try:
                    message = json.loads(ws.recv(0.2))
                except TimeoutError:
                    continue
                except Exception:  # noqa: BLE001 - closed at the end
                    return
                if message["type"] == "metric_ingested":
                    sent = datetime.fromisoformat(message["data"]["timestamp"]).timestamp()
                    with lock:
                        counts[index] += 1
                        delays.append(time.time() - sent)

        threads = [threading.Thread(target=read, args=(i, ws), daemon=True) for i, ws in enumerate(clients)]
        for thread in threads:
            thread.start()
        report.send("ready")
        report.recv()  # stop
        time.sleep(1.0)  # what is on its way arrives
        stop.set()
        for thread in threads:
            thread.join(2)
        report.send((counts, delays))
        for raw in laggards:
            raw.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--sockets", type=int, default=40, help="listening sockets in the org room")
    parser.add_argument("--slow", type=int, default=4, help="sockets that never read")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp_name:
        db_path = Path(tmp_name) / "server.db"
        secret, emails = seed_organization(db_path)
        add_admin(db_path)
        server = Server(
            db_path,
            rate_limit_per_minute=1_000_000_000,
            mcp_rate_limit="1000000000 per minute",
            ws_max_connections_per_user=1000,
            threads=128,
            log_level="warning",
        )
        host, port = "127.0.0.1", server.port
        collect = [
            with_header(http_post(host, port, "/mcp/metrics/collect", body), "X-API-Key", secret)
            for body in collect_bodies(args.seed, emails)
        ]
        rates: dict[str, list[float]] = {"without sockets": [], "with sockets": []}
        cpu: dict[str, list[float]] = {"without sockets": [], "with sockets": []}  # server ms per batch
        delivered: list[float] = []
        delays: list[float] = []
        server.start()
        try:
            status, _, tokens = http(
                "POST", server.url + "/api/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
            assert status == 200, tokens
            url = server.url.replace("http://", "ws://") + "/ws"
            assert server.process is not None
            server_pid = server.process.pid
            for round_ in range(args.rounds):
                for kind in rates:
                    listener = None
                    if kind == "with sockets":
                        context = multiprocessing.get_context("spawn")
                        ours, theirs = context.Pipe()
                        listener = context.Process(
                            target=listen, args=(url, tokens["access_token"], args.sockets, args.slow, theirs)
                        )
                        listener.start()
                        assert ours.poll(60) and ours.recv() == "ready"
                    plan = LoadPlan(host, port, collect, args.connections, args.warmup, args.seconds)
                    cpu_before = process_cpu_seconds(server_pid)
                    result = run_load(server, db_path, plan)
                    used = process_cpu_seconds(server_pid) - cpu_before
                    rate = accepted_per_second(result)
                    rates[kind].append(rate)
                    every = sum(1 for s in result.all_samples if 200 <= s[2] < 300)  # warm-up too, as CPU and listeners
                    cpu[kind].append(used * 1000 / max(1, every))
                    line = (
                        f"round {round_ + 1}  {kind:<16} {rate:>9,.0f} executions/s  "
                        f"{cpu[kind][-1]:.2f} ms server CPU/batch"
                    )
                    if listener is not None:
                        ours.send("stop")
                        counts, round_delays = ours.recv()
                        listener.join(10)
                        per_socket = statistics.median(counts) / max(1, every)
                        delivered.append(per_socket)
                        delays.extend(round_delays)
                        line += (
                            f"   {args.sockets} listeners: median {statistics.median(counts):,} messages "
                            f"for {every:,} accepted batches"
                        )
                    print(line, flush=True)
        finally:
            server.stop()
        without = statistics.median(rates["without sockets"])
        with_sockets = statistics.median(rates["with sockets"])
        delays.sort()
        print(
            f"\n== WebSocket fan-out, {args.rounds} alternating rounds of {args.seconds:.0f} s, "
            f"{args.connections} connections, {BATCH} executions/request (same server, same run)"
        )
        print(f"median collect without sockets      {without:>9,.0f} executions/s")
        print(f"median collect with {args.sockets} + {args.slow} slow  {with_sockets:>9,.0f} executions/s")
        print(f"ratio with / without                {with_sockets / without:.2f}")
        cpu_without, cpu_with = statistics.median(cpu["without sockets"]), statistics.median(cpu["with sockets"])
        print(
            f"server CPU per accepted batch       {cpu_without:.2f} ms without, {cpu_with:.2f} ms with "
            f"({(cpu_with - cpu_without) / args.sockets * 1000:.0f} us per listener and batch)"
        )
        print(f"messages per accepted batch         {statistics.median(delivered):.2f} (median listener)")
        if delays:
            p50 = delays[len(delays) // 2] * 1000
            p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1000
            print(f"commit to listener                  median {p50:.0f} ms, p99 {p99:.0f} ms")


if __name__ == "__main__":
    main()
