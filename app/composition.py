"""The composition root: the one place that builds the registry's services and wires them into
a Flask application.

:func:`create_app` is the only way to build the application: configuration defaults, then
``TECH7_*`` environment variables, then the overrides a caller (a test) passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from app import ops
from app.catalog.kinds import ASSOCIATION, CATALOG_KINDS, RECOMMENDATION
from app.certificates.service import CertificateService
from app.core import config as default_config
from app.core.db import Database
from app.exports.service import ExportService
from app.http import activity
from app.http.api import Api, StrictJSONProvider
from app.http.body_deadline import BodyDeadline
from app.http.conditional import apply_conditional_get
from app.http.fastpath import ImmutableVersionFastPath
from app.http.ratelimit import init_rate_limits
from app.http.requests import HeadLimits, Request
from app.ledger.service import TransparencyLog
from app.ledger.witnessing import Witnessing, load_policy_text
from app.pki.keyring import Keyring
from app.provenance.service import ProvenanceService
from app.publishing.kinds import DocumentKinds
from app.publishing.service import PublishingService
from app.statements.kinds import STATEMENT
from app.statements.own_key_cas import OwnKeyCAs
from app.statements.own_key_intake import OwnKeyIntake
from app.verifier.service import VerificationService

# Headers a browser app may read from a cross-origin response.
_EXPOSED_HEADERS = ["ETag", "Link", "Location", "Content-Location", "Content-Digest",
                    "Idempotent-Replayed", "Retry-After", "RateLimit-Limit",
                    "RateLimit-Remaining", "RateLimit-Reset", "Tech7-Quorate", "X-Request-ID"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the registry application."""
    app = Flask(__name__, static_folder=None)  # no static files: the API serves its own bytes
    app.request_class = Request
    app.config.from_object(default_config)
    app.config.from_prefixed_env("TECH7")
    if config:
        app.config.update(config)
    app.config["DATABASE_URL"] = default_config.database_url(app.config["DATA_DIR"],
                                                             app.config["DATABASE_URL"])
    app.config["KEYS_DIR"] = default_config.keys_dir(app.config["DATA_DIR"],
                                                     app.config["KEYS_DIR"])
    app.config["RATELIMIT_STORAGE_URI"] = default_config.ratelimit_storage_uri(
        app.config["DATA_DIR"], app.config["RATELIMIT_STORAGE_URI"])
    app.config["PUBLIC_URL"] = default_config.public_url(app.config["PUBLIC_URL"])
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_BODY_BYTES"])
    app.config.update(_OPENAPI)
    app.json = StrictJSONProvider(app)
    app.json.sort_keys = False

    db = Database(app.config["DATABASE_URL"])
    app.extensions["tech7.db"] = db

    keyring = Keyring(app.config["KEYS_DIR"])
    provenance = ProvenanceService(keyring, tsa_url=app.config["TSA_URL"],
                                   tsa_timeout=app.config["TSA_TIMEOUT"])
    log = TransparencyLog(db, origin=app.config["LOG_ORIGIN"], keyring=keyring)
    certificates = CertificateService(db, keyring, log)
    kinds = DocumentKinds((*CATALOG_KINDS, STATEMENT), members=ASSOCIATION)
    app.extensions.update({"tech7.keys": keyring, "tech7.provenance": provenance,
                           "tech7.log": log, "tech7.certificates": certificates,
                           "tech7.publishing": PublishingService(db, provenance, log,
                                                                 certificates, kinds)})
    app.extensions["tech7.exports"] = ExportService(db, app.extensions["tech7.publishing"],
                                                    provenance, log)
    app.extensions["tech7.own_key_cas"] = OwnKeyCAs(app.extensions["tech7.publishing"])
    app.extensions["tech7.own_key_intake"] = OwnKeyIntake(app.extensions["tech7.publishing"])
    policy_text = load_policy_text(app.config["WITNESS_POLICY"])
    if policy_text is not None:
        witnessing = Witnessing(db, log, policy_text, timeout=float(app.config["WITNESS_TIMEOUT"]))
        app.extensions["tech7.witnessing"] = witnessing
        interval = float(app.config["WITNESS_INTERVAL"])
        if interval > 0:
            # Started by the first request, so in each worker after gunicorn's fork.
            app.before_request(lambda: witnessing.start_background(interval))
            log.appended = witnessing.wake
    app.extensions["tech7.verification"] = VerificationService(
        app.extensions["tech7.publishing"], app.extensions["tech7.certificates"],
        app.extensions["tech7.own_key_cas"], app.extensions.get("tech7.witnessing"))
    if app.config["STARTUP_CHECKS"]:
        # Refuse to start unless the keys load and a signed probe reads Trusted.
        provenance.start()

    api = Api(app)
    _register_blueprints(app, api, kinds)
    init_rate_limits(app)
    # Reads are open to every origin; so is verification, which stores nothing.
    CORS(app, resources={r"/v1/verify": {"origins": "*", "methods": ["POST", "OPTIONS"]},
                         r"/v1/*": {"origins": "*", "methods": ["GET", "HEAD", "OPTIONS"]},
                         r"/openapi.json": {"origins": "*"}},
         expose_headers=_EXPOSED_HEADERS, send_wildcard=True,
         allow_headers=["If-None-Match", "If-Modified-Since"], max_age=86400)
    app.after_request(lambda response: apply_conditional_get(request, response))
    app.wsgi_app = ImmutableVersionFastPath(  # type: ignore[method-assign]  # Flask's middleware idiom
        app.wsgi_app, app.extensions["tech7.publishing"],
        [("Access-Control-Allow-Origin", "*"),
         ("Access-Control-Expose-Headers", ", ".join(sorted(_EXPOSED_HEADERS)))])
    # Outside the fast path, so that its reads are held to the same limits.
    app.wsgi_app = HeadLimits(app.wsgi_app,  # type: ignore[method-assign]
                              max_url_bytes=int(app.config["MAX_URL_BYTES"]),
                              max_header_bytes=int(app.config["MAX_HEADER_BYTES"]))
    app.wsgi_app = BodyDeadline(app.wsgi_app,  # type: ignore[method-assign]
                                seconds=float(app.config["BODY_TIMEOUT"]))
    proxies = int(app.config["TRUSTED_PROXIES"])
    if proxies > 0:
        # Outermost, so that the fast path, the limits, the rate limiter's client address and
        # the URLs the service writes (Swagger UI's OAuth redirect) all see the client's view.
        app.wsgi_app = ProxyFix(app.wsgi_app,  # type: ignore[method-assign]
                                x_for=proxies, x_proto=proxies, x_host=proxies,
                                x_port=proxies, x_prefix=proxies)
    app.before_request(db.ensure_process)
    activity.init_app(app)
    ops.init_app(app)

    return app


