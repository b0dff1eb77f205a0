"""Log lines: text or JSON, the request id on access and application lines, and no secrets in them.

The end-to-end tests run the Procfile's gunicorn and read the whole `server.log` it wrote.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.support import ROOT, Server, http, make_event, raw_upgrade, rule_body, seed_org, seeded_database
from weather_metrics.reports.child import MAIN as CHILD_MAIN
from weather_metrics.reports.child import log as child_log
from weather_metrics.runtime.logs import BackgroundLines, current_request_id, log_handler, redact_query
from weather_metrics.web.observability import REQUEST_ID

FAST_PASSWORDS = {"password_time_cost": 2, "password_memory_kib": 19456}
REQUIRED = {"time", "level", "logger", "message", "pid", "request_id"}
ACCESS_FIELDS = {"method", "path", "status", "bytes", "duration_ms", "remote_addr", "user_agent"}
AGENT = "log-session-test/1"
CHILD_LOGGER = child_log.name


def emit(log_format: str, message: str, *args: Any, **kwargs: Any) -> str:
    """What one record logged through the service's handler writes."""
    stream = io.StringIO()
    logger = logging.getLogger("weather_metrics.tests.emit")
    handler = log_handler(log_format, stream)
    logger.addHandler(handler)
    try:
        logger.warning(message, *args, **kwargs)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


# -- the formats ---------------------------------------------------------------------------------


def test_a_json_line_has_the_fields_and_an_exception_as_one_field():
    token = current_request_id.set("req-12345678")
    try:
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            written = emit("json", "could not %s", "go", exc_info=True, extra={"job_id": "j1"})
    finally:
        current_request_id.reset(token)
    assert written.count("\n") == 1, written  # the traceback too is inside the one line
    line = json.loads(written)
    assert REQUIRED <= set(line)
    assert (line["level"], line["logger"], line["message"]) == ("warning", "weather_metrics.tests.emit", "could not go")
    assert line["request_id"] == "req-12345678" and line["job_id"] == "j1"
    assert isinstance(line["pid"], int)
    assert line["time"].endswith("Z") and datetime.fromisoformat(line["time"]).tzinfo == UTC
    assert abs(datetime.fromisoformat(line["time"]).timestamp() - time.time()) < 60
    assert line["exc"].startswith("Traceback") and "ValueError: bad\nvalue" in line["exc"]


def test_outside_a_request_the_request_id_is_null_in_json_and_absent_in_text():
    assert json.loads(emit("json", "idle"))["request_id"] is None
    assert emit("text", "idle").rstrip().endswith("weather_metrics.tests.emit: idle")


def test_a_text_line_ends_its_first_line_with_the_request_id():
    token = current_request_id.set("req-87654321")
    try:
        try:
            raise KeyError("k")
        except KeyError:
            written = emit("text", "lost %d", 3, exc_info=True)
    finally:
        current_request_id.reset(token)
    first, *traceback = written.splitlines()
    assert first.endswith("WARNING weather_metrics.tests.emit: lost 3 rid=req-87654321"), first
    assert traceback[0] == "Traceback (most recent call last):"


def test_lines_logged_while_handling_a_request_carry_its_id_and_later_lines_none(app: Flask):
    stream = io.StringIO()
    logger = logging.getLogger("weather_metrics.web.v1.blueprint")
    handler = log_handler("json", stream)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        client = app.test_client()
        refused = client.post("/v1/events", json={"events": [1]}, headers={"X-Request-ID": "caller-chosen-id-1"})
        second = client.post("/v1/events", json={"events": [2]})
        logger.info("after the requests")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    assert refused.status_code == second.status_code == 400
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["caller-chosen-id-1", second.headers["X-Request-ID"], None]
    assert lines[0]["message"].startswith("refused POST /v1/events")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/health", 200), ("GET", "/nowhere", 404), ("GET", "/api/nowhere", 404), ("PUT", "/v1/events", 405)]
    + [("GET", "/api/users", 401), ("POST", "/v1/events", 400), ("GET", "/metrics", 200), ("GET", "/ws", 400)],
)
def test_every_answer_carries_a_request_id(client, method, path, status):
    """The access log reads the id from this header, so errors need it as much as successes."""
    response = client.open(path, method=method)
    assert response.status_code == status
    assert REQUEST_ID.fullmatch(response.headers["X-Request-ID"])


