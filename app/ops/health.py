"""Liveness and readiness endpoints for operators and orchestrators: ``/healthz`` and ``/readyz``.

They are not part of the public ``/v1`` API (so not in its OpenAPI document: a plain Flask
blueprint), are never rate limited, and are never cached.

- ``GET /healthz``: the process answers HTTP. It touches nothing else, so a database outage never
  makes an orchestrator restart healthy workers.
- ``GET /readyz``: this process can serve every request: the database answers ``SELECT 1``, the key
  folder is loaded, and the signer's self-check (:meth:`ProvenanceService.start`) passed in this
  process. Otherwise 503 ``/problems/service-unavailable`` naming the failing checks; the reasons
  are logged, not served (they may name hosts and paths). Where the log has witnesses, a ready
  answer also lists each one's state (``witnesses``: last cosigned size, last error, when), as
  ``/v1/log/witnesses`` does; a witness that is down never makes the process unready.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, jsonify

from app.core.db import Database
from app.core.errors import ServiceUnavailable
from app.pki.authority import KeyMaterialError
from app.pki.keyring import Keyring
from app.provenance.service import ProvenanceService

log = logging.getLogger(__name__)

blp = Blueprint("ops", __name__)

#: What each readiness check reports when it fails.
CHECK_FAILURES = {
    "database": "The database did not answer SELECT 1.",
    "keys": "The key folder could not be loaded.",
    "signer": "The signer's self-check has not passed in this process.",
}


def failing_checks(app: Flask) -> list[str]:
    """The names of the readiness checks (see :data:`CHECK_FAILURES`) that fail now, in order."""
    failing = []
    db: Database = app.extensions["tech7.db"]
    try:
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as error:
        log.error("readiness: the database did not answer: %s", error)
        failing.append("database")
    keyring: Keyring = app.extensions["tech7.keys"]
    try:
        _ = keyring.store  # loading the keys is the check
    except KeyMaterialError as error:
        log.error("readiness: the keys did not load: %s", error)
        failing.append("keys")
    provenance: ProvenanceService = app.extensions["tech7.provenance"]
    if not provenance.self_checked:
        failing.append("signer")
    return failing


@blp.get("/healthz")
def healthz():
    """Liveness: 200 while the process answers HTTP."""
    return _uncached(jsonify(status="ok"))


@blp.get("/readyz")
def readyz():
    """Readiness: 200 when the database, the keys and the signer are all usable, else 503."""
    failing = failing_checks(current_app)
    if failing:
        raise ServiceUnavailable(" ".join(CHECK_FAILURES[name] for name in failing),
                                 failing_checks=failing)
    body = {"status": "ready", "checks": {name: "ok" for name in CHECK_FAILURES}}
    witnessing = current_app.extensions.get("tech7.witnessing")
    if witnessing:
        # Details, not a check: a witness that is down delays cosignatures, never a request.
        body["witnesses"] = [report.as_json() for report in witnessing.reports()]
    return _uncached(jsonify(body))


def _uncached(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Register the endpoints and exempt them from every rate limiter of ``app``.

    Call after the rate limiter is installed.
    """
    app.register_blueprint(blp)
    for limiter in app.extensions.get("limiter", ()):
        limiter.exempt(blp)
