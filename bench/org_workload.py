"""Agent executions for the organization benchmarks: as MCP servers send them, or as rows written directly."""

from __future__ import annotations

import math
import random
import time
import uuid
from datetime import datetime
from typing import Any

from bench.workload import Write, write_batch
from weather_metrics.core.histogram import latency_bucket
from weather_metrics.store.agents import AGENTS
from weather_metrics.store.models import Organization, Team, TeamMember, User

HOUR, DAY = 3600, 86400
ROWS_PER_TRANSACTION = 10_000

AGENTS_MIX = (
    ("code-reviewer", 22),
    ("test-runner", 18),
    ("refactorer", 12),
    ("doc-writer", 10),
    ("planner", 9),
    ("debugger", 8),
    ("security-scanner", 6),
    ("migration-helper", 5),
    ("release-manager", 4),
    ("dependency-bot", 3),
    ("perf-profiler", 2),
    ("onboarding-guide", 1),
)
COMMANDS = ("run", "review", "plan", "fix", "explain", "generate")
USERS = 48
TEAMS = 3
UNMATCHED_SHARE = 0.1
FAILURE_RATE = 0.05
DURATION_MU, DURATION_SIGMA = math.log(1800), 1.0  # median 1.8 s


def pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _ in weighted], [w for _, w in weighted])[0]


def execution(rng: random.Random, moment: datetime, identifiers: list[str]) -> dict[str, Any]:
    """One execution as an MCP server would send it."""
    success = rng.random() >= FAILURE_RATE
    return {
        "session_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "user_identifier": rng.choice(identifiers),
        "agent_name": pick(rng, AGENTS_MIX),
        "command": rng.choice(COMMANDS),
        "execution_time_ms": round(rng.lognormvariate(DURATION_MU, DURATION_SIGMA), 1),
        "success": success,
        "error_details": None if success else "tool call failed: exit status 1",
        "metadata": {"model": "sonnet", "tokens": rng.randrange(100, 20_000)},
        "timestamp": moment.isoformat(),
    }


def build_people(org_id: str) -> list[str]:
    """Users (one admin, one manager leading a team, developers) and teams; returns the developers' ids."""
    ids = []
    for index in range(USERS):
        role = "admin" if index == 0 else "manager" if index == 1 else "developer"
        user = User.create(
            id=str(uuid.uuid4()),
            organization=org_id,
            email=f"user{index}@bench.test",
            name=f"User {index}",
            role=role,
            active=True,
            created_at=0,
            updated_at=0,
        )
        ids.append(user.id)
    for t in range(TEAMS):
        team = Team.create(id=str(uuid.uuid4()), organization=org_id, name=f"team-{t}", description="", created_at=0)
        members = ids[2 + t :: TEAMS] + ([ids[1]] if t == 0 else [])
        for user_id in members:
            TeamMember.create(team=team.id, user=user_id, role="member", created_at=0)
    return ids


def execution_rows(
    rng: random.Random, org_id: str, users: list[str], span: tuple[int, int], count: int
) -> list[tuple[Any, ...]]:
    """Rows as agent_row() builds them, generated directly (the build writes 10M of them)."""
    agents = [name for name, _ in AGENTS_MIX]
    weights = [w for _, w in AGENTS_MIX]
    chosen = rng.choices(agents, weights, k=count)
    rows = []
    for agent in chosen:
        occurred = rng.uniform(span[0], span[1])
        duration = round(rng.lognormvariate(DURATION_MU, DURATION_SIGMA), 1)
        success = rng.random() >= FAILURE_RATE
        matched = rng.random() >= UNMATCHED_SHARE
        user = rng.choice(users)
        rows.append(
            (
                org_id,
                "bench",
                int(occurred),
                occurred,
                int(occurred) // HOUR * HOUR,
                None,
                user if matched else None,
                user if matched else f"laptop-{rng.randrange(20)}",
                agent,
                rng.choice(COMMANDS),
                duration,
                latency_bucket(duration),
                1 if success else 0,
                None if success else "tool call failed",
                None,
            )
        )
    return rows


def write_executions(
    executions: int, days: int, seed: int, per_transaction: int = ROWS_PER_TRANSACTION, write: Write = write_batch
) -> None:
    """The organization, its people and `executions` over `days`, into the open database."""
    rng = random.Random(seed)
    org = Organization.create(id=str(uuid.uuid4()), name="Bench", created_at=0)
    users = build_people(org.id)
    newest = int(time.time())
    oldest = newest - days * DAY + HOUR
    chunks = math.ceil(executions / per_transaction)
    step = (newest - oldest) / chunks
    for k in range(chunks):
        count = min(per_transaction, executions - k * per_transaction)
        span = (oldest + int(k * step), oldest + int((k + 1) * step))
        write(AGENTS, execution_rows(rng, org.id, users, span, count))
        if (k + 1) % max(1, chunks // 10) == 0:
            print(f"  {(k + 1) / chunks:4.0%} written", flush=True)
