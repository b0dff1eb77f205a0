"""URL rules whose URL builders are compiled once per process, whichever app adds them (the tests build thousands)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.routing import Rule

# A builder's code is a pure function of what the key holds: the rule's text, its parts in order,
# its defaults (those in the path are written into the code through their converter) and its
# converters; the rule itself comes in as the first argument.
_BUILDERS: dict[tuple[Any, ...], Callable[..., tuple[str, str]]] = {}


class SharedBuilderRule(Rule):
    """A werkzeug Rule sharing its two compiled URL builders with every equal rule of the process.

    werkzeug writes and compiles two Python functions per rule for url_for, half the cost of
    building an app (about 110 rules). A server builds one app per process and keeps werkzeug's
    own Rule; the test suite builds thousands in two, each with the same rules (conftest.py).
    """

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        try:
            key = (
                self.rule,
                tuple(self._trace),
                tuple(sorted(self.defaults.items())) if self.defaults else (),
                tuple((name, type(converter)) for name, converter in self._converters.items()),
                append_unknown,
            )
            built = _BUILDERS.get(key)
        except TypeError:  # a default that cannot be a key: compiled for this rule alone
            return super()._compile_builder(append_unknown)
        if built is None:
            built = _BUILDERS[key] = super()._compile_builder(append_unknown)
        return built
