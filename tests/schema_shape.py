"""The shape of a schema in either dialect, and how two shapes differ (tests/test_postgresql.py).

A shape is what the service relies on: per table, its columns in order with their types, NOT NULL
and defaults, primary key, indexes (columns, uniqueness, partial WHERE), unique constraints and
foreign keys. Types, defaults and WHERE clauses are compared as what they mean: SQLite INTEGER is
any PostgreSQL integer type, REAL is DOUBLE PRECISION, and each catalog's own spelling of an
expression (casts, parentheses, `= ANY (ARRAY[...])` for `IN`) is normalised away.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Declared types by what they hold; a type outside these is reported with its dialect.
SQLITE_TYPES = {"INTEGER": "INTEGER", "REAL": "REAL", "TEXT": "TEXT"}
POSTGRESQL_TYPES = {
    "bigint": "INTEGER",
    "integer": "INTEGER",
    "smallint": "INTEGER",
    "double precision": "REAL",
    "text": "TEXT",
}
ASSIGNED = "<assigned by the database>"  # a SQLite rowid id; a PostgreSQL identity by default
ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    default: str | None


@dataclass(frozen=True)
class Index:
    columns: tuple[str, ...]
    unique: bool
    where: str | None


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    table: str
    references: tuple[str, ...]
    on_delete: str

    def __str__(self) -> str:
        return f"({', '.join(self.columns)}) -> {self.table} ({', '.join(self.references)}) on delete {self.on_delete}"


@dataclass
class Table:
    columns: list[Column]
    primary_key: tuple[str, ...]
    indexes: dict[str, Index]
    unique: set[tuple[str, ...]]
    foreign_keys: set[ForeignKey]


LITERAL = re.compile(r"'(?:[^']|'')*'")
CAST = re.compile(r"\s*::\s*(?:double precision|character varying|[a-z_]+)(?:\[\])?", re.IGNORECASE)


def normal_expression(text: str | None) -> str | None:
    """A default or an index's WHERE as either dialect writes it, in one spelling: no casts, no
    parentheses, `= ANY (ARRAY[...])` as `IN`, lower case and single spaces outside string literals."""
    if text is None:
        return None
    parts, end = [], 0
    for literal in LITERAL.finditer(text):
        parts.append(text[end : literal.start()])
        cast = CAST.match(text, literal.end())
        # PostgreSQL writes some numbers as cast strings: DEFAULT -1 reads '-1'::integer.
        if cast and re.fullmatch(r"'-?\d+(\.\d+)?'", literal[0]):
            parts.append(literal[0][1:-1])
        else:
            parts.append(literal[0])
        end = cast.end() if cast else literal.end()
    parts.append(text[end:])
    for i in range(0, len(parts), 2):  # the parts outside literals
        code = CAST.sub("", parts[i]).lower().replace('"', "").replace("!=", "<>")
        parts[i] = re.sub(r"[()]", " ", code)
    joined = "".join(parts)
    joined = re.sub(r"=\s*any\s+array\[(.*?)\]", r" in \1 ", joined)
    joined = re.sub(r"\s*,\s*", ", ", joined)
    return re.sub(r"\s+", " ", joined).strip()


def sqlite_shape(path: Path) -> dict[str, Table]:
    """Every table of the SQLite database at `path`, read from its pragmas."""
    with closing(sqlite3.connect(path)) as conn:
        names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        return {name: sqlite_table(conn, name) for (name,) in names.fetchall()}


def sqlite_table(conn: sqlite3.Connection, name: str) -> Table:
    rows = conn.execute('SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)', (name,)).fetchall()
    key = tuple(column for column, *_, position in sorted(rows, key=lambda row: row[4]) if position)
    listed = conn.execute('SELECT name, "unique", origin FROM pragma_index_list(?)', (name,)).fetchall()
    # A lone INTEGER key of a rowid table is the rowid (it has no key index): SQLite assigns it.
    rowid = len(key) == 1 and all(origin != "pk" for *_, origin in listed)
    columns = [
        Column(
            column,
            SQLITE_TYPES.get(declared.upper(), f"{declared} (SQLite)"),
            bool(not_null or position),  # PRAGMA table_info calls key columns nullable
            ASSIGNED if rowid and position and declared.upper() == "INTEGER" else normal_expression(default),
        )
        for column, declared, not_null, default, position in rows
    ]
    indexes, unique = {}, set()
    for index, is_unique, origin in listed:
        parts = conn.execute('SELECT name, "desc" FROM pragma_index_xinfo(?) WHERE key = 1', (index,)).fetchall()
        on = tuple(f"{column or '<expression>'}{' DESC' if desc else ''}" for column, desc in parts)
        if origin == "u":
            unique.add(on)
        elif origin == "c":  # CREATE INDEX, not a key's own
            (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (index,)).fetchone()
            where = re.search(r"\bWHERE\b(.*?);?\s*$", sql, re.IGNORECASE | re.DOTALL)
            indexes[index] = Index(on, bool(is_unique), normal_expression(where[1]) if where else None)
    keys: dict[int, list[tuple[Any, ...]]] = {}
    query = 'SELECT id, seq, "table", "from", "to", on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq'
    for row in conn.execute(query, (name,)):
        keys.setdefault(row[0], []).append(row)
    foreign_keys = set()
    for parts in keys.values():
        target, references = parts[0][2], [row[4] for row in parts]
        if None in references:  # REFERENCES table, without columns: its primary key
            target_key = conn.execute("SELECT name FROM pragma_table_info(?) WHERE pk ORDER BY pk", (target,))
            references = [column for (column,) in target_key.fetchall()]
        foreign_keys.add(ForeignKey(tuple(row[3] for row in parts), target, tuple(references), parts[0][5]))
    return Table(columns, key, indexes, unique, foreign_keys)


def column_names(numbers: str, table: str) -> str:
    """SQL of an array of the names of columns `numbers` (an attnum array expression) of `table` (an oid one)."""
    return (
        f"ARRAY(SELECT a.attname::text FROM unnest({numbers}) WITH ORDINALITY AS k (number, place) "
        f"JOIN pg_attribute a ON a.attrelid = {table} AND a.attnum = k.number ORDER BY k.place)"
    )


def postgresql_shape(cursor: Any, schema: str) -> dict[str, Table]:
    """Every table of the PostgreSQL `schema`, read from pg_catalog."""
    cursor.execute(
        "SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
        (schema,),
    )
    shape = {}
    for oid, name in cursor.fetchall():
        cursor.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity, "
            "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
            "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (oid,),
        )
        columns = []
        for column, declared, not_null, identity, default in cursor.fetchall():
            if identity == "d" or (default or "").startswith("nextval("):
                default = ASSIGNED
            elif identity == "a":
                default = "<always generated: inserting an id fails>"
            else:
                default = normal_expression(default)
            columns.append(
                Column(column, POSTGRESQL_TYPES.get(declared, f"{declared} (PostgreSQL)"), not_null, default)
            )
        cursor.execute(
            f"SELECT con.contype, {column_names('con.conkey', 'con.conrelid')}, target.relname, "
            f"{column_names('con.confkey', 'con.confrelid')}, con.confdeltype FROM pg_constraint con "
            "LEFT JOIN pg_class target ON target.oid = con.confrelid "
            "WHERE con.conrelid = %s AND con.contype IN ('p', 'u', 'f')",
            (oid,),
        )
        key: tuple[str, ...] = ()
        unique, foreign_keys = set(), set()
        for kind, on, target, references, on_delete in cursor.fetchall():
            if kind == "p":
                key = tuple(on)
            elif kind == "u":
                unique.add(tuple(on))
            else:
                foreign_keys.add(ForeignKey(tuple(on), target, tuple(references), ON_DELETE[on_delete]))
        cursor.execute(
            "SELECT i.relname, x.indisunique, pg_get_expr(x.indpred, x.indrelid), "
            "ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) || CASE WHEN x.indoption[k - 1] & 1 = 1 "
            "THEN ' DESC' ELSE '' END FROM generate_series(1, x.indnkeyatts) AS k ORDER BY k) "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint con WHERE con.conindid = x.indexrelid AND con.conrelid = x.indrelid "
            "AND con.contype IN ('p', 'u', 'x'))",
            (oid,),
        )
        indexes = {
            index: Index(tuple(on), is_unique, normal_expression(where)) for index, is_unique, where, on in cursor
        }
        shape[name] = Table(columns, key, indexes, unique, foreign_keys)
    return shape


def shown(value: object) -> str:
    """A compared value as a difference names it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple | list):
        return f"({', '.join(map(str, value))})"
    return "none" if value is None else str(value)


