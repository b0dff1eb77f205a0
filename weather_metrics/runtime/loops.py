"""Background loops you can step: threads around a `step(number) -> bool`, each with its own connection.

Report exports and webhook deliveries do one unit of work per step (tests call the step
directly with an injected clock); this runs the steps on threads until closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from weather_metrics.store.db import database, reconnect

log = logging.getLogger(__name__)


class StepThreads:
    """`count` daemon threads calling `step(thread number)` until closed; an idle step waits `idle` seconds."""

    def __init__(self, name: str, count: int, step: Callable[[int], bool], idle: float = 0.5) -> None:
        self._name = name
        self._count = count
        self._step = step
        self._idle = idle
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(self._count):
            thread = threading.Thread(target=self._loop, args=(number,), name=f"{self._name}-{number}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _loop(self, number: int) -> None:
        database.connect(reuse_if_open=True)  # each thread its own connection
        try:
            while not self._stop.is_set():
                busy = False
                try:
                    busy = self._step(number)
                except Exception:  # noqa: BLE001 - a failing database must not end the thread
                    log.exception("%s step failed", self._name)
                    reconnect()
                if not busy:
                    self._stop.wait(self._idle)
        finally:
            database.close()

    def stop(self) -> None:
        """Ask the threads to stop after the step each is in, without waiting."""
        self._stop.set()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the threads after the step each is in; idempotent."""
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
                if thread.is_alive():
                    log.error("%s did not finish within %.0fs", thread.name, timeout)