def _register_blueprints(app: Flask, api: Api, kinds: DocumentKinds) -> None:
    from app.http.schemas import RecommendationQuerySchema, StatementQuerySchema  # noqa: PLC0415
    from app.http.views.catalog import blp as catalog_blp  # noqa: PLC0415
    from app.http.views.catalog import docs_blp  # noqa: PLC0415
    from app.http.views.documents import changes_blp, document_blueprint  # noqa: PLC0415
    from app.http.views.exports import blp as exports_blp  # noqa: PLC0415
    from app.http.views.log import blp as log_blp  # noqa: PLC0415
    from app.http.views.own_key import blp as own_key_blp  # noqa: PLC0415
    from app.http.views.tokens import blp as tokens_blp  # noqa: PLC0415
    from app.http.views.trust import blp as trust_blp  # noqa: PLC0415
    from app.http.views.verify import blp as verify_blp  # noqa: PLC0415
    from app.web.views import blp as web_blp  # noqa: PLC0415

    # Kinds with search filters of their own: recommendations by priority and tag, statements
    # by association, addressed recommendation and type; the others by the common filters.
    query_schemas = {RECOMMENDATION.name: RecommendationQuerySchema,
                     STATEMENT.name: StatementQuerySchema}
    for kind in kinds.values():
        api.register_blueprint(document_blueprint(kind, query_schema=query_schemas.get(kind.name)))
    api.register_blueprint(own_key_blp)
    api.register_blueprint(changes_blp)
    api.register_blueprint(tokens_blp)
    api.register_blueprint(catalog_blp)
    api.register_blueprint(trust_blp)
    api.register_blueprint(log_blp)
    api.register_blueprint(exports_blp)
    api.register_blueprint(verify_blp)
    app.register_blueprint(docs_blp)
    app.register_blueprint(web_blp)


_OPENAPI = {
    "API_TITLE": "tech7-registry",
    "API_VERSION": "1",
    "OPENAPI_VERSION": "3.1.0",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "API_SPEC_OPTIONS": {
        "info": {"description": "The TECH7 declaration for the AI Action Summit and the statements "
                                "of its member associations, as versioned JSON resources with "
                                "C2PA content credentials and a transparency log."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    },
}
