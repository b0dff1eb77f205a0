"""Slow clients against the real server: they wait in the event loop, never in the request threads.

The server runs with 12 threads here, so a few dozen slow connections would hold every
one of them if a thread took a connection before its request had arrived.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support import Server, http, make_event, self_signed_certificate
from weather_metrics.runtime.worker import request_verdict

SLOW = {"threads": 12, "request_header_timeout_seconds": 3, "request_body_timeout_seconds": 3}
BATCH = {"events": [make_event(session_id=f"s{i}") for i in range(100)]}


def opened(stack: ExitStack, server: Server, first_bytes: bytes) -> socket.socket:
    sock = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=10))
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def assert_served(base_url: str, context: ssl.SSLContext | None = None) -> None:
    """Health and a 100-event batch are answered while the slow clients wait (generous limits for CI)."""
    started = time.monotonic()
    status, _, body = http("GET", base_url + "/v1/health", timeout=10, context=context)
    assert status == 200, body
    status, _, body = http("POST", base_url + "/v1/events", BATCH, timeout=10, context=context)
    assert status == 200, body
    assert time.monotonic() - started < 10


def test_dripping_heads_and_bodies_hold_no_thread(tmp_path):
    with Server(tmp_path / "metrics.db", **SLOW) as server, ExitStack() as stack:
        for _ in range(40):  # a request line, and then nothing
            opened(stack, server, b"GET /v1/health HTTP/1.1\r\n")
        for _ in range(20):  # a whole head announcing 100 kB, then ten bytes of it
            opened(stack, server, b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"{" * 10)
        time.sleep(0.5)
        assert_served(server.url)


def test_a_request_that_does_not_arrive_in_time_gets_408_and_is_closed(tmp_path):
    with Server(tmp_path / "metrics.db", **SLOW) as server, ExitStack() as stack:
        head = opened(stack, server, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        body = opened(stack, server, b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
        for sock in (head, body):
            answer = b""
            while chunk := sock.recv(4096):  # until the server closes; the socket timeout is 10 s
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b'"request_timeout"' in answer


def test_whole_requests_still_work_pipelined_chunked_and_kept_alive(tmp_path):
    with Server(tmp_path / "metrics.db", **SLOW) as server, ExitStack() as stack:
        sock = opened(stack, server, b"")
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = b""
        while answers.count(b'"status":"healthy"') < 2:  # both answers, bodies included
            answers += sock.recv(65536)
        payload = json.dumps({"events": [make_event()]}).encode()
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunked
        )
        answer = b""
        while b'"accepted"' not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 "), answer


def test_a_client_expecting_100_continue_gets_it_before_sending_the_body(tmp_path):
    body = json.dumps(BATCH).encode()
    with Server(tmp_path / "metrics.db", **SLOW) as server, ExitStack() as stack:
        sock = opened(
            stack,
            server,
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body),
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue"), "no 100 Continue before the body"
        sock.sendall(body)
        answer = b""
        while b'"accepted"' not in answer:
            answer += sock.recv(65536)
        assert b"HTTP/1.1 200 " in answer, answer


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


def test_tls_clients_that_never_finish_the_handshake_hold_no_thread(tmp_path, certificate):
    certfile, keyfile = certificate
    with Server(tmp_path / "metrics.db", **SLOW, tls_certfile=certfile, tls_keyfile=keyfile) as server:
        with ExitStack() as stack:
            for _ in range(30):  # connected, no ClientHello
                opened(stack, server, b"")
            for _ in range(20):  # the first bytes of a ClientHello, then nothing
                opened(stack, server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            time.sleep(0.5)
            assert_served(server.url, server.context)


@pytest.mark.parametrize(
    ("data", "whole", "upgrade"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n", False, False),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True, False),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcd", False, False),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde", True, False),
        (b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", True, False),  # refused by its length alone
        (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", True, False),  # malformed: gunicorn answers 400
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", False, False),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", True, False),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n", False, False),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n", True, False),
        (b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", True, True),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 20_000, True, False),  # a head past the limit
        (b"POST / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", True, False),  # a digit to isdigit(), not to int()
        (b"POST / HTTP/1.1\r\nContent-Length: " + b"1" * 5000 + b"\r\n\r\n", True, False),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-6\r\n", True, False),  # would loop back
        (b"POST / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: foo\r\nContent-Length: 9\r\n\r\n", False, False),
        (b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nContent-Length: 9\r\n\r\n", False, False),
    ],
)
def test_request_verdict(data, whole, upgrade):
    verdict = request_verdict(data, max_body=100_000)
    assert (verdict.whole, verdict.upgrade) == (whole, upgrade)


def worker_pid(server: Server) -> str:
    assert server.process is not None
    found = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout.split()
    assert len(found) == 1, found
    return found[0]


HOSTILE = [
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n",
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"1" * 5000 + b"\r\n\r\n",
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-6\r\n",
    b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"y" * 7000 + b"\r\n" * 2,
]


def test_malformed_requests_neither_kill_nor_stall_the_worker(tmp_path):
    with Server(tmp_path / "metrics.db", **SLOW) as server:
        pid = worker_pid(server)
        with ExitStack() as stack:
            for data in HOSTILE:
                opened(stack, server, data)
            for _ in range(12):  # as many as there are threads: an upgrade with a body that never comes
                opened(
                    stack,
                    server,
                    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
                    b"Content-Length: 100\r\n\r\n",
                )
            time.sleep(0.5)
            assert_served(server.url)
        assert worker_pid(server) == pid, "the worker was replaced"


def test_a_reset_right_after_connecting_over_tls_does_not_kill_the_worker(tmp_path, certificate):
    certfile, keyfile = certificate
    with Server(tmp_path / "metrics.db", **SLOW, tls_certfile=certfile, tls_keyfile=keyfile) as server:
        pid = worker_pid(server)
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"\x16\x03\x01\x00\x05hello")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
            sock.close()
        time.sleep(0.5)
        assert_served(server.url, server.context)
        assert worker_pid(server) == pid, "the worker was replaced"


def test_a_client_that_half_closes_after_its_request_still_gets_the_answer(tmp_path):
    with Server(tmp_path / "metrics.db", **SLOW) as server, ExitStack() as stack:
        sock = opened(stack, server, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 "), answer


def test_requests_waiting_for_their_bodies_have_a_memory_budget(tmp_path):
    """request_buffer_mib=4: five connections sending 900 kB of a 1 MB body each; past 4 MB, 503."""
    with Server(tmp_path / "metrics.db", **SLOW, request_buffer_mib=4) as server, ExitStack() as stack:
        socks = []
        for _ in range(5):
            sock = opened(stack, server, b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            sock.sendall(b"x" * 900_000)
            socks.append(sock)
        answers = []
        for sock in socks:
            sock.settimeout(2)
            try:
                answers.append(sock.recv(4096))
            except TimeoutError:
                answers.append(b"")  # still waiting for its body: within the budget
        assert any(a.startswith(b"HTTP/1.1 503 ") for a in answers), answers
        assert_served(server.url)
