"""Command-line tasks: `flask --app app create-org NAME --admin EMAIL`, `backup [FILE]`, `restore FILE`,
`copy-to-postgresql SOURCE URL [--check-only]`.

They run in app.py's app, built without the service's background threads (no alert
evaluation, webhook delivery, pruning or export recovery): a command changes only what it says.
Every write goes straight to the database; none needs the event writer.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from weather_metrics.accounts import organizations as accounts
from weather_metrics.query import parity
from weather_metrics.store import backup as backups
from weather_metrics.store import db, transfer
from weather_metrics.store.migrate import SCHEMA_VERSION
from weather_metrics.web.services import services


@click.command("create-org")
@with_appcontext
@click.argument("name")
@click.option("--admin", "admin_email", required=True, help="Email of the organization's first admin.")
@click.option("--admin-name", default="", help="The admin's name (default: the part of the email before @).")
def create_org(name: str, admin_email: str, admin_name: str) -> None:
    """Create an organization and its first admin, and print the admin's one-time password."""
    try:
        org, admin, password = accounts.create_organization(
            name, admin_email, admin_name or admin_email.split("@")[0], services().passwords
        )
    except accounts.Conflict:
        raise click.ClickException(f"A user with email {admin_email.lower()} already exists") from None
    click.echo(f"organization  {org.name} ({org.id})")
    click.echo(f"admin         {admin.email} ({admin.id})")
    click.echo(f"password      {password}")
    click.echo("Log in with POST /api/auth/login; this password is shown only now. Change it with PUT /api/users/<id>.")


def _sqlite_only(database: str, tool: str) -> None:
    """Backups here copy a SQLite file; a PostgreSQL database has the server's own tools."""
    if db.is_url(database):
        raise click.ClickException(
            f"the database is on PostgreSQL: use {tool} (docs/storage.md); this command copies SQLite files"
        )


@click.command("backup")
@with_appcontext
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def backup(file: Path | None) -> None:
    """Copy the database, consistent as of one moment, while the service runs (default: into backup_dir)."""
    state = services()
    _sqlite_only(state.settings["database"], "pg_dump")
    database = Path(state.settings["database"]).expanduser().resolve()
    if file is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        file = (
            backups.backup_folder(state.settings["backup_dir"], state.settings["database"])
            / f"{database.stem}-{stamp}.db"
        )
    try:
        snapshot = backups.backup(database, file)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup        {snapshot.path}")
    click.echo(f"schema        version {snapshot.schema_version}, integrity checked")
    click.echo(f"size          {snapshot.size_bytes} bytes, {snapshot.events} events")
    click.echo("Keep config.toml with it: its jwt_secret also decrypts the webhook secrets in the database.")


@click.command("restore")
@with_appcontext
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore(file: Path) -> None:
    """Replace the database with a backup; refused while a service uses the database."""
    state = services()
    _sqlite_only(state.settings["database"], "pg_restore")
    _let_go(state.settings["database"])
    database = Path(state.settings["database"]).expanduser().resolve()
    try:
        kept = backups.restore(file, database, SCHEMA_VERSION)
    except (ValueError, OSError, backups.DatabaseInUse) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored      {database} from {file}")
    if kept is not None:
        click.echo(f"replaced      {kept} (kept; delete it once the restore is checked)")


@click.command("copy-to-postgresql")
@with_appcontext
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target")
@click.option("--check-only", is_flag=True, help="Copy nothing: only compare SOURCE with a TARGET copied before.")
def copy_to_postgresql(source: Path, target: str, check_only: bool) -> None:
    """Copy a SQLite database (the service stopped) into an empty PostgreSQL database, then check the two agree."""
    _let_go(services().settings["database"])  # the setting may name SOURCE: the copy holds its lock alone
    try:
        if not check_only:
            _copy(source, target)
        click.echo("checking      rows and contents of every table, then /v1/stats answers")
        differences = transfer.table_differences(source, target)
        differences += parity.answer_differences(source, target, datetime.now(UTC))
    except (transfer.TransferError, db.CannotOpen) as exc:  # a server gone during the check: its message
        raise click.ClickException(str(exc)) from None
    for difference in differences:
        click.echo(f"differs       {difference.subject}: {difference.detail}", err=True)
    if differences:
        raise click.ClickException(f"the target differs from the source in {len(differences)} place(s) listed above")
    click.echo("check         the same: row counts and contents of every table, and the /v1/stats answers")


def _let_go(location: str) -> None:
    """Close this process's connections to the configured database, and its service lock on a SQLite file."""
    db.database.close_all()
    if not db.is_url(location):
        backups.release_service_lock(Path(location).expanduser().resolve())


def _copy(source: Path, target: str) -> None:
    started = time.monotonic()
    copied = transfer.copy_database(
        source,
        target,
        lambda table: click.echo(f"copied        {table.name:<26} {table.rows:>11,} rows {table.seconds:9.2f} s"),
    )
    seconds = time.monotonic() - started
    rows = sum(table.rows for table in copied)
    click.echo(f"copied        {len(copied)} tables, {rows:,} rows in {seconds:.1f} s into {transfer.db_name(target)}")


def init_app(app: Flask) -> None:
    app.cli.add_command(create_org)
    app.cli.add_command(backup)
    app.cli.add_command(restore)
    app.cli.add_command(copy_to_postgresql)
