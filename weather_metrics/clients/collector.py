#!/usr/bin/env python3
"""Agent metrics from a coding assistant's hooks, sent to weather_metrics (POST /mcp/metrics/collect).

Run it as the command of Claude Code's PreToolUse, PostToolUse, PostToolUseFailure and
SubagentStop hooks: `python3 /path/to/collector.py`. Each hook runs it once with one event
as JSON on stdin. A tool call's start and end (paired by tool_use_id through a local
spool) become one agent execution: the agent (the main one, or the sub-agent a Task names),
the tool's name, its duration and whether it succeeded. Executions wait in the spool and
are sent in batches with an Idempotency-Key, so a retry never stores one twice; when the
service cannot be reached they stay (at most MAX_SPOOLED) and go with a later event.

It never holds up or fails the assistant: it exits 0 within 2 s, whatever happens. It
uses the standard library only (Python 3.8 or newer) and imports nothing of the service.

Sent: agent and tool names, durations, success, the session id and WEATHER_METRICS_USER.
Never sent: prompts, tool input (commands, file paths, file contents), tool output, error text.

Settings (environment variables):
  WEATHER_METRICS_URL            the service, such as https://metrics.example.com (nothing is sent without it)
  WEATHER_METRICS_API_KEY        an organization API key (POST /api/keys)
  WEATHER_METRICS_USER           who you are in the organization: your email or user id
  WEATHER_METRICS_AGENT          the main agent's name (default claude-code)
  WEATHER_METRICS_SPOOL          the spool folder (default ~/.cache/weather-metrics-collector)
  WEATHER_METRICS_BATCH          executions per request (default 50)
  WEATHER_METRICS_FLUSH_SECONDS  send once the oldest execution waited this long (default 60)
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

try:
    import fcntl
except ImportError:  # not POSIX: no locking, at worst a batch goes twice with one key (the service keeps it once)
    fcntl = None  # type: ignore[assignment]

TIME_BUDGET = 1.6  # seconds for everything, well within the 2 s promised to the assistant
MAX_STDIN = 4 * 1024 * 1024
MAX_SPOOLED = 5000  # executions waiting; the oldest go first
MAX_REJECTED = 50  # batches the service refused, kept for a person to look at
STALE_START = 24 * 3600  # a start without an end after this long is forgotten
TASK_TOOLS = ("Task", "Agent")  # tools that run a sub-agent named by input.subagent_type
ENDS = {"PostToolUse": True, "PostToolUseFailure": False}
FLUSH_EVENTS = {"SubagentStop", "Stop", "SessionEnd"}
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def setting(name: str, default: str = "") -> str:
    return os.environ.get("WEATHER_METRICS_" + name, default).strip()


def spool_folder() -> Path:
    folder = Path(setting("SPOOL") or Path.home() / ".cache" / "weather-metrics-collector").expanduser()
    for part in ("starts", "outbox", "batches", "rejected", "tmp"):
        (folder / part).mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def write_atomically(folder: Path, target: Path, value: Any) -> None:
    """Write JSON to a temporary file and rename it into place: readers see all of it or nothing."""
    temporary = folder / "tmp" / f"{uuid.uuid4().hex}.json"
    temporary.write_text(json.dumps(value, separators=(",", ":")))
    os.replace(temporary, target)


def text(value: Any, limit: int) -> str:
    """A name as the service accepts it: a string without control characters, within its length."""
    return CONTROL.sub("", str(value))[:limit] or "unknown"


def pairing_key(event: dict[str, Any]) -> str:
    raw = f"{event.get('session_id', '')}\x1f{event.get('tool_use_id', '')}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def agent_and_command(event: dict[str, Any]) -> tuple[str, str]:
    """Whose execution this is and what it ran: names only, never the tool's input."""
    tool = text(event.get("tool_name") or "unknown", 2048)
    given = event.get("tool_input")
    tool_input: dict[str, Any] = given if isinstance(given, dict) else {}
    if tool in TASK_TOOLS and isinstance(tool_input.get("subagent_type"), str):
        return text(tool_input["subagent_type"], 128), tool
    inside = event.get("agent_type")  # hooks fired inside a sub-agent name it
    return text(inside if isinstance(inside, str) and inside else setting("AGENT", "claude-code"), 128), tool


def on_start(folder: Path, event: dict[str, Any], now: float) -> None:
    agent, command = agent_and_command(event)
    start = {"started": now, "agent": agent, "command": command}
    write_atomically(folder, folder / "starts" / f"{pairing_key(event)}.json", start)


