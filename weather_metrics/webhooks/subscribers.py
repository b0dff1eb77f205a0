"""Which webhooks of an organization hear an event, kept in memory until a webhook changes anywhere."""

from __future__ import annotations

import json
import threading

from weather_metrics.store import versions
from weather_metrics.store.models import Webhook


class Subscribers:
    """Each organization's enabled webhook ids per event, kept until a webhook changes anywhere.

    Kept under the `webhooks` data version, which every transaction that adds, deletes or
    disables a webhook raises: a change made through any instance is seen by the next event
    of every instance, at the cost of one read of the version.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = -1
        self._cache: dict[str, dict[str, list[str]]] = {}

    def of(self, organization_id: str, event: str) -> list[str]:
        version = versions.current(versions.WEBHOOKS)  # read before the hooks: never newer than they are
        with self._lock:
            if version != self._version:
                self._cache.clear()
                self._version = version
            table = self._cache.get(organization_id)
        if table is None:
            table = {}
            hooks = Webhook.select(Webhook.id, Webhook.events).where(
                (Webhook.organization == organization_id) & (Webhook.enabled == True)  # noqa: E712 - peewee expression
            )
            for hook in hooks:
                for name in json.loads(hook.events):
                    table.setdefault(name, []).append(hook.id)
            with self._lock:
                if self._version == version:
                    self._cache[organization_id] = table
        return table.get(event, [])
