"""POST /v1/events answered by the server's event loop (runtime/loop_answers.py), on a real gunicorn.

No request thread waits for a commit: with one request thread, many connections' batches still
go into one commit. What the loop does not answer itself (a batch not committed in time, a rate
limit passed, a body the compiled path declines) reaches Flask through a thread and gets the /v1
answer it always got, counted once and stored at most once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from contextlib import ExitStack
from http.client import HTTPConnection
from typing import Any

from tests import databases
from tests.redis_store import private_redis
from tests.support import Server, free_port, http, make_event, sample


def post_raw(port: int, body: bytes, **headers: str) -> tuple[int, list[str], dict[str, Any]]:
    """Status, response header names in order, and the JSON body of one POST /v1/events."""
    connection = HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/v1/events", body, {"Content-Type": "application/json", **headers})
        answer = connection.getresponse()
        return answer.status, [name.lower() for name, _ in answer.getheaders()], json.loads(answer.read())
    finally:
        connection.close()


def batch(session: str, size: int) -> bytes:
    return json.dumps({"events": [make_event(session_id=session, sequence_number=i) for i in range(size)]}).encode()


def writer_rows(server: Server) -> tuple[float, float]:
    """Events committed and commits made, from the server's /metrics."""
    text = http("GET", server.url + "/metrics")[2]
    assert isinstance(text, str), text
    return (
        sample(text, "weather_metrics_writer_batch_rows_sum") or 0.0,
        sample(text, "weather_metrics_writer_batch_rows_count") or 0.0,
    )


def test_batches_of_many_connections_share_a_commit_with_one_request_thread(tmp_path):
    """A thread that waited for its batch's commit would leave one batch per commit here."""
    database = tmp_path / "metrics.db"
    with Server(database, threads=1) as server:
        before = writer_rows(server)
        failures: list[Any] = []

        def client(n: int) -> None:
            connection = HTTPConnection("127.0.0.1", server.port, timeout=30)
            for round_ in range(6):
                connection.request("POST", "/v1/events", batch(f"c{n}-{round_}", 50))
                answer = connection.getresponse()
                body = answer.read()
                if answer.status != 200:
                    failures.append((answer.status, body))
            connection.close()

        clients = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(60)
        assert not failures, failures[:3]
        deadline = time.monotonic() + 10  # the writer counts a commit just after acknowledging it
        while (after := writer_rows(server))[0] - before[0] < 16 * 6 * 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        events, commits = after[0] - before[0], after[1] - before[1]
        assert events == 16 * 6 * 50
        assert events / commits > 2 * 50, f"{commits:.0f} commits for {events:.0f} events"
        assert databases.rows(database, "SELECT COUNT(*) FROM events") == [(16 * 6 * 50,)]


def test_the_loops_answer_is_the_threads_answer(tmp_path):
    """Same status line, header names in the same order and body shape as a keyed batch, which a thread answers."""
    with Server(tmp_path / "metrics.db") as server:
        plain = post_raw(server.port, batch("plain", 3))
        keyed = post_raw(server.port, batch("keyed", 3), **{"Idempotency-Key": "same-answer-1"})
        assert plain[0] == keyed[0] == 200
        assert plain[1] == keyed[1]
        assert plain[1][:3] == ["server", "date", "connection"]
        assert plain[2].keys() == keyed[2].keys() and plain[2]["count"] == 3


def test_what_the_loop_passes_on_is_answered_by_flask_and_counted_once(tmp_path):
    """A malformed body and a rate-limited batch: the /v1 errors, each request spending one token."""
    database = tmp_path / "metrics.db"
    with Server(database, rate_limit_per_minute=3, rate_limit_burst=0) as server:
        answers = [post_raw(server.port, body) for body in (batch("a", 2), b'{"events": [', batch("b", 2))]
        answers.append(post_raw(server.port, batch("c", 2)))
        assert [status for status, _, _ in answers] == [200, 400, 200, 429]
        assert answers[1][2]["error"] == "invalid_request"
        assert answers[3][2]["error"] == "rate_limit_exceeded"
        stored = databases.rows(database, "SELECT session_id, COUNT(*) FROM events GROUP BY 1")
        assert sorted(stored) == [("a", 2), ("b", 2)]


