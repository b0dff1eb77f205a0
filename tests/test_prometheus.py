"""GET /metrics as an operator's Prometheus reads it: names, types, labels, build info, and promtool's verdict.

The page checked is the real server's (gunicorn from the Procfile) after some traffic, so it
is what production serves. Each counter is also moved by its own action in the tests of its
part: test_org_ingest.py, test_mcp.py, test_reports.py, test_webhooks.py, test_alerts.py.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sqlite3
import subprocess
import time
import tomllib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import databases
from tests.support import ROOT, Server, http, make_event, sample, seed_org, seeded_database

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# The public analytics API's GET /metrics: names, types and labels its contract fixes.
CONTRACT = {
    "http_requests_total": ("counter", {"method", "route", "status_code"}),
    "http_request_duration_seconds": ("histogram", {"method", "route", "status_code"}),
    "events_received_total": ("counter", {"analytics_level", "tool"}),
}
LIBRARY = ("process_", "python_")  # prometheus_client's own series of the process and interpreter
ROWS_RECEIVED = "weather_metrics_organization_rows_received_total"


def _api_key(app: Any) -> str:
    admin = seed_org(app)["admin"]
    answer = app.test_client().post("/api/keys", json={"name": "mcp"}, headers=admin.headers)
    assert answer.status_code == 201, answer.get_json()
    return str(answer.get_json()["secret"])


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> str:
    """/metrics of the real server after two events, three collected executions and an unknown URL."""
    database = tmp_path_factory.mktemp("prometheus") / "metrics.db"
    key = seeded_database(database, _api_key)
    stamp = (datetime.now(UTC) - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    run = {"agent_name": "runner", "command": "pytest", "execution_time_ms": 80, "success": True, "timestamp": stamp}
    with Server(database) as server:
        events = {"events": [make_event(), make_event(tool="get_alerts")]}
        assert http("POST", server.url + "/v1/events", events)[0] == 200
        assert http("POST", server.url + "/mcp/metrics/collect", [run] * 3, headers={"X-API-Key": key})[0] == 201
        assert http("GET", server.url + "/no/such/page")[0] == 404
        # The writer counts a commit just after acknowledging it; the events were committed first.
        deadline = time.monotonic() + 10
        while True:
            status, headers, text = http("GET", server.url + "/metrics")
            assert status == 200 and headers["Content-Type"].startswith("text/plain"), (status, headers)
            if (
                sample(text, ROWS_RECEIVED, {"kind": "agent_executions", "surface": "mcp"})
                or time.monotonic() > deadline
            ):
                return str(text)
            time.sleep(0.05)


def families(text: str) -> dict[str, tuple[str, set[str]]]:
    """Each series declared on the page, by its name as scraped: its type and label names."""
    declared = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    found: dict[str, tuple[str, set[str]]] = {name: (kind, set()) for name, kind in declared.items()}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        for point in family.samples:
            found[name][1].update(set(point.labels) - {"le"})
    return found


def promtool() -> str:
    if not os.access(PROMTOOL, os.X_OK):
        if os.environ.get("WEATHER_METRICS_TEST_STRICT"):
            pytest.fail(f"promtool is not installed ({PROMTOOL}); .ci/run installs Debian's prometheus")
        pytest.skip("promtool is not installed: apt-get install prometheus (.ci/run does)")
    return PROMTOOL


def check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_check_metrics_finds_nothing_to_fix(scrape):
    result = check_metrics(scrape)
    assert result.returncode == 0, result.stdout + result.stderr
    # ...and it would say so: the same check refuses a counter named without _total.
    bad = check_metrics("# HELP exports Exports\n# TYPE exports counter\nexports 1\n")
    assert bad.returncode != 0 and "_total" in bad.stdout + bad.stderr


def test_no_series_is_a_created_timestamp(scrape, client):
    for page in (scrape, client.get("/metrics").get_data(as_text=True)):  # the server's, and the tests' apps'
        names = {point.name for family in text_string_to_metric_families(page) for point in family.samples}
        assert "weather_metrics_build_info" in names
        assert sorted(name for name in names if name.endswith("_created")) == []


def test_the_contracts_three_series_keep_their_names_types_and_labels(scrape):
    found = families(scrape)
    assert {name: found.get(name) for name in CONTRACT} == CONTRACT
    assert sample(scrape, "events_received_total", {"analytics_level": "standard", "tool": "get_alerts"}) == 1
    unmatched = {"method": "GET", "route": "unmatched", "status_code": "404"}
    assert sample(scrape, "http_requests_total", unmatched) == 1


def test_every_other_series_of_the_service_is_named_weather_metrics(scrape):
    own = [name for name in families(scrape) if name not in CONTRACT and not name.startswith(LIBRARY)]
    assert own and [name for name in own if not name.startswith("weather_metrics_")] == []


def test_build_info_names_the_version_python_and_database(scrape):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    labels = {
        "version": version,
        "python_version": platform.python_version(),
        "database": "postgresql" if databases.ON_POSTGRESQL else "sqlite",
        "sqlite_version": sqlite3.sqlite_version,
    }
    assert sample(scrape, "weather_metrics_build_info", labels) == 1
    assert families(scrape)["weather_metrics_build_info"] == ("gauge", set(labels))


def test_rows_collected_by_the_server_process_are_counted_once(scrape):
    assert sample(scrape, ROWS_RECEIVED, {"kind": "agent_executions", "surface": "mcp"}) == 3
    assert sample(scrape, ROWS_RECEIVED, {"kind": "agent_executions", "surface": "api"}) == 0
    assert sample(scrape, "weather_metrics_writer_batch_rows_sum") == 5  # two events and three executions


def documented() -> dict[str, tuple[str, set[str]]]:
    """The series table of docs/operating.md ("## Metrics"): name -> (type, labels)."""
    text = (ROOT / "docs" / "operating.md").read_text()
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \|([^|]*)\|", section, re.M)
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def test_docs_operating_md_lists_every_series_with_its_type_and_labels(scrape):
    served = {name: found for name, found in families(scrape).items() if not name.startswith(LIBRARY)}
    assert documented() == served
