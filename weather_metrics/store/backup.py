"""Backups of the SQLite database while the service runs, and restores while it does not.

`backup` uses SQLite's online backup API in one step: it copies the pages of one read
snapshot, so the copy is consistent whatever is being written meanwhile (WAL lets writers go
on), and it is checked with `PRAGMA integrity_check` before it gets its final name.

Every process serving a database holds a shared lock on `<database>.lock` (`hold_service_lock`);
`restore` takes it exclusively, so it refuses to replace a database in use. The replaced
database is kept beside it, never deleted.

`python -m weather_metrics.store.backup restore BACKUP --database PATH` restores without
loading the service (for a database too broken to start it); the `flask` commands call the
same functions.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_held_locks: dict[Path, int] = {}  # database -> descriptor of its lock file, for this process


class DatabaseInUse(RuntimeError):
    """A running service holds the database."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    schema_version: int
    size_bytes: int
    events: int


def data_folder(database: str) -> Path:
    """Where files that belong with the database go by default: beside a SQLite file; for a
    PostgreSQL URL, the working directory."""
    if "://" in database:
        return Path.cwd()
    return Path(database).expanduser().resolve().parent


def backup_folder(configured: str, database: str) -> Path:
    """The `backup_dir` setting, or a 'backups' folder beside the database."""
    return Path(configured or data_folder(database) / "backups").expanduser().resolve()


def private_file(path: Path) -> None:
    """Create `path` empty and readable by its owner only, or make an existing one so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(PRIVATE_FILE)
    else:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE))


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def hold_service_lock(database: Path) -> None:
    """Hold a shared lock on the database's lock file for the life of this process (idempotent)."""
    database = database.resolve()
    if database in _held_locks:
        return
    path = lock_path(database)
    private_file(path)
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held_locks[database] = fd


def release_service_lock(database: Path) -> None:
    fd = _held_locks.pop(database.resolve(), None)
    if fd is not None:
        os.close(fd)


def check(path: Path) -> Snapshot:
    """The snapshot's schema version and figures; ValueError when it is not a sound database of this service."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            verdict = conn.execute("PRAGMA integrity_check").fetchall()
            if verdict != [("ok",)]:
                raise ValueError(f"{path} fails its integrity check: {verdict[:3]}")
            version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        conn.close()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path} is not a database of this service: {exc}") from None
    return Snapshot(path, int(version), path.stat().st_size, int(events))


def backup(database: Path, target: Path) -> Snapshot:
    """Copy the database, as of one moment, to `target` (a new file, owner-only); checked before it is named."""
    if target.exists():
        raise FileExistsError(f"{target} exists; backups never overwrite")
    target.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    private_file(partial)
    source = sqlite3.connect(database, timeout=30)
    copy = sqlite3.connect(partial)
    try:
        source.backup(copy)  # every page in one step: one read snapshot
        copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file (the service turns WAL back on)
    finally:
        copy.close()
        source.close()
    try:
        snapshot = check(partial)
    except ValueError:
        partial.unlink()
        raise
    os.replace(partial, target)
    return Snapshot(target, snapshot.schema_version, snapshot.size_bytes, snapshot.events)


def restore(source: Path, database: Path, newest_version: int) -> Path | None:
    """Replace the database with a checked backup; the path the replaced database was moved to (None if none).

    DatabaseInUse while any process serves the database. A backup of a newer schema is refused;
    an older one is upgraded when the service next starts.
    """
    snapshot = check(source)
    if snapshot.schema_version > newest_version:
        raise ValueError(f"{source} has schema version {snapshot.schema_version}, newer than this release")
    private_file(lock_path(database))
    fd = os.open(lock_path(database), os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUse(f"{database} is in use by a running service; stop it first") from None
        incoming = database.with_name(database.name + ".restoring")
        incoming.unlink(missing_ok=True)
        private_file(incoming)
        with sqlite3.connect(source) as reader, sqlite3.connect(incoming) as writer:
            reader.backup(writer)
        reader.close()
        writer.close()
        _raise_data_versions(incoming, database)
        kept = None
        if database.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            kept = database.with_name(f"{database.stem}-replaced-{stamp}{database.suffix}")
            for suffix in ("", "-wal", "-shm"):  # the WAL holds committed pages: it goes with its file
                old = Path(f"{database}{suffix}")
                if old.exists():
                    os.replace(old, Path(f"{kept}{suffix}"))
        os.replace(incoming, database)
        return kept
    finally:
        os.close(fd)


def _data_versions(path: Path) -> dict[str, int]:
    """The data versions a database holds (none for a missing file, or one from before they existed)."""
    if not path.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT name, version FROM data_versions").fetchall()
        conn.close()
    except sqlite3.DatabaseError:
        return {}
    return dict(rows)


def _raise_data_versions(incoming: Path, replaced: Path) -> None:
    """Give the restored data versions above the replaced database's: answers cached on those never match it."""
    before = _data_versions(replaced)
    with sqlite3.connect(incoming) as conn:
        for name, version in _data_versions(incoming).items():
            conn.execute(
                "UPDATE data_versions SET version = ? WHERE name = ?", (max(version, before.get(name, 0)) + 1, name)
            )
    conn.close()


def main(argv: list[str] | None = None) -> int:
    from weather_metrics.store.migrate import SCHEMA_VERSION

    parser = argparse.ArgumentParser(prog="python -m weather_metrics.store.backup", description=__doc__)
    parser.add_argument("action", choices=("backup", "restore"))
    parser.add_argument("file", type=Path, help="the backup to write (backup) or to read (restore)")
    parser.add_argument("--database", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.action == "backup":
            snapshot = backup(args.database, args.file)
            print(f"backup {snapshot.path}: schema version {snapshot.schema_version}, {snapshot.size_bytes} bytes")
        else:
            kept = restore(args.file, args.database, SCHEMA_VERSION)
            print(f"restored {args.database} from {args.file}" + (f"; the replaced one is {kept}" if kept else ""))
    except (ValueError, OSError, DatabaseInUse) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