def test_an_export_childs_failure_is_one_json_line_on_its_stderr(app: Flask, tmp_path: Path):
    """The child process writes to the server's log: in the server's format, whatever it logs."""
    database = app.extensions["weather_metrics"].settings["database"]
    command = [sys.executable, "-c", CHILD_MAIN, "--database", database, "--job", "no-such-job"]
    command += ["--out", str(tmp_path / "out.csv"), "--work", str(tmp_path), "--max-rows", "10", "--log-format", "json"]
    done = subprocess.run(command, capture_output=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1 and json.loads(done.stdout) == {"error": "internal error"}
    (line,) = [json.loads(text) for text in done.stderr.decode().splitlines()]
    assert (line["level"], line["logger"], line["message"]) == ("error", CHILD_LOGGER, "export job no-such-job failed")
    assert "DoesNotExist" in line["exc"] and line["request_id"] is None


# -- the real server -------------------------------------------------------------------------------


@dataclass
class Session:
    """Requests to the server with a User-Agent of their own: what each was answered, with its X-Request-ID."""

    server: Server
    answers: list[tuple[str, str, int, str]] = field(default_factory=list)  # method, path, status, request id

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        status, got, payload = http(method, self.server.url + path, body, headers={"User-Agent": AGENT, **headers})
        self.answers.append((method, path, status, got["X-Request-ID"]))
        return status, payload


@dataclass
class FailingReceiver:
    """A webhook receiver that answers 500 to everything."""

    server: ThreadingHTTPServer
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def failing_receiver() -> Iterator[FailingReceiver]:
    holder: list[FailingReceiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers["Content-Length"]))
            holder[0].hits.append(self.path)
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(FailingReceiver(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


def redacted(path: str) -> str:
    """The path as the access log shows it."""
    route, sep, query = path.partition("?")
    return f"{route}?{redact_query(query)}" if sep else route


def read_log(server: Server) -> tuple[str, list[dict[str, Any]]]:
    text = server.log.read_text()
    return text, [json.loads(line) for line in text.splitlines()]


def wait_for_line(server: Server, needle: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while needle not in server.log.read_text():
        assert time.monotonic() < deadline, f"{needle!r} never logged:\n{server.log.read_text()[-3000:]}"
        time.sleep(0.1)


def execution(success: bool) -> dict[str, Any]:
    stamp = (datetime.now(UTC) - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    return {
        "agent_name": "runner",
        "command": "pytest",
        "execution_time_ms": 80,
        "success": success,
        "timestamp": stamp,
    }


def test_a_session_logs_json_lines_with_request_ids_and_no_secrets(tmp_path: Path, failing_receiver: FailingReceiver):
    database = tmp_path / "metrics.db"
    admin = seeded_database(database, lambda app: seed_org(app, "Acme"))["admin"]
    org_id = admin.user.organization_id
    markers: dict[str, str] = {"admin password": admin.password}
    markers["password"] = "Wombat-Passphrase-Marker-7731"
    markers["wrong password"] = "Numbat-Wrong-Guess-Marker-4410"
    markers["parameter value"] = "quokkamarkerparam"
    markers["refused parameter value"] = "Bilby-Refused-Marker-9"
    markers["webhook secret"] = "webhook-secret-marker-0123456789"
    markers["webhook url token"] = "urltokenmarker5521"
    receiver_url = f"http://127.0.0.1:{failing_receiver.server.server_address[1]}/in/{markers['webhook url token']}"

    with Server(
        database, log_format="json", webhook_allow_private="true", alert_evaluation_seconds=1, **FAST_PASSWORDS
    ) as server:
        s = Session(server)
        detailed = {"analytics_level": "detailed", "session_id": "abc123def456", "sequence_number": 1}
        event = make_event(**detailed, parameters={"forecast_kind": markers["parameter value"]})
        assert s.call("POST", "/v1/events", {"events": [event]})[0] == 200
        bad = make_event(**detailed, parameters={"forecast_kind": markers["refused parameter value"]})
        assert s.call("POST", "/v1/events", {"events": [bad]})[0] == 400
        assert s.call("GET", "/v1/stats/overview?period=7d")[0] == 200

        admin_login = s.call("POST", "/api/auth/login", {"email": admin.user.email, "password": admin.password})[1]
        as_admin = {"Authorization": f"Bearer {admin_login['access_token']}"}
        body = {"email": "wren@acme.test", "name": "Wren", "role": "developer", "password": markers["password"]}
        assert s.call("POST", "/api/users", body, **as_admin)[0] == 201
        wrong = {"email": "wren@acme.test", "password": markers["wrong password"]}
        assert s.call("POST", "/api/auth/login", wrong)[0] == 401
        status, tokens = s.call("POST", "/api/auth/login", {"email": "wren@acme.test", "password": markers["password"]})
        assert status == 200
        markers["access token"], markers["refresh token"] = tokens["access_token"], tokens["refresh_token"]
        assert s.call("GET", "/api/organization", Authorization=f"Bearer {tokens['access_token']}")[0] == 200
        status, refreshed = s.call("POST", "/api/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert status == 200
        markers["refreshed access token"] = refreshed["access_token"]
        markers["admin access token"] = admin_login["access_token"]
        markers["admin refresh token"] = admin_login["refresh_token"]

        status, key = s.call("POST", "/api/keys", {"name": "laptop"}, **as_admin)
        assert status == 201
        markers["api key"] = key["secret"]
        assert s.call("GET", f"/mcp/config/{org_id}", **{"X-API-Key": key["secret"]})[0] == 200
        hook = {
            "hook_url": receiver_url,
            "events": ["metrics.collected", "alert.triggered"],
            "organization_id": org_id,
            "secret": markers["webhook secret"],
        }
        status, registered = s.call("POST", "/mcp/hooks/register", hook, Authorization=f"Bearer {key['secret']}")
        assert status == 201, registered
        status, created_rule = s.call("POST", "/api/alerts/rules", rule_body(), **as_admin)
        assert status == 201, created_rule
        assert s.call("POST", "/mcp/metrics/collect", [execution(False)] * 3, **{"X-API-Key": key["secret"]})[0] == 201

        status, job = s.call("POST", "/api/reports/export", {"format": "csv", "report_type": "agents"}, **as_admin)
        assert status == 202, job
        deadline = time.monotonic() + 60
        while s.call("GET", job["status_url"], **as_admin)[1]["status"] != "done":  # built by a child process
            assert time.monotonic() < deadline, "the export did not finish"
            time.sleep(0.2)

        status, issued = s.call("POST", "/api/ws/ticket", Authorization=f"Bearer {refreshed['access_token']}")
        assert status == 201
        markers["ws ticket"] = issued["ticket"]
        raw_upgrade(server.port, f"?ticket={issued['ticket']}").close()
        raw_upgrade(server.port, f"?token={refreshed['access_token']}").close()
        # Without an upgrade /ws answers 400 through the application, so the access log has the URL.
        assert s.call("GET", f"/ws?ticket={issued['ticket']}")[0] == 400
        assert s.call("GET", f"/ws?a=1&token={refreshed['access_token']}")[0] == 400

        assert s.call("GET", "/api/users", Authorization="Bearer not-a-token-marker-3317")[0] == 401
        markers["bad token"] = "not-a-token-marker-3317"
        assert s.call("GET", "/v1/stats/tool/nothing_here")[0] in (200, 404)
        assert s.call("GET", "/nowhere")[0] == 404
        assert s.call("GET", "/v1/health", **{"X-Request-ID": "caller-request-0001"})[0] == 200
        assert s.answers[-1][3] == "caller-request-0001"

        wait_for_line(server, '"event": "webhook_delivery_failed"')
        wait_for_line(server, '"event": "alert_fired"')
    assert failing_receiver.hits and all(markers["webhook url token"] in hit for hit in failing_receiver.hits)

    text, lines = read_log(server)
    for line in lines:
        assert REQUIRED <= set(line), line
        assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0) and line["time"].endswith("Z")
        assert line["level"] in {"debug", "info", "warning", "error", "critical"}, line
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    for line in access:
        assert ACCESS_FIELDS <= set(line), line
        assert REQUEST_ID.fullmatch(line["request_id"] or ""), line
    ours = [line for line in access if line["user_agent"] == AGENT]
    # Sorted: a thread may log its access line after the next request's thread has logged.
    expected = sorted((method, redacted(path), status, request_id) for method, path, status, request_id in s.answers)
    assert sorted((a["method"], a["path"], a["status"], a["request_id"]) for a in ours) == expected

    # Application lines of a request carry its id: the refused batch of /v1/events.
    refused_id = s.answers[1][3]
    (refusal,) = [line for line in lines if line["logger"].endswith("v1.blueprint")]
    assert refusal["request_id"] == refused_id and "forecast_kind" in refusal["message"]
    (failure, *_) = [line for line in lines if line.get("event") == "webhook_delivery_failed"]
    assert failure["level"] == "warning" and failure["webhook_id"] == registered["id"]
    assert (failure["status_code"], failure["will_retry"], failure["webhook_disabled"]) == (500, True, False)
    (fired,) = [line for line in lines if line.get("event") == "alert_fired"]
    assert (fired["rule_id"], fired["organization_id"], fired["value"], fired["threshold"]) == (
        created_rule["id"],
        org_id,
        100.0,
        50.0,
    )
    assert {"/ws?ticket=[redacted]", "/ws?a=1&token=[redacted]"} <= {line["path"] for line in ours}
    leaked = {name: value for name, value in markers.items() if value in text}
    assert not leaked, f"in the log: {sorted(leaked)}"


def test_text_access_lines_end_with_the_request_id(tmp_path: Path):
    with Server(tmp_path / "metrics.db") as server:
        s = Session(server)
        s.call("GET", "/v1/health")
        s.call("GET", "/nowhere")
        s.call("POST", "/v1/events", {"events": [1]})
    text = server.log.read_text()
    for method, path, status, request_id in s.answers:
        pattern = rf'"{method} {re.escape(path)} HTTP/1.1" {status} \d+ "-" "{AGENT}" <\d+> rid={request_id}$'
        assert re.search(pattern, text, re.MULTILINE), (pattern, text)
    refusal = next(line for line in text.splitlines() if "refused POST /v1/events" in line)
    assert refusal.endswith(f" rid={s.answers[2][3]}")


def test_gunicorn_s_own_lines_about_a_bad_request_redact_its_credentials(tmp_path: Path):
    """A malformed request line is quoted whole in gunicorn's error line; its token must not be."""
    marker = "sekretmarkertoken"
    with Server(tmp_path / "metrics.db") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(f"GET /ws?token={marker}&ticket={marker}\r\nHost: x\r\n\r\n".encode())
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
        wait_for_log = time.monotonic() + 10
        while "Invalid" not in server.log.read_text() and time.monotonic() < wait_for_log:
            time.sleep(0.05)
    text = server.log.read_text()
    assert "/ws?token=[redacted]" in text  # the line is there, without its secret
    assert marker not in text


class StalledStream(io.StringIO):
    """A stream whose writes wait until released: a full pipe, a slow disk."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait(30)
        return super().write(text)


def test_background_lines_never_keep_a_logging_thread_waiting_and_are_all_written_on_close():
    stream = StalledStream()
    target = log_handler("text", stream, text_format="%(levelname)s %(message)s")
    handler = BackgroundLines(target)
    logger = logging.getLogger("tests.background_lines")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        logger.info("line %d", 0)
        assert stream.entered.wait(10)  # the writer thread is stuck in the stream now

        def log_more() -> None:
            current_request_id.set("request-id-0001")
            for number in range(1, 50):
                logger.info("line %d", number)

        thread = threading.Thread(target=log_more)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "a logging thread waited for the stream"
        stream.release.set()
        handler.close()
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "INFO line 0"
    # In order, each with the id of the request it was logged in (the filter ran in the logging thread).
    assert lines[1:] == [f"INFO line {n} rid=request-id-0001" for n in range(1, 50)]
