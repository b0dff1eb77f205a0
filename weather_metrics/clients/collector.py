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
  WEATHER_METRICS_SPOOL_MAX      executions kept while the service cannot be reached (default 5000)
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
except ImportError:  # not POSIX: the spool is locked with a folder instead (see `locked`)
    fcntl = None  # type: ignore[assignment]

TIME_BUDGET = 1.0  # seconds after start-up for everything: well within the 2 s promised, even on a busy machine
MAX_SPOOLED = 5000  # executions waiting, in the outbox and in unsent batches; the oldest go first
MAX_BATCH = 1000  # the service's metrics_max_items
MAX_DURATION_MS = 86_400_000  # the service's limit: a start left open longer (a laptop asleep) is cut there
MAX_REJECTED = 50  # batches the service refused, kept for a person to look at
STALE_START = 24 * 3600  # a start without an end after this long is forgotten
TASK_TOOLS = ("Task", "Agent")  # tools that run a sub-agent named by input.subagent_type
ENDS = {"PostToolUse": True, "PostToolUseFailure": False}
FLUSH_EVENTS = {"SubagentStop", "Stop", "SessionEnd"}
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # agent and tool names; anything else is sent as "unknown"
ITEM_PROBLEM = re.compile(r"items\[(\d+)\]\.")


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
    """A string as the service accepts it: valid text without control characters, within its length."""
    clean = CONTROL.sub("", str(value)).encode("utf-8", "replace").decode("utf-8")  # lone surrogates too
    return clean[:limit] or "unknown"


def name(value: Any) -> str:
    """An agent or tool name, never free text: the model writes these, so anything unusual is "unknown"."""
    return value if isinstance(value, str) and NAME.fullmatch(value) else "unknown"


def pairing_key(event: dict[str, Any]) -> str:
    raw = f"{event.get('session_id', '')}\x1f{event.get('tool_use_id', '')}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def agent_and_command(event: dict[str, Any]) -> tuple[str, str]:
    """Whose execution this is and what it ran: names only, never the tool's input."""
    tool = name(event.get("tool_name"))
    given = event.get("tool_input")
    tool_input: dict[str, Any] = given if isinstance(given, dict) else {}
    if tool in TASK_TOOLS and "subagent_type" in tool_input:
        return name(tool_input["subagent_type"]), tool
    inside = event.get("agent_type")  # hooks fired inside a sub-agent name it
    return name(inside if inside else setting("AGENT", "claude-code")), tool


def on_start(folder: Path, event: dict[str, Any], now: float) -> None:
    if not event.get("tool_use_id"):
        return  # nothing to pair its end with
    agent, command = agent_and_command(event)
    start = {"started": now, "agent": agent, "command": command}
    write_atomically(folder, folder / "starts" / f"{pairing_key(event)}.json", start)


def on_end(folder: Path, event: dict[str, Any], now: float, success: bool) -> None:
    """The execution of a finished tool call, paired with its start when there was one."""
    start_file = folder / "starts" / f"{pairing_key(event)}.json"
    claimed = start_file.with_suffix(f".{os.getpid()}.claimed")
    start: dict[str, Any] | None = None
    try:
        if not event.get("tool_use_id"):
            raise OSError("no tool_use_id")
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
        "execution_time_ms": round(min(max(0.0, now - started) * 1000, MAX_DURATION_MS), 3),
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
    """The spool stays small: the oldest batches and executions, refused batches, lost starts and writes go."""
    batches = [(path, _batch_size(path)) for path in oldest_first(folder / "batches")]
    waiting = oldest_first(folder / "outbox")
    most = int(setting("SPOOL_MAX", str(MAX_SPOOLED)) or MAX_SPOOLED)
    excess = sum(size for _, size in batches) + len(waiting) - most
    for path, size in batches:
        if excess <= 0:
            break
        path.unlink(missing_ok=True)
        excess -= size
    for path in waiting[: max(0, excess)]:
        path.unlink(missing_ok=True)
    rejected = oldest_first(folder / "rejected")
    for path in rejected[: max(0, len(rejected) - MAX_REJECTED)]:
        path.unlink(missing_ok=True)
    for folder_name, age in (("starts", STALE_START), ("tmp", 60)):
        for path in (folder / folder_name).iterdir():
            try:
                if now - path.stat().st_mtime > age:
                    path.unlink()
            except OSError:
                pass


