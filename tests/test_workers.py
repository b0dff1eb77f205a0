"""Several gunicorn worker processes on one database: what they must share, they share.

Real parts: gunicorn with two workers, the machine's Redis for rate-limit counters.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from tests.redis_store import local_redis_url
from tests.support import ROOT, Server, http, make_event, raw_upgrade, sample, seed_org, seeded_database


@pytest.fixture(scope="module")
def redis_url() -> str:
    return local_redis_url()


@pytest.mark.usefixtures("one_minute_window")
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


def worker_pids(server: Server) -> set[int]:
    """The gunicorn master's children: its workers."""
    assert server.process is not None
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(server.process.pid)], capture_output=True, text=True)
    return {int(pid) for pid in found.stdout.split()}


def answering_pids(server: Server) -> set[int]:
    """The workers that answered POST /v1/events, from the access log's pid field."""
    return {int(pid) for pid in re.findall(r'"POST /v1/events HTTP/1.1" 200 .* <(\d+)> rid=', server.log.read_text())}


def holding_sockets(server: Server) -> list[int]:
    """The pid of the process holding each connection accepted on the server's port (`ss`, as the kernel says)."""
    found = subprocess.run(
        ["ss", "-Htnp", "state", "established", "sport", "=", f":{server.port}"], capture_output=True, text=True
    )
    return [int(pid) for pid in re.findall(r"pid=(\d+)", found.stdout)]


def scrape_until(server: Server, name: str, labels: dict[str, str], expect: float) -> str:
    """/metrics once `name` reads `expect` (the workers count a commit just after acknowledging it), or at 15 s."""
    deadline = time.monotonic() + 15
    while True:
        text = str(http("GET", server.url + "/metrics")[2])
        if sample(text, name, labels) == expect or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def test_every_scrape_counts_every_worker_and_keeps_a_killed_workers_counts(tmp_path: Path) -> None:
    """Two workers: whichever answers /metrics, it shows both; a killed worker's counters stay, its sockets go."""
    events = "events_received_total"
    labels = {"analytics_level": "standard", "tool": "get_forecast"}
    with Server(tmp_path / "metrics.db", workers=2, ws_max_connections_per_user=20) as server, ExitStack() as sockets:
        posted = 0
        for _ in range(40):  # until both workers have answered: each request on a connection of its own
            with ThreadPoolExecutor(8) as pool:
                answers = list(
                    pool.map(lambda _: http("POST", server.url + "/v1/events", {"events": [make_event()]}), range(16))
                )
            assert {answer[0] for answer in answers} == {200}
            posted += len(answers)
            if len(answering_pids(server)) == 2:
                break
        assert len(answering_pids(server)) == 2, server.log.read_text()[-2000:]
        scrape_until(server, events, labels, posted)
        for _ in range(8):  # a connection each: both workers answer some of these
            text = str(http("GET", server.url + "/metrics")[2])
            assert sample(text, events, labels) == posted
            assert sample(text, "weather_metrics_writer_queue_rows") == 0
            build = [
                s
                for f in text_string_to_metric_families(text)
                if f.name == "weather_metrics_build_info"
                for s in f.samples
            ]
            assert [s.value for s in build] == [1.0], build

        for _ in range(6):
            sockets.enter_context(raw_upgrade(server.port))
        deadline = time.monotonic() + 15
        while sample(str(http("GET", server.url + "/metrics")[2]), "weather_metrics_websocket_connections") != 6:
            assert time.monotonic() < deadline, "the sockets of both workers were never counted together"
            time.sleep(0.2)

        holders = holding_sockets(server)
        assert set(holders) <= worker_pids(server) and len(holders) == 6, holders
        victim = max(set(holders), key=holders.count)  # the killed worker holds sockets, the other maybe some
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while victim in worker_pids(server) or len(worker_pids(server)) < 2:
            assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
            time.sleep(0.2)
        left = 6 - holders.count(victim)  # the other worker's sockets: the killed worker's are not served
        for _ in range(8):
            text = str(http("GET", server.url + "/metrics")[2])
            assert sample(text, events, labels) == posted
            assert sample(text, "weather_metrics_websocket_connections") == left


def test_a_worker_s_file_not_yet_sized_fails_no_scrape(make_app, tmp_path: Path, monkeypatch) -> None:
    """prometheus_client creates a worker's file before it sizes it: a scrape in between (or after a worker killed
    in between) must still count every other file, not answer 500."""
    client = make_app().test_client()
    files = tmp_path / "prometheus"
    files.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(files))  # read at each scrape, as under gunicorn
    counted = MmapedDict(str(files / "counter_101.db"))
    counted.write_value(mmap_key("probe_total", "probe_total", [], [], "A probe."), 7.0, 0)
    counted.close()
    (files / "counter_102.db").touch()  # created, not yet sized
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert sample(answer.get_data(as_text=True), "probe_total") == 7.0


def test_a_reload_keeps_the_metrics_directory_and_multiprocess_mode(tmp_path: Path) -> None:
    """SIGHUP runs the config file again in a master that has imported prometheus_client already."""
    script = (
        "import os, runpy, sys\n"
        "first = runpy.run_path('weather_metrics/runtime/gunicorn_conf.py')\n"
        "folder = os.environ['PROMETHEUS_MULTIPROC_DIR']\n"
        "again = runpy.run_path('weather_metrics/runtime/gunicorn_conf.py')\n"
        "print(first['MULTIPROCESS'], again['MULTIPROCESS'], os.environ['PROMETHEUS_MULTIPROC_DIR'] == folder)\n"
    )
    env = {**os.environ, "WEATHER_METRICS_DATABASE": str(tmp_path / "m.db"), "WEATHER_METRICS_JWT_SECRET": "s" * 48}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]


def test_build_info_names_only_the_workers_alive(tmp_path: Path) -> None:
    """A worker gone with a reload takes its labels with it: /metrics never names two versions."""
    worker = (
        "import sys\n"
        "from weather_metrics.runtime.prometheus import build_info\n"
        "build_info.labels(sys.argv[1], '3.11', 'sqlite', '3').set(1)\n"
        "import os; print(os.getpid())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def run(version: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", worker, version], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    multiprocess.mark_process_dead(run("1.0"), str(tmp_path))  # as gunicorn_conf.child_exit does
    run("1.1")  # its replacement, still running as far as the files say
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(tmp_path))
    text = generate_latest(registry).decode()
    build = [
        s.labels["version"]
        for f in text_string_to_metric_families(text)
        if f.name == "weather_metrics_build_info"
        for s in f.samples
    ]
    assert build == ["1.1"], build
