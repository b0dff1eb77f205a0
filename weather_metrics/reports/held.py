"""The jobs one runner is building, with their progress: written by its workers, read by its keeper."""

from __future__ import annotations

import threading

from weather_metrics.store.models import ReportJob


class JobLost(Exception):
    """The job is no longer this runner's: expired, deleted, or queued again after a lost lease."""


class HeldJobs:
    """The jobs this runner's workers are building, with their progress; shared with the keeper."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[int, int]] = {}  # id -> (attempt, percent)
        self._lost: set[str] = set()

    def hold(self, job: ReportJob) -> None:
        with self._lock:
            self._jobs[job.id] = (job.attempts, 0)
            self._lost.discard(job.id)

    def release(self, job: ReportJob) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
            self._lost.discard(job.id)

    def progress(self, job: ReportJob, percent: int) -> None:
        """Note the percentage; JobLost when the keeper found the job is no longer ours."""
        with self._lock:
            if job.id in self._lost:
                raise JobLost(f"export job {job.id} is no longer this runner's")
            self._jobs[job.id] = (job.attempts, max(percent, self._jobs.get(job.id, (0, 0))[1]))

    def snapshot(self) -> dict[str, tuple[int, int]]:
        with self._lock:
            return dict(self._jobs)

    def lose(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._jobs:
                self._lost.add(job_id)