def _batch_size(path: Path) -> int:
    try:
        return len(json.loads(path.read_text())["items"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def compose(folder: Path, event_name: str) -> None:
    """Move waiting executions into batches when there are enough, they waited long enough, or an agent ended."""
    size = min(MAX_BATCH, max(1, int(setting("BATCH", "50") or 50)))
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
        new_batch(folder, items)
        for path in chunk:
            path.unlink(missing_ok=True)


def new_batch(folder: Path, items: list[Any]) -> None:
    """A batch with its own Idempotency-Key, fixed before it is ever sent."""
    if items:
        batch = {"key": uuid.uuid4().hex, "items": items}
        write_atomically(folder, folder / "batches" / f"{time.time_ns()}-{batch['key']}.json", batch)


def send(folder: Path, deadline: float) -> bool:
    """Post waiting batches, oldest first; True when none is left. Stops at the first that cannot go now."""
    url = urlsplit(setting("URL"))
    key = setting("API_KEY")
    if url.scheme not in ("http", "https") or not url.hostname or not key:
        return False
    for path in oldest_first(folder / "batches"):
        left = deadline - time.monotonic()
        if left < 0.2:
            return False
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
            response = connection.getresponse()
            status, answer = response.status, response.read(65536)
        finally:
            connection.close()
        if 200 <= status < 300:
            path.unlink(missing_ok=True)
        elif status in (400, 413):  # nothing of it was stored: put the bad items aside and send the rest
            split(folder, path, batch["items"], status, answer)
        elif status == 409:
            os.replace(path, folder / "rejected" / path.name)  # the key was used for another body: never again
        else:
            return False  # busy (429, 5xx) or misconfigured (3xx, 401, 403, 404): keep everything, try later
    return True


def split(folder: Path, path: Path, items: list[Any], status: int, answer: bytes) -> None:
    """A refused batch: items the service named go to rejected/, the rest to new batches (halves for a 413)."""
    bad: set[int] = set()
    if status == 400:
        try:
            details = json.loads(answer)["error"]["details"]
            bad = {int(found[1]) for field in details if (found := ITEM_PROBLEM.match(field))}
        except (ValueError, KeyError, TypeError):
            bad = set()
        if not bad:
            bad = set(range(len(items)))  # the whole body was refused
    good = [item for n, item in enumerate(items) if n not in bad]
    if bad:
        refused = {"items": [items[n] for n in sorted(bad)], "status": status}
        write_atomically(folder, folder / "rejected" / path.name, refused)
    if status == 413 and len(items) > 1:
        middle = len(items) // 2
        new_batch(folder, items[:middle])
        new_batch(folder, items[middle:])
    else:
        new_batch(folder, good)
    path.unlink(missing_ok=True)


def locked(folder: Path) -> Any:
    """The spool's lock, taken without waiting; None when another hook holds it. Keep it while composing and sending.

    POSIX: flock, released by the system whatever way the process ends. Elsewhere: a folder
    that only one process can create, taken over when left behind for a minute.
    """
    if fcntl is not None:
        handle = open(folder / "lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None
        return handle
    marker = folder / "lock.d"
    try:
        if marker.exists() and time.time() - marker.stat().st_mtime > 60:
            marker.rmdir()
        marker.mkdir()
    except OSError:
        return None
    return marker


def run(started: float) -> None:
    raw = sys.stdin.buffer.read()  # whole: a cut-off event (a large file in tool_input) could not be paired
    event = json.loads(raw) if raw.strip() else {}
    if not isinstance(event, dict):
        return
    folder = spool_folder()
    now = time.time()
    event_name = event.get("hook_event_name")
    if event_name == "PreToolUse":
        on_start(folder, event, now)
    elif event_name in ENDS:
        on_end(folder, event, now, ENDS[str(event_name)])
    lock = locked(folder)
    if lock is None:
        return  # another hook is composing or sending right now
    try:
        keep_within_bounds(folder, now)
        deadline = started + TIME_BUDGET
        # Batches already made go first; new ones are made only once those are through, so a
        # service that is down does not leave a pile of small batches behind.
        if send(folder, deadline):
            compose(folder, str(event_name))
            send(folder, deadline)
    finally:
        if isinstance(lock, Path):
            lock.rmdir()


def main() -> None:
    started = time.monotonic()
    worker = threading.Thread(target=_quietly, args=(started,), daemon=True)
    worker.start()
    worker.join(max(0.0, started + TIME_BUDGET + 0.1 - time.monotonic()))
    os._exit(0)  # whatever is still waiting on the network stays in the spool for the next event


def _quietly(started: float) -> None:
    try:
        run(started)
    except Exception:  # noqa: BLE001 - the assistant must never see this program fail
        pass


if __name__ == "__main__":
    main()
