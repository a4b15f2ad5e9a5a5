"""The ``tech7-registry`` command: serve, migrate, seed, tokens (and Flask's own commands).

``tech7-registry serve`` is the one command a newcomer needs: it applies migrations, loads the
declaration once, and runs gunicorn. Preparation happens here, in one process, before any worker
starts, so several workers never race to migrate or seed.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from app.auth import Permission
from app.auth.service import ASSOCIATION, OPERATOR, create_token


def main() -> None:
    """Entry point of the ``tech7-registry`` console script."""
    from app import create_app  # noqa: PLC0415

    FlaskGroup(create_app=create_app, add_default_commands=False,
               help="The TECH7 registry: publish, sign and log the TECH7 declaration.")(
        prog_name="tech7-registry")


def register(app: Flask) -> None:
    """Attach the registry's commands to ``app.cli``."""
    for command in (serve, migrate, seed, tokens):
        app.cli.add_command(command)


def prepare(app: Flask) -> None:
    """Migrate the database to head and seed the declaration (idempotent)."""
    from app.catalog.seed import seed_declaration  # noqa: PLC0415
    from app.migrate import upgrade  # noqa: PLC0415

    upgrade(app.config["DATABASE_URL"])
    if seed_declaration(app.extensions["tech7.publishing"], app.config["SEED_FILE"]):
        click.echo("Published the TECH7 declaration as version 1 of every document.")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@with_appcontext
def serve(host: str, port: int, workers: int) -> None:
    """Migrate, load the declaration, and serve the API with gunicorn."""
    from app.server import run  # noqa: PLC0415

    prepare(current_app)
    click.echo(f"Serving on http://{host}:{port}/v1 (docs: http://{host}:{port}/docs/)")
    run(host=host, port=port, workers=workers)


@click.command()
@with_appcontext
def migrate() -> None:
    """Apply database migrations up to head."""
    from app.migrate import upgrade  # noqa: PLC0415

    upgrade(current_app.config["DATABASE_URL"])


@click.command()
@with_appcontext
def seed() -> None:
    """Migrate, then publish the declaration unless it is already published."""
    prepare(current_app)


@click.group()
def tokens() -> None:
    """Create and manage access tokens."""


@tokens.command("create")
@click.option("--operator", "role", flag_value=OPERATOR, help="A registry operator's token.")
@click.option("--association", help="Slug of the association the token publishes for.")
@click.option("--scopes", default=",".join(p.value for p in Permission), show_default=True,
              help="Comma-separated permissions.")
@click.option("--expires", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
              help="Expiry (UTC date or RFC 3339 time).")
@click.option("--label", default="", help="A note saying who holds the token.")
@with_appcontext
def create_token_command(role: str | None, association: str | None, scopes: str,
                         expires: datetime | None, label: str) -> None:
    """Print a new token once; only its hash is stored."""
    if (role is None) == (association is None):
        raise click.UsageError("Give exactly one of --operator or --association SLUG.")
    try:
        permissions = [Permission(s.strip()) for s in scopes.split(",") if s.strip()]
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--scopes") from error
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    token = create_token(current_app.extensions["tech7.db"],
                         role=role or ASSOCIATION, association=association,
                         scopes=permissions, label=label, expires_at=expires)
    click.echo(token)
    click.echo("Store this token now: it is not shown again.", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
