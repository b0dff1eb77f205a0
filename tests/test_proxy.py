"""docs/nginx.conf in front of the real server, with Debian's nginx: WebSockets, body limits, client addresses."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import websockets

from tests.support import NGINX, Nginx, Server, http, make_event, seed_org, seeded_database


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, str, tuple[str, str]]:
    """A database with Acme and an API key; returns its path, the key, and the admin's email and password."""

    def seed(app: Any) -> tuple[str, tuple[str, str]]:
        admin = seed_org(app)["admin"]
        answer = app.test_client().post("/api/keys", json={"name": "mcp"}, headers=admin.headers)
        assert answer.status_code == 201, answer.get_json()
        return str(answer.get_json()["secret"]), (admin.user.email, admin.password)

    database = tmp_path / "metrics.db"
    key, admin = seeded_database(database, seed)
    return database, key, admin


@pytest.fixture
def proxied(tmp_path: Path, seeded: tuple[Path, str, Any]) -> Iterator[tuple[Server, str, str]]:
    """The server behind nginx configured from docs/nginx.conf; yields the server, nginx's URL and an API key."""
    if not os.access(NGINX, os.X_OK):
        if os.environ.get("WEATHER_METRICS_TEST_STRICT"):
            pytest.fail(f"nginx is not installed ({NGINX}); .ci/run installs Debian's nginx-light")
        pytest.skip("nginx is not installed: apt-get install nginx-light (.ci/run does)")
    database, key, _ = seeded
    with Server(database, trusted_proxies=1, rate_limit_per_minute=3, rate_limit_burst=0) as server:
        with Nginx(server.port, tmp_path / "nginx") as nginx:
            yield server, nginx.url, key


def post_from(address: str, port: int, path: str, body: Any, headers: dict[str, str] | None = None) -> int:
    """POST from a given loopback address (127.0.0.2, ...), as a different client machine would."""
    conn = HTTPConnection("127.0.0.1", port, timeout=30, source_address=(address, 0))
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_websocket_opens_through_nginx(proxied):
    _, url, _ = proxied

    async def welcome() -> dict[str, Any]:
        async with websockets.connect(url.replace("http://", "ws://") + "/ws", open_timeout=20) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 20))

    assert asyncio.run(welcome())["type"] == "welcome"


def test_the_service_not_nginx_refuses_large_bodies_and_a_large_collect_batch_passes(proxied):
    _, url, key = proxied
    items = [
        {"agent_name": "coder", "command": "x" * 1000, "execution_time_ms": 5, "success": True, "timestamp": stamp}
        for stamp in [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())] * 250
    ]
    body = json.dumps(items).encode()
    assert len(body) > 256 * 1024  # over the old example's 128k
    status, _, answer = http("POST", url + "/mcp/metrics/collect", raw=body, headers={"X-API-Key": key})
    assert status == 201, answer
    status, headers, answer = http("POST", url + "/v1/events", raw=b'{"events": [' + b" " * 150_000 + b"]}")
    assert status == 413 and headers["Content-Type"].startswith("application/json"), answer
    assert answer["error"] == "payload_too_large"


def test_each_client_address_gets_its_own_rate_limit_and_cannot_forge_another(proxied):
    _, url, _ = proxied
    port = int(url.rsplit(":", 1)[1])
    batch = {"events": [make_event()]}
    assert [post_from("127.0.0.2", port, "/v1/events", batch) for _ in range(4)] == [200, 200, 200, 429]
    forged = {"X-Forwarded-For": "203.0.113.9"}
    assert post_from("127.0.0.2", port, "/v1/events", batch, forged) == 429  # nginx appends the real address
    assert post_from("127.0.0.3", port, "/v1/events", batch) == 200


def test_slow_clients_wait_in_nginx(proxied):
    _, url, _ = proxied
    port = int(url.rsplit(":", 1)[1])
    with ExitStack() as stack:
        for _ in range(60):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
        started = time.monotonic()
        status, _, body = http("GET", url + "/v1/health", timeout=10)
        assert status == 200, body
        assert time.monotonic() - started < 10


def browser_request(
    url: str, method: str, path: str, cookies: dict[str, str], form: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """One request as a browser on a page of `url` sends it (Origin, Sec-Fetch-Site, its cookies); keeps new cookies."""
    host, port = url.removeprefix("http://").split(":")
    conn = HTTPConnection(host, int(port), timeout=30)
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), "Sec-Fetch-Site": "same-origin"}
    if form is not None:
        headers.update({"Origin": url, "Content-Type": "application/x-www-form-urlencoded"})
    try:
        conn.request(method, path, urlencode(form) if form is not None else None, headers)
        response = conn.getresponse()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in header:
                cookies.pop(name, None)
            else:
                cookies[name] = value
        return response.status, dict(response.headers), response.read().decode()
    finally:
        conn.close()


def test_a_browser_signs_in_and_out_through_nginx(proxied, seeded):
    """nginx passes the Host the browser used, port and all, so a form's Origin is this service's own."""
    _, url, _ = proxied
    email, password = seeded[2]
    cookies: dict[str, str] = {}
    status, _, page = browser_request(url, "GET", "/sign-in", cookies)
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"email": email, "password": password, "csrf_token": token}
    status, headers, body = browser_request(url, "POST", "/sign-in", cookies, form)
    assert status == 303 and headers["Location"] == "/account", body
    assert "weather_metrics_session" in cookies
    status, _, page = browser_request(url, "GET", "/account", cookies)
    assert status == 200 and email in page
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    status, _, _ = browser_request(url, "POST", "/sign-out", cookies, {"csrf_token": token})
    assert status == 303 and "weather_metrics_session" not in cookies
