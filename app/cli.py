"""The ``tech7-registry`` command: serve, migrate, seed, tokens, keys, export, backup, restore.

``tech7-registry serve`` is the one command a newcomer needs: it applies migrations, loads the
declaration once, and runs gunicorn. Preparation happens here, in one process, before any worker
starts, so several workers never race to migrate or seed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from copy import copy
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import ScriptInfo, with_appcontext
from flask_smorest.spec import openapi_cli
from tech7_audit.times import isoformat

from app.access.principal import OPERATOR
from app.access.scopes import ASSOCIATION_DEFAULT_SCOPES, DEFAULT_SCOPES, Permission
from app.auth.service import COMMAND_LINE, issue_token, list_tokens, revoke_token
from app.certificates.service import REVOCATION_REASONS
from app.core.db import utcnow
from app.core.errors import RegistryError
from app.exports.service import MEDIA_TYPES, ExportScope
from app.ops import backup as backups
from app.pki.authority import KeyMaterialError, rotate_signer
from app.pki.keyring import ensure_keys
from app.provenance.signing import SelfCheckError

# What ``serve`` and ``seed`` report goes to the JSON log like the server's own lines; what a
# person asked for (a token, a listing) is printed on stdout.
log = logging.getLogger(__name__)


def main() -> None:
    """Entry point of the ``tech7-registry`` console script."""
    registry(prog_name="tech7-registry")


@click.group(help="The TECH7 registry: publish, sign and log the TECH7 declaration.")
@click.version_option(version("tech7-registry"), prog_name="tech7-registry",
                      message="%(prog)s %(version)s")
@click.pass_context
def registry(context: click.Context) -> None:
    """The project's own command group: only the registry's commands, and its own version.

    Flask's ``FlaskGroup`` would add its generic options (``--app``, ``--env-file``, ``--debug``)
    and every extension's command group; the app's ``flask`` commands stay on ``app.cli``.
    """
    from app.composition import create_app  # noqa: PLC0415

    # Commands run before keys exist (keys init, migrate), so the start-up checks belong to the
    # server's workers, not to the command line.
    context.obj = ScriptInfo(create_app=lambda: create_app({"STARTUP_CHECKS": False}),
                             set_debug_flag=False)


def needs_registry(command: Callable) -> Callable:
    """For a command that acts on an existing registry: with none at the configured place, stop
    with one line, having written nothing (put it under ``@with_appcontext``)."""

    @functools.wraps(command)
    def checked(*args: Any, **kwargs: Any) -> Any:
        _require_registry()
        return command(*args, **kwargs)

    return checked


def _require_registry() -> None:
    db = current_app.extensions["tech7.db"]
    where = db.engine.url.render_as_string(hide_password=True)
    make_one = ("run `tech7-registry serve` or `tech7-registry migrate` first, or point "
                "TECH7_DATA_DIR or TECH7_DATABASE_URL at an existing registry")
    if db.is_sqlite and not Path(db.engine.url.database or "").is_file():
        raise click.ClickException(f"no registry at {db.engine.url.database}: {make_one}")
    try:
        with db.engine.connect() as connection:
            migrated = sa.inspect(connection).has_table("alembic_version")
    except sa.exc.SQLAlchemyError as error:
        raise click.ClickException(f"cannot open the registry at {where}: "
                                   f"{getattr(error, 'orig', None) or error}") from error
    if not migrated:
        raise click.ClickException(f"no registry in {where}: {make_one}")


def register(app: Flask) -> None:
    """Attach the registry's commands to ``app.cli`` (for ``app.test_cli_runner()``)."""
    for command in COMMANDS:
        app.cli.add_command(command)


def prepare(app: Flask) -> None:
    """Migrate the database to head and seed the declaration (idempotent)."""
    from app.catalog.seed import seed_declaration  # noqa: PLC0415
    from app.ops.migrate import upgrade  # noqa: PLC0415

    upgrade(app.config["DATABASE_URL"])
    if seed_declaration(app.extensions["tech7.publishing"], app.config["SEED_FILE"],
                        certificates=app.extensions["tech7.certificates"]):
        log.info("Published the TECH7 declaration as version 1 of every document.")


#: Bind addresses that name no one host a client could be sent to.
_ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})


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
    if not os.environ.get("TECH7_PUBLIC_URL") and host not in _ANY_ADDRESS:
        # What this registry names in its PDF exports. Behind a proxy, or on every address,
        # only the operator knows the public URL, and PDF exports wait for TECH7_PUBLIC_URL.
        os.environ["TECH7_PUBLIC_URL"] = f"http://{host}:{port}/"
    log.info("Serving on http://%s:%s/v1 (docs: http://%s:%s/docs/)", host, port, host, port,
             extra={"url": f"http://{host}:{port}/v1"})
    run(host=host, port=port, workers=workers)