def on_end(folder: Path, event: dict[str, Any], now: float, success: bool) -> None:
    """The execution of a finished tool call, paired with its start when there was one."""
    start_file = folder / "starts" / f"{pairing_key(event)}.json"
    claimed = start_file.with_suffix(f".{os.getpid()}.claimed")
    start: dict[str, Any] | None = None
    try:
        os.replace(start_file, claimed)  # one process pairs each start
        start = json.loads(claimed.read_text())
        claimed.unlink()
    except (OSError, ValueError):
        start = None
    agent, command = agent_and_command(event)
    started = float(start["started"]) if start else now
    execution: dict[str, Any] = {
        "agent_name": start["agent"] if start else agent,
        "command": start["command"] if start else command,
        "execution_time_ms": round(max(0.0, now - started) * 1000, 3),
        "success": success,
        "timestamp": datetime.fromtimestamp(started, timezone.utc).isoformat().replace("+00:00", "Z"),
    }
    if isinstance(event.get("session_id"), str) and event["session_id"]:
        execution["session_id"] = text(event["session_id"], 128)
    user = setting("USER")
    if user:
        execution["user_identifier"] = text(user, 256)
    if not success:
        execution["error_details"] = "interrupted" if event.get("is_interrupt") else "the tool call failed"
    if start is None:
        execution["metadata"] = {"paired": False}  # its start was not seen: no duration
    write_atomically(folder, folder / "outbox" / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json", execution)


def oldest_first(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix == ".json")


def keep_within_bounds(folder: Path, now: float) -> None:
    """The spool stays small: the oldest executions, refused batches and lost starts go first."""
    waiting = oldest_first(folder / "outbox")
    for path in waiting[: max(0, len(waiting) - MAX_SPOOLED)]:
        path.unlink(missing_ok=True)
    rejected = oldest_first(folder / "rejected")
    for path in rejected[: max(0, len(rejected) - MAX_REJECTED)]:
        path.unlink(missing_ok=True)
    for path in (folder / "starts").iterdir():
        try:
            if now - path.stat().st_mtime > STALE_START:
                path.unlink()
        except OSError:
            pass


def compose(folder: Path, event_name: str) -> None:
    """Move waiting executions into batches when there are enough, they waited long enough, or an agent ended."""
    size = max(1, int(setting("BATCH", "50") or 50))
    flush_after = float(setting("FLUSH_SECONDS", "60") or 60)
    waiting = oldest_first(folder / "outbox")
    if not waiting:
        return
    oldest_age = time.time() - waiting[0].stat().st_mtime
    if len(waiting) < size and oldest_age < flush_after and event_name not in FLUSH_EVENTS:
        return
    for start in range(0, len(waiting), size):
        chunk = waiting[start : start + size]
        items = []
        for path in chunk:
            try:
                items.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                pass
        # The batch (and its Idempotency-Key) is fixed before its executions leave the outbox.
        batch = {"key": uuid.uuid4().hex, "items": items}
        write_atomically(folder, folder / "batches" / f"{time.time_ns()}-{batch['key']}.json", batch)
        for path in chunk:
            path.unlink(missing_ok=True)


def send(folder: Path, deadline: float) -> None:
    """Post waiting batches, oldest first, until one fails or time runs out; each keeps its own key."""
    url = urlsplit(setting("URL"))
    key = setting("API_KEY")
    if url.scheme not in ("http", "https") or not url.hostname or not key:
        return
    for path in oldest_first(folder / "batches"):
        left = deadline - time.monotonic()
        if left < 0.2:
            return
        batch = json.loads(path.read_text())
        connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(url.hostname, url.port, timeout=left / 2)
        try:
            connection.request(
                "POST",
                url.path.rstrip("/") + "/mcp/metrics/collect",
                json.dumps(batch["items"]),
                {"Content-Type": "application/json", "X-API-Key": key, "Idempotency-Key": batch["key"]},
            )
            status = connection.getresponse().status
        finally:
            connection.close()
        if status in (201, 202):
            path.unlink(missing_ok=True)
        elif status in (400, 401, 403, 404, 409, 413, 422):
            os.replace(path, folder / "rejected" / path.name)  # sending it again would not help
        else:
            return  # 429, 5xx: the service is busy; later


def locked(folder: Path) -> Any:
    """The spool's lock, taken without waiting (None when another hook holds it, or no locking here)."""
    handle = open(folder / "lock", "a")  # held until the process ends
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def run(started: float) -> None:
    raw = sys.stdin.buffer.read(MAX_STDIN)
    event = json.loads(raw) if raw.strip() else {}
    if not isinstance(event, dict):
        return
    folder = spool_folder()
    now = time.time()
    name = event.get("hook_event_name")
    if name == "PreToolUse":
        on_start(folder, event, now)
    elif name in ENDS:
        on_end(folder, event, now, ENDS[name])
    if locked(folder) is None:
        return  # another hook is composing or sending right now
    keep_within_bounds(folder, now)
    compose(folder, str(name))
    send(folder, started + TIME_BUDGET)


def main() -> None:
    started = time.monotonic()
    worker = threading.Thread(target=_quietly, args=(started,), daemon=True)
    worker.start()
    worker.join(max(0.0, started + TIME_BUDGET + 0.2 - time.monotonic()))
    os._exit(0)  # whatever is still waiting on the network stays in the spool for the next event


def _quietly(started: float) -> None:
    try:
        run(started)
    except Exception:  # noqa: BLE001 - the assistant must never see this program fail
        pass


if __name__ == "__main__":
    main()