def test_a_batch_not_committed_in_time_gets_503_and_is_not_stored(tmp_path):
    """The writer is stalled: the batch it holds gets 503 after two waits, one still queued is taken back."""
    database = tmp_path / "metrics.db"
    with Server(database, ack_timeout_seconds=1) as server, ExitStack() as blocker:
        blocker.enter_context(databases.holding_write_lock(database))
        answers: dict[str, tuple[int, list[str], dict[str, Any]]] = {}

        def send(name: str) -> None:
            answers[name] = post_raw(server.port, batch(name, 5))

        first = threading.Thread(target=send, args=("held",))
        first.start()
        time.sleep(0.3)  # the writer has taken it and waits for the lock
        second = threading.Thread(target=send, args=("queued",))
        second.start()
        second.join(30)
        first.join(30)
        blocker.close()
        assert answers["queued"][0] == 503
        assert answers["queued"][2]["error"] == "service_unavailable"
        assert "Not committed within 1s" in answers["queued"][2]["details"]
        assert answers["held"][0] == 503
        assert "taking longer" in answers["held"][2]["details"]
        deadline = time.monotonic() + 15
        while not databases.rows(database, "SELECT COUNT(*) FROM events WHERE session_id = 'held'")[0][0]:
            assert time.monotonic() < deadline, "the batch being written was not stored once the lock went"
            time.sleep(0.1)
        assert databases.rows(database, "SELECT COUNT(*) FROM events WHERE session_id = 'queued'") == [(0,)]
        assert post_raw(server.port, batch("after", 1))[0] == 200


def test_a_client_that_does_not_read_its_answers_holds_no_one_else(tmp_path):
    """Pipelined batches whose answers are never read: the connection is held, nobody else is.

    With ack = enqueue the loop answers each batch on its next turn; past the request buffer the
    connection goes to a thread, whose write then waits for the client within the I/O timeout.
    """
    with Server(tmp_path / "metrics.db", ack="enqueue", request_body_timeout_seconds=5) as server:
        one = batch("p", 1)
        request = (
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(one)}\r\n\r\n".encode()
            + one
        )
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", server.port))
        stuck.settimeout(2)  # blocked this long: the server has stopped reading
        sent = 0
        try:
            for _ in range(100_000):  # stops when the server no longer reads: its answers are not taken
                stuck.sendall(request)
                sent += 1
        except TimeoutError:
            pass
        started = time.monotonic()
        status, _, body = post_raw(server.port, batch("other", 1))
        assert status == 200, body
        assert time.monotonic() - started < 3
        stuck.close()
        assert sent > 100


def test_an_expectation_sent_with_its_body_is_answered_once(tmp_path):
    """A head asking for 100 Continue that came with its body: one 100 Continue, as gunicorn gives, whoever answers."""
    with Server(tmp_path / "metrics.db") as server:
        for body in (batch("whole", 2), b'{"events": ['):
            head = f"POST /v1/events HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n"
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
                conn.sendall(head.encode() + body)
                answer = b""
                while b"\r\n\r\n{" not in answer or not answer.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            assert answer.count(b"100 Continue") == 1, answer
            assert answer.split(b"\r\n\r\n", 1)[1].startswith(
                b"HTTP/1.1 " + (b"200" if body.endswith(b"}") else b"400")
            )


def test_a_stalled_shared_rate_limit_holds_up_no_answer_that_does_not_use_it(tmp_path):
    """With redis_url the loop leaves batches to threads: a Redis that stops answering slows them, not the loop."""
    with private_redis(tmp_path, free_port()) as store, Server(tmp_path / "metrics.db", redis_url=store.url) as server:
        assert post_raw(server.port, batch("before", 1))[0] == 200
        pid = int((tmp_path / "redis.pid").read_text())
        os.kill(pid, signal.SIGSTOP)
        try:
            posters = [threading.Thread(target=post_raw, args=(server.port, batch(f"p{n}", 1))) for n in range(4)]
            for poster in posters:
                poster.start()
            waits = []
            for _ in range(8):
                started = time.monotonic()
                assert http("GET", server.url + "/v1/health")[0] == 200
                waits.append(time.monotonic() - started)
                time.sleep(0.1)
            for poster in posters:
                poster.join(30)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert max(waits) < 0.4, [round(wait, 3) for wait in waits]


def test_a_request_pipelined_behind_one_taken_back_arrives_whole(tmp_path):
    """The first batch times out and goes to a thread with its bytes put back: the large one behind it (more than
    the parser reads at once) must follow byte for byte, and is stored once the writer can commit again."""
    database = tmp_path / "metrics.db"
    with Server(database, ack_timeout_seconds=1) as server, ExitStack() as blocker:
        blocker.enter_context(databases.holding_write_lock(database))
        first, second = batch("first", 1), batch("second", 100)
        assert len(second) > 3 * 8192
        raw = b"".join(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
            for body in (first, second)
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
            conn.sendall(raw)
            answers = conn.makefile("rb")
            status, refused = read_answer(answers)
            assert status == 503, refused
            blocker.close()  # the writer commits again
            status, body = read_answer(answers)
            assert (status, body["count"]) == (200, 100), body
        stored = dict(databases.rows(database, "SELECT session_id, COUNT(*) FROM events GROUP BY 1"))
        held = "taking longer" in refused["details"]  # the writer held it already: stored once it could commit
        assert stored == ({"first": 1} if held else {}) | {"second": 100}


def read_answer(reader: Any) -> tuple[int, dict[str, Any]]:
    """The next answer on a connection: its status and JSON body."""
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, json.loads(reader.read(length))