@click.command()
@with_appcontext
def migrate() -> None:
    """Apply database migrations up to head."""
    from app.ops.migrate import upgrade  # noqa: PLC0415

    upgrade(current_app.config["DATABASE_URL"])


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
@needs_registry
def backup(out: Path) -> None:
    """Back up the database to OUT while the service runs (SQLite: a database file; PostgreSQL:
    a pg_dump custom archive). The key folder is not included: back it up separately."""
    try:
        backups.backup(current_app.extensions["tech7.db"], out)
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Backed up the database to {out}")


@click.command()
@click.argument("source", metavar="IN", type=click.Path(exists=True, dir_okay=False,
                                                        path_type=Path))
@with_appcontext
def restore(source: Path) -> None:
    """Restore the backup IN into the database of TECH7_DATABASE_URL, which must be empty.

    An SQLite backup restored into PostgreSQL moves the registry there: the migrations make the
    schema and every row is copied unchanged, in one transaction."""
    try:
        backups.restore(current_app.extensions["tech7.db"], source)
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Restored {source} into {current_app.extensions['tech7.db'].engine.url!r}")


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
    """Create, rotate and revoke the registry's keys and certificates."""


@keys.command("init")
@with_appcontext
def keys_init() -> None:
    """Create whatever key material is missing (CAs, signers, TSA, log key)."""
    ensure_keys(current_app.config["KEYS_DIR"], current_app.config["SEED_FILE"])
    click.echo(f"Keys are in {current_app.config['KEYS_DIR']}")


@keys.command("rotate")
@click.argument("signer")
@with_appcontext
@needs_registry
def keys_rotate(signer: str) -> None:
    """Issue a new signing certificate for SIGNER (registry or an association slug) and log it.

    The old certificate stays listed in /v1/trust (valid until it expires, unless revoked):
    manifests it signed keep verifying. A running server signs with the new one from its next
    signature on: recording it changes the key state its workers check.
    """
    try:
        certificate = rotate_signer(Path(current_app.config["KEYS_DIR"]), signer)
    except (KeyMaterialError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    current_app.extensions["tech7.keys"].reload()
    current_app.extensions["tech7.certificates"].sync_now()
    click.echo(f"New certificate for {signer}: serial {certificate.serial_number:x}, valid until "
               f"{isoformat(certificate.not_valid_after_utc)}")


def _iso8601(_context: click.Context, _parameter: click.Parameter, value: str | None
             ) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date-time "
                                 f"(e.g. 2025-02-10T12:00:00Z)") from None


@keys.command("revoke")
@click.argument("certificate", metavar="SIGNER_OR_SHA256")
@click.option("--reason", required=True, type=click.Choice(REVOCATION_REASONS),
              help="RFC 5280 CRLReason.")
@click.option("--at", "revoked_at", callback=_iso8601, metavar="ISO8601",
              help="When the certificate stopped being trustworthy, with a UTC offset "
                   "[default: now]. Manifests signed from then on verify as revoked.")
@with_appcontext
@needs_registry
def keys_revoke(certificate: str, reason: str, revoked_at: datetime | None) -> None:
    """Revoke SIGNER's current signing certificate, or the one with this SHA-256, and log it."""
    try:
        revocation = current_app.extensions["tech7.certificates"].revoke(
            certificate, reason, revoked_at)
    except (RegistryError, KeyMaterialError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Revoked certificate {revocation.certificate_sha256} from "
               f"{isoformat(revocation.revoked_at)} ({reason}); log entry {revocation.log_index}")


@click.command()
@click.option("--format", "export_format", required=True, type=click.Choice(list(MEDIA_TYPES)))
@click.option("--priority", type=click.IntRange(1, 999), help="A priority and its recommendations.")
@click.option("--association", metavar="SLUG", help="An association's documents.")
@click.option("--version", "versions", multiple=True, metavar="PATH",
              help="A version path, e.g. /v1/recommendations/sme-participation/versions/1 "
                   "(repeat for several).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write; JSON and CSV also get FILE.c2pa, the sidecar manifest.")
@with_appcontext
@needs_registry
def export(export_format: str, priority: int | None, association: str | None,
           versions: tuple[str, ...], out: Path) -> None:
    """Make a signed, logged export (default: the whole declaration) and print its id.

    A PDF names the registry's public URL, TECH7_PUBLIC_URL, in its "How to verify" section.
    """
    if sum(bool(given) for given in (priority, association, versions)) > 1:
        raise click.UsageError("Give at most one of --priority, --association or --version.")
    scope = ExportScope(declaration=not (priority or association or versions),
                        priority=priority, association=association, versions=versions)
    try:
        made = current_app.extensions["tech7.exports"].create(
            export_format, scope, created_by="registry:cli",
            registry_url=current_app.config["PUBLIC_URL"])
    except RegistryError as error:
        raise click.ClickException(error.detail) from error
    out.write_bytes(made.content)
    if made.manifest is not None:
        out.with_name(out.name + ".c2pa").write_bytes(made.manifest)
    click.echo(made.id)