def table_differences(name: str, sqlite: Table, postgresql: Table) -> list[str]:
    """How table `name` differs between the dialects, one line per difference."""
    found = []

    def differ(where: str, what: str, ours: object, theirs: object) -> None:
        if ours != theirs:
            found.append(f"{where}: {what} {shown(ours)} in SQLite, {shown(theirs)} in PostgreSQL")

    def one_side(where: str, ours: set[Any], theirs: set[Any]) -> None:
        found.extend(f"{where} {shown(item)} in SQLite only" for item in sorted(ours - theirs, key=str))
        found.extend(f"{where} {shown(item)} in PostgreSQL only" for item in sorted(theirs - ours, key=str))

    ours = {column.name: column for column in sqlite.columns}
    theirs = {column.name: column for column in postgresql.columns}
    one_side(f"{name}: column", set(ours), set(theirs))
    differ(name, "columns in order", [c for c in ours if c in theirs], [c for c in theirs if c in ours])
    for column in (c for c in ours if c in theirs):
        for what in ("type", "not_null", "default"):
            differ(
                f"{name}.{column}", what.replace("_", " "), getattr(ours[column], what), getattr(theirs[column], what)
            )
    differ(name, "primary key", sqlite.primary_key, postgresql.primary_key)
    one_side(f"{name}: index", set(sqlite.indexes), set(postgresql.indexes))
    for index in sorted(sqlite.indexes.keys() & postgresql.indexes.keys()):
        for what in ("columns", "unique", "where"):
            differ(
                f"{name}: index {index}",
                what,
                getattr(sqlite.indexes[index], what),
                getattr(postgresql.indexes[index], what),
            )
    one_side(f"{name}: unique", sqlite.unique, postgresql.unique)
    one_side(f"{name}: foreign key", sqlite.foreign_keys, postgresql.foreign_keys)
    return found


def shape_differences(sqlite: dict[str, Table], postgresql: dict[str, Table]) -> list[str]:
    """Every way the two schemas differ, as readable lines; none when they have the same shape."""
    found = [f"table {name} in SQLite only" for name in sorted(sqlite.keys() - postgresql.keys())]
    found += [f"table {name} in PostgreSQL only" for name in sorted(postgresql.keys() - sqlite.keys())]
    for name in sorted(sqlite.keys() & postgresql.keys()):
        found += table_differences(name, sqlite[name], postgresql[name])
    return found


def report(differences: list[str]) -> str:
    return "schema.postgresql.sql differs from schema.sql:\n  " + "\n  ".join(differences)
