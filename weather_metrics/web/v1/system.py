"""GET /v1/health and /v1/status."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import jsonify
from flask.typing import ResponseReturnValue

from weather_metrics.core.times import iso
from weather_metrics.store import db
from weather_metrics.web.services import services
from weather_metrics.web.v1.blueprint import bp


def _memory_mb() -> dict[str, int]:
    """Resident memory of this process and the machine's total, from /proc."""
    fields = {}
    for path, key in (("/proc/self/status", "VmRSS:"), ("/proc/meminfo", "MemTotal:")):
        try:
            with open(path) as fh:
                line = next(line for line in fh if line.startswith(key))
            fields[key] = int(line.split()[1]) // 1024
        except (OSError, StopIteration):
            fields[key] = 0
    return {"used_mb": fields["VmRSS:"], "total_mb": fields["MemTotal:"]}


@bp.get("/health")
def health() -> ResponseReturnValue:
    """200 when the database answers and the writer runs; 503 otherwise."""
    state = services()
    if not db.ping():
        return jsonify({"status": "unhealthy", "database": "disconnected"}), 503
    if not state.writer.alive or state.writer.failing:
        writer = "failing" if state.writer.alive else "stopped"
        return jsonify({"status": "unhealthy", "database": "connected", "writer": writer}), 503
    return jsonify({"status": "healthy", "timestamp": iso(datetime.now(UTC)), "uptime": round(state.uptime(), 1)})


@bp.get("/status")
def status() -> ResponseReturnValue:
    """Database, queue depth and memory of the running service."""
    state = services()
    connected = db.ping()
    return jsonify(
        {
            "status": "healthy" if connected and state.writer.alive else "unhealthy",
            "timestamp": iso(datetime.now(UTC)),
            "uptime_seconds": int(state.uptime()),
            "database": {"connected": connected, **db.pool_status()},
            "queue": {"depth": state.writer.depth},
            "memory": _memory_mb(),
        }
    )