@click.group()
def tokens() -> None:
    """Create, list and revoke access tokens."""


def _scopes(_context: click.Context, _parameter: click.Parameter, value: str | None
            ) -> list[Permission] | None:
    if value is None:
        return None
    valid = sorted(p.value for p in Permission)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        raise click.BadParameter(f"{', '.join(map(repr, unknown)) or 'none'} given; the valid "
                                 f"scopes are {', '.join(valid)}.")
    return [Permission(name) for name in names]


@tokens.command("create")
@click.option("--operator", "role", flag_value=OPERATOR, help="A registry operator's token.")
@click.option("--association", help="Slug of the association the token publishes for "
                                    "(its onboarding: the token starts its own chain).")
@click.option("--scopes", callback=_scopes, metavar="SCOPE,…",
              help="Comma-separated permissions, of "
                   f"{', '.join(sorted(p.value for p in Permission))} "
                   f"[default: {','.join(sorted(p.value for p in DEFAULT_SCOPES))} for an "
                   f"operator, {','.join(sorted(p.value for p in ASSOCIATION_DEFAULT_SCOPES))} "
                   f"for an association; {Permission.ONBOARD_ASSOCIATIONS.value} only when asked "
                   f"for, and only for operators].")
@click.option("--expires", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
              help="Expiry in the future (UTC date or RFC 3339 time).")
@click.option("--label", default="", help="A note saying who holds the token.")
@with_appcontext
@needs_registry
def create_token_command(role: str | None, association: str | None,
                         scopes: list[Permission] | None, expires: datetime | None,
                         label: str) -> None:
    """Print a new token once on stdout (its id on stderr); only its hash is stored."""
    if (role is None) == (association is None):
        raise click.UsageError("Give exactly one of --operator or --association SLUG.")
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    try:
        issued = issue_token(current_app.extensions["tech7.db"], None, association=association,
                             scopes=scopes, label=label, expires_at=expires)
    except RegistryError as error:
        raise click.ClickException(error.detail) from error
    click.echo(issued.token)
    click.echo(f"Made token {issued.row.id} ({_holder(issued.row)}; "
               f"{issued.row.scopes.replace(' ', ',')}). Store it now: it is not shown again. "
               f"Revoke it with: tech7-registry tokens revoke {issued.row.id}", err=True)


def _holder(row) -> str:
    return f"association {row.association}" if row.association else "operator"


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="Print the tokens as GET /v1/tokens lists them, as a JSON array.")
@with_appcontext
@needs_registry
def list_tokens_command(as_json: bool) -> None:
    """List every token: who holds it, who made it, whether it still works (never the token)."""
    from app.http.views.tokens import token_json  # noqa: PLC0415 - the API's own view of a token

    rows = list_tokens(current_app.extensions["tech7.db"], None)
    if as_json:
        click.echo(json.dumps([token_json(row) for row in rows], indent=2))
        return
    now = utcnow()
    table = [("ID", "ROLE", "ASSOCIATION", "STATE", "EXPIRES", "MINTED-BY", "SCOPES", "LABEL")]
    for row in rows:
        state = "revoked" if row.revoked_at else \
            "expired" if row.expires_at and row.expires_at <= now else "live"
        table.append((str(row.id), row.role, row.association or "-", state,
                      isoformat(row.expires_at) if row.expires_at else "never",
                      f"token {row.minted_by.id}" if row.minted_by else COMMAND_LINE,
                      ",".join(row.scopes.split()), row.label))
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]) - 1)]
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
                   + "  " + line[-1])


@tokens.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
@needs_registry
def revoke_token_command(token_id: int) -> None:
    """Revoke token TOKEN_ID at once, and every token it made, transitively."""
    try:
        ended = revoke_token(current_app.extensions["tech7.db"], None, token_id)
    except RegistryError as error:
        raise click.ClickException(error.detail) from error
    children = [str(ended_id) for ended_id in ended if ended_id != token_id]
    made = f", and the tokens it made: {', '.join(children)}" if children else ""
    click.echo(f"Token {token_id} is revoked{made}.")


COMMANDS = (serve, migrate, seed, tokens, keys, export, backup, restore)
for _command in COMMANDS:
    registry.add_command(_command)
# For maintainers only (regenerating openapi/openapi.json), so left out of --help; a copy, so
# that hiding it leaves the group flask-smorest puts on app.cli as it is.
registry.add_command(copy(openapi_cli), "openapi")
registry.commands["openapi"].hidden = True

if __name__ == "__main__":  # pragma: no cover
    main()
