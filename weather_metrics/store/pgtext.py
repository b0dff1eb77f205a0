"""PostgreSQL's text forms of values, made in Python: COPY's text format and array literals.

Made a column at a time: a column of integers, floats or text with nothing to escape is joined
whole, and only a column holding a value to escape is written value by value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any


def copy_text_lines(rows: list[tuple[Any, ...]]) -> str:
    """Rows as lines of COPY's text format, a column at a time: most columns need no value looked at alone."""
    if not rows:
        return ""
    columns = [_copy_column(column) for column in zip(*rows, strict=True)]
    return "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"


def _copy_column(values: tuple[Any, ...]) -> Sequence[str]:
    kinds = set(map(type, values))
    nullable = type(None) in kinds
    kinds.discard(type(None))
    if not kinds:
        return ["\\N"] * len(values)
    present = [value for value in values if value is not None] if nullable else values
    if kinds == {str} and not _COPY_ESCAPED.search("".join(present)):
        text: Callable[[Any], str] | None = None  # as they are
    elif kinds == {int}:
        text = str
    elif kinds == {float}:
        text = repr
    else:
        return [copy_text(value) for value in values]
    if not nullable:
        return values if text is None else list(map(text, values))
    if text is None:
        return ["\\N" if value is None else value for value in values]
    return ["\\N" if value is None else text(value) for value in values]


_COPY_ESCAPED = re.compile(r"[\\\t\n\r]")  # what COPY's text format writes with a backslash


def copy_text(value: Any) -> str:
    """A value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return repr(value) if isinstance(value, float) else str(int(value))


def array_text(values: Iterable[Any]) -> str:
    """Values as one PostgreSQL array literal ('{1,"a b",NULL}'): a single parameter, parsed by the array type."""
    values = tuple(values)
    kinds = set(map(type, values))
    if kinds == {int}:
        return "{" + ",".join(map(str, values)) + "}"
    if kinds == {str}:
        joined = "".join(values)
        if "\\" not in joined and '"' not in joined:
            return '{"' + '","'.join(values) + '"}'
    return "{" + ",".join(_array_element(value) for value in values) + "}"


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value) if isinstance(value, float) else str(int(value))
