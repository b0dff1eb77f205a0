"""Closed-loop HTTP load on keep-alive asyncio sockets, run in a process of its own."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

# status of a request that got no HTTP answer
NO_ANSWER = 0
TIMED_OUT = -1
REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class LoadPlan:
    """Where to send what, how many connections, and for how long."""

    host: str
    port: int
    requests: list[bytes]  # complete pre-serialized HTTP requests
    connections: int
    warmup: float
    seconds: float


# (finished at, latency in seconds, status): monotonic clock, which processes on one host share
Sample = tuple[float, float, int]


def http_post(host: str, port: int, path: str, body: bytes) -> bytes:
    """A complete HTTP/1.1 keep-alive POST request with a JSON body."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status of one response, and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    keep = b"connection: close" not in lower
    marker = lower.find(b"content-length:")
    if marker < 0:
        await reader.read()  # close-delimited body
        return status, False
    length = int(lower[marker + 15 : lower.index(b"\r\n", marker)])
    await reader.readexactly(length)
    return status, keep


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connection(
    plan: LoadPlan, streams: Streams | None, offset: int, stop_at: float, samples: list[Sample]
) -> None:
    """One client: send the next request as soon as the previous one is answered."""
    index = offset
    while time.monotonic() < stop_at:
        if streams is None:
            try:
                streams = await asyncio.open_connection(plan.host, plan.port)
            except OSError:
                samples.append((time.monotonic(), 0.0, NO_ANSWER))
                await asyncio.sleep(0.05)
                continue
        request = plan.requests[index % len(plan.requests)]
        index += 1
        started = time.monotonic()
        try:
            streams[1].write(request)
            status, keep = await asyncio.wait_for(_read_answer(streams[0]), REQUEST_TIMEOUT)
        except TimeoutError:
            status, keep = TIMED_OUT, False
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status, keep = NO_ANSWER, False
        finished = time.monotonic()
        samples.append((finished, finished - started, status))
        if not keep:
            streams[1].close()
            streams = None
    if streams is not None:
        streams[1].close()


async def _run(plan: LoadPlan, report: Connection) -> tuple[list[Sample], float]:
    """Every sample, and the CPU cores this process used while sending."""
    # Connect first so the warm-up measures requests, not handshakes.
    opened = [await asyncio.open_connection(plan.host, plan.port) for _ in range(plan.connections)]
    samples: list[Sample] = []
    begin, cpu = time.monotonic(), time.process_time()
    window = (begin + plan.warmup, begin + plan.warmup + plan.seconds)
    report.send(window)
    stride = max(1, len(plan.requests) // plan.connections)
    await asyncio.gather(
        *(_connection(plan, streams, i * stride, window[1], samples) for i, streams in enumerate(opened))
    )
    return samples, (time.process_time() - cpu) / (time.monotonic() - begin)


def drive(plan: LoadPlan, report: Connection) -> None:
    """Process entry point: send the (start, end) of the measured window, then every sample and the CPU used."""
    try:
        report.send(asyncio.run(_run(plan, report)))
    finally:
        report.close()
