"""What one thread can do without HTTP: commit with write_batches, or decode and validate a request."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from weather_metrics.ingest.events.compiled import accepted_rows
from weather_metrics.store.batches import PendingBatch, write_batches
from weather_metrics.store.db import database, open_database

Rows = list[tuple[Any, ...]]
RETENTION_DAYS = 90


def copy_database(source: Path | None, target: Path) -> None:
    """Start `target` as a copy of `source` (with its WAL), or leave it to be created empty."""
    if source is None:
        return
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


def write_rate(path: Path, pool: list[Rows], group_requests: int, seconds: float, synchronous: str) -> float:
    """Events/s one thread commits with write_batches, `group_requests` request batches per transaction."""
    open_database(str(path), synchronous)
    written, index = 0, 0
    with database.connection_context():
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            group = [PendingBatch(rows=pool[(index + k) % len(pool)], response={}) for k in range(group_requests)]
            written += write_batches(group)
            index += group_requests
        elapsed = time.perf_counter() - started
    database.close_all()
    return written / elapsed


def rows_of(raw: bytes) -> Rows:
    """What a request thread does with a body before queueing it: decode, validate, build rows."""
    rows = accepted_rows(raw, datetime.now(UTC), RETENTION_DAYS, 0)
    if rows is None:
        raise RuntimeError("the benchmark's events do not validate")
    return rows


def request_cpu_ms(bodies: list[bytes], seconds: float = 2.0) -> float:
    """Milliseconds one thread takes for rows_of() on one request body."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        rows_of(bodies[done % len(bodies)])
        done += 1
    return (time.perf_counter() - started) / done * 1000
