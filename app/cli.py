"""The ``tech7-registry`` command: serve, migrate, seed, tokens (and Flask's own commands).

``tech7-registry serve`` is the one command a newcomer needs: it applies migrations, loads the
declaration once, and runs gunicorn. Preparation happens here, in one process, before any worker
starts, so several workers never race to migrate or seed.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from app.auth import Permission
from app.pki.authority import KeyMaterialError, rotate_signer
from app.pki.keyring import ensure_keys
from app.provenance.manifests import SelfCheckError
from app.auth.service import ASSOCIATION, OPERATOR, create_token


def main() -> None:
    """Entry point of the ``tech7-registry`` console script."""
    from app import create_app  # noqa: PLC0415

    # Commands run before keys exist (keys init, migrate), so the start-up checks belong to the
    # server's workers, not to the command line.
    FlaskGroup(create_app=lambda: create_app({"STARTUP_CHECKS": False}),
               add_default_commands=False,
               help="The TECH7 registry: publish, sign and log the TECH7 declaration.")(
        prog_name="tech7-registry")


def register(app: Flask) -> None:
    """Attach the registry's commands to ``app.cli``."""
    for command in (serve, migrate, seed, tokens, keys):
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

    # Preparation signs documents, and c2pa's native state does not survive a fork: it runs in a
    # child process so that this one, gunicorn's master, never touches c2pa before forking.
    if subprocess.run([sys.executable, "-m", "app.cli", "seed"], check=False).returncode:
        raise click.ClickException("refusing to start: preparation failed (see above)")
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
    """Make missing keys, migrate, check signing, publish the declaration unless already done."""
    try:
        ensure_keys(current_app.config["KEYS_DIR"], current_app.config["SEED_FILE"])
        current_app.extensions["tech7.provenance"].start()
        prepare(current_app)
    except (KeyMaterialError, SelfCheckError) as error:
        raise click.ClickException(str(error)) from error


@click.group()
def keys() -> None:
    """Create and rotate the registry's keys and certificates."""


@keys.command("init")
@with_appcontext
def keys_init() -> None:
    """Create whatever key material is missing (CAs, signers, TSA, log key)."""
    ensure_keys(current_app.config["KEYS_DIR"], current_app.config["SEED_FILE"])
    click.echo(f"Keys are in {current_app.config['KEYS_DIR']}")


@keys.command("rotate")
@click.argument("signer")
@with_appcontext
def keys_rotate(signer: str) -> None:
    """Issue a new signing certificate for SIGNER (registry or an association slug)."""
    certificate = rotate_signer(Path(current_app.config["KEYS_DIR"]), signer)
    click.echo(f"New certificate for {signer}: serial {certificate.serial_number:x}, valid until "
               f"{certificate.not_valid_after_utc.isoformat()}")


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
