"""Command-line tasks: `flask --app app create-org NAME --admin EMAIL`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from weather_metrics.accounts import organizations as accounts
from weather_metrics.web.services import services


@click.command("create-org")
@with_appcontext
@click.argument("name")
@click.option("--admin", "admin_email", required=True, help="Email of the organization's first admin.")
@click.option("--admin-name", default="", help="The admin's name (default: the part of the email before @).")
def create_org(name: str, admin_email: str, admin_name: str) -> None:
    """Create an organization and its first admin, and print the admin's one-time password."""
    state = services()
    try:
        org, admin, password = accounts.create_organization(
            name, admin_email, admin_name or admin_email.split("@")[0], state.passwords
        )
    except accounts.Conflict:
        raise click.ClickException(f"A user with email {admin_email.lower()} already exists") from None
    finally:
        state.close()
    click.echo(f"organization  {org.name} ({org.id})")
    click.echo(f"admin         {admin.email} ({admin.id})")
    click.echo(f"password      {password}")
    click.echo("Log in with POST /api/auth/login; this password is shown only now. Change it with PUT /api/users/<id>.")


def init_app(app: Flask) -> None:
    app.cli.add_command(create_org)
