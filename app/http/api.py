"""The project's flask-smorest adaptation: every view imports ``Api`` and ``Blueprint``
from here.

What it fixes or adds, once, for every domain:

- errors are RFC 9457 problem+json (including 405 with ``Allow``, 413, 415 and 422 field errors);
- every JSON body, whether webargs or a view parses it, goes through one strict loader
  (:func:`app.core.canonical.strict_loads`), and integer and date fields refuse what the
  database or Python cannot hold (:mod:`app.core.fields`);
- a view that changes state must declare the permission it needs (:func:`app.http.permissions.requires`) or
  its blueprint refuses to register it;
- write endpoints declare the media types they accept, and anything else gets a 415;
- every operation documents, as problem+json, the errors it can answer with (derived from its
  route, its arguments, its permission and the media types it accepts), protected operations
  document the bearer security scheme, and GETs document ``If-None-Match`` and 304;
- the OpenAPI document has its keys sorted at every level, so ``/openapi.json`` and
  ``tech7-registry openapi write`` are byte-for-byte stable and the committed copy diffs well.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from copy import deepcopy
from http import HTTPStatus
from typing import Any

import apispec
import flask_smorest
import marshmallow as ma
from flask import request
from flask.json.provider import DefaultJSONProvider
from flask_smorest.utils import prepare_response
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import HTTPException, UnsupportedMediaType
from werkzeug.sansio.response import Response as SansIOResponse

from app.core.canonical import MAX_DEPTH, strict_loads
from app.core.errors import RegistryError
from app.core.fields import Schema
from app.http.bodies import dumps, json_response
from app.http.idempotency import IDEMPOTENCY_KEY_PARAMETER, is_idempotent
from app.http.permissions import declared_permission
from app.http.problems import PROBLEM_MEDIA_TYPE, render_http_exception, render_registry_error, render_unexpected

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with :func:`~app.core.canonical.strict_loads` for
    ``request.get_json()``, so a view that parses its body itself (a merge patch, a CA
    registration) refuses what webargs refuses, and the house style of :mod:`app.http.bodies`
    for every response it writes (compact in debug mode too, where Flask would indent)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_loads(s)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs.get("indent") is not None:
            # Asked for by name for a file people read and diff (``openapi write``), not for a
            # response: responses all come through here without it.
            return super().dumps(obj, **kwargs)
        return dumps(obj, sort_keys=kwargs.get("sort_keys", self.sort_keys),
                     default=kwargs.get("default", self.default))

    def response(self, *args: Any, **kwargs: Any) -> SansIOResponse:
        return self._app.response_class(self.dumps(self._prepare_response_obj(args, kwargs))
                                        + "\n", mimetype=self.mimetype)


class StrictParser(FlaskParser):
    """webargs' Flask parser reading JSON bodies with the strict loader."""

    def _raw_load_json(self, req) -> Any:
        if not is_json_request(req):
            return webargs_core.missing
        data = req.get_data(cache=True)
        # An empty body is no body: required fields then say what is missing (422).
        return strict_loads(data) if data else webargs_core.missing


class ProblemSchema(Schema):
    """An RFC 9457 problem details object."""

    class Meta:
        # RFC 9457 §3.2: problem types may add extension members.
        unknown = ma.INCLUDE

    type = ma.fields.String(required=True, metadata={"description": "Problem type URI reference."})
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String(required=True, metadata={"description": "What went wrong this time."})
    errors = ma.fields.Dict(metadata={"description": "Field errors, by request location."})


# The error responses operations refer to, by component name: (status, description). Names are
# ours rather than ``HTTPStatus`` member names, which differ between Python versions (413, 422),
# so the generated document is the same on every interpreter.
PROBLEM_RESPONSES: dict[str, tuple[int, str]] = {
    "BadRequest": (400, "The body is not I-JSON (RFC 7493): malformed, not UTF-8, a duplicate "
                        "member name, a lone surrogate, a non-finite or inexact number, or "
                        f"nested deeper than {MAX_DEPTH} levels; or it could not be read at "
                        "all (unreadable-body: broken chunked framing, or it ended early)."),
    "UnreadableBody": (400, "The body could not be read: its chunked framing is broken, or it "
                            "ended early."),
    "BadIdempotencyKey": (400, "The Idempotency-Key is empty or longer than its maxLength."),
    "BadRequestOrIdempotencyKey": (400, "The body is not I-JSON (RFC 7493): malformed, not UTF-8, "
                                        "a duplicate member name, a lone surrogate, a non-finite "
                                        "or inexact number, or nested deeper than "
                                        f"{MAX_DEPTH} levels; or it could not be read at all "
                                        "(unreadable-body: broken chunked framing, or it ended "
                                        "early); or the Idempotency-Key is empty or longer than "
                                        "its maxLength."),
    "UnreadableBodyOrIdempotencyKey": (400, "The body could not be read: its chunked framing is "
                                            "broken, or it ended early; or the Idempotency-Key "
                                            "is empty or longer than its maxLength."),
    "Unauthenticated": (401, "No bearer token, or one that is unknown, expired or revoked."),
    "Forbidden": (403, "The token is not scoped to this action, or not to this document's "
                       "association."),
    "NotFound": (404, "Nothing exists at this URL (with as_of: nothing was published yet at "
                      "that instant)."),
    "RequestTimeout": (408, "The body did not arrive in full within BODY_TIMEOUT seconds of "
                            "the request's head; send it again, faster."),
    "Conflict": (409, "The request conflicts with the current state, e.g. a document with this "
                      "slug already exists."),
    "PreconditionFailed": (412, "If-Match or If-None-Match: * did not hold: the draft changed, "
                                "was published, or already exists. Read it again and retry."),
    "LengthRequired": (411, "The body came chunked through a server that cannot read a chunked "
                            "body: send it with a Content-Length."),
    "ContentTooLarge": (413, "The body is larger than this service accepts."),
    "URITooLong": (414, "The URL is longer than this service accepts (MAX_URL_BYTES)."),
    "UnsupportedMediaType": (415, "The body was sent with a Content-Type this operation does not "
                                  "accept."),
    "InvalidRequest": (422, "Parameters or body failed validation; errors lists the fields."),
    "PreconditionRequired": (428, "The request changes a draft but sent no If-Match: send the "
                                  "draft's ETag (or If-None-Match: * to create a draft)."),
    "RateLimited": (429, "Too many requests from this token (or, without one, this address): "
                         "retry after Retry-After seconds."),
    "HeaderFieldsTooLarge": (431, "A header field is longer than this service accepts "
                                  "(MAX_HEADER_BYTES)."),
}

# Headers an error response carries besides its problem body.
_PROBLEM_HEADERS: dict[str, dict[str, dict]] = {
    "Unauthenticated": {"WWW-Authenticate": {"description": 'Bearer realm="tech7-registry"',
                                             "schema": {"type": "string"}}},
    "RateLimited": {"Retry-After": {"description": "Seconds until the limit resets.",
                                    "required": True, "schema": {"type": "integer"}}},
}

_ETAG = {"description": "Strong entity tag of the representation; send it back in "
                        "If-None-Match (or If-Match on drafts).",
         "required": True, "schema": {"type": "string"}}

_NOT_MODIFIED = {
    "description": "Not Modified: the ETag in If-None-Match is current; the body is empty.",
    "headers": {"ETag": _ETAG},
}

#: The ``Last-Modified`` response header; a GET whose 200 declares it also takes
#: ``If-Modified-Since`` (app.http.conditional).
LAST_MODIFIED = {
    "description": "When the representation last changed (an HTTP-date, RFC 9110 §8.8.2): a "
                   "version's publication time; for what changes with publications, the "
                   "registry's last change, sent once it is a few seconds old.",
    "schema": {"type": "string"}}

_IF_MODIFIED_SINCE = {
    "name": "If-Modified-Since", "in": "header", "required": False,
    "description": "The Last-Modified of a copy you hold: 304 with no body if nothing changed "
                   "since. Ignored when If-None-Match is sent (RFC 9110 §13.2.2).",
    "schema": {"type": "string"},
}

_IF_NONE_MATCH = {
    "name": "If-None-Match", "in": "header", "required": False,
    "description": "ETags of copies you hold; if one is current the answer is 304 with no body.",
    "schema": {"type": "string"},
}

_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]

# What reading any body can end in (app.http.requests); a JSON body's BadRequest, named after
# these, takes the place of UnreadableBody for status 400.
_BODY_PROBLEMS = ["UnreadableBody", "RequestTimeout", "LengthRequired", "ContentTooLarge"]


class SortedAPISpec(apispec.APISpec):
    """An APISpec whose document has its object keys sorted at every level (lists keep their
    order), as JSON, so every serialisation of it is identical."""

    def to_dict(self) -> dict:
        return _sorted_keys(super().to_dict())


def _sorted_keys(value):
    if isinstance(value, dict):
        # Keys become strings as in JSON: apispec keeps status codes as ints.
        return {str(key): _sorted_keys(item)
                for key, item in sorted(value.items(), key=lambda pair: str(pair[0]))}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


class Api(flask_smorest.Api):
    """flask-smorest's Api with problem+json error handling for the whole application."""

    ERROR_SCHEMA = ProblemSchema
    # No catch-all "default" response: each operation lists the errors it can answer with, so a
    # status the document does not name is a bug that the OpenAPI conformance tests catch.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _init_spec(self, **kwargs):
        super()._init_spec(**kwargs)
        # flask-smorest instantiates apispec.APISpec itself and offers no hook for the class;
        # SortedAPISpec only adds to_dict, so switching the class of the new object is safe.
        self.spec.__class__ = SortedAPISpec

    def _openapi_json(self):
        """Serve the OpenAPI document in the house style of every response (flask-smorest
        indents it; the committed file, which people diff, stays indented)."""
        return json_response(self.spec.to_dict())

    def _register_pagination_header(self):
        """Nothing to register: collections page with RFC 8288 Link headers
        (:mod:`app.http.pagination`), not flask-smorest's X-Pagination, whose schema would
        otherwise appear in the document unused."""

    def _register_error_handlers(self):
        self._app.register_error_handler(RegistryError, render_registry_error)
        self._app.register_error_handler(HTTPException, self.handle_http_exception)
        self._app.register_error_handler(Exception, self._handle_unexpected)

    def handle_http_exception(self, error):
        return render_http_exception(error)

    @staticmethod
    def _handle_unexpected(error: Exception):
        return render_unexpected(error)

    def _register_responses(self):
        super()._register_responses()
        # flask-smorest registers its error responses lazily (only those referenced reach the
        # document) and as application/json; the registry serves every error as problem+json.
        for response in self.spec.components.responses_lazy.values():
            content = response.get("content")
            if content and "application/json" in content:
                content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
        for name, (_status, description) in PROBLEM_RESPONSES.items():
            response = {"description": description, "schema": self.ERROR_SCHEMA}
            if name in _PROBLEM_HEADERS:
                response["headers"] = deepcopy(_PROBLEM_HEADERS[name])
            prepare_response(response, self.spec, PROBLEM_MEDIA_TYPE)
            self.spec.components.response(name, response, lazy=True)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with declared permissions, accepted media types, documented
    problem responses and the strict JSON loader."""

    ARGUMENTS_PARSER = StrictParser()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_problem_doc)

    def route(self, rule: str, *, parameters=None, tags=None, **options):
        methods = {m.upper() for m in options.get("methods", ["GET"])}
        register = super().route(rule, parameters=parameters, tags=tags, **options)

        # Any: the view gains attributes of our own (_apidoc, _tech7_public_write).
        def decorator(view: Any):
            if methods - SAFE_METHODS and declared_permission(view) is None \
                    and not getattr(view, "_tech7_public_write", False):
                raise TypeError(f"{self.name}.{view.__name__} changes state but declares no "
                                f"permission: decorate it with @requires(...)")
            # What the OpenAPI document needs to know about the view, read back by
            # _prepare_problem_doc when the blueprint is registered.
            view._apidoc = deepcopy(getattr(view, "_apidoc", {}))
            view._apidoc["tech7"] = {"protected": declared_permission(view) is not None,
                                     "accepts": getattr(view, _ACCEPTS, None),
                                     "idempotent": is_idempotent(view),
                                     "opaque": _opaque_responses(view._apidoc)}
            return register(view)

        return decorator

    @staticmethod
    def public_write(view: Any) -> Any:
        """Declare that a POST endpoint is a public protocol endpoint that changes no state (the
        RFC 3161 time-stamping service), so it needs no permission."""
        view._tech7_public_write = True
        return view

    @staticmethod
    def accepts(*media_types: str, note: str = "") -> Callable[[Callable], Callable]:
        """Refuse (415) request bodies whose Content-Type is not one of ``media_types``.

        The problem names the accepted types in its detail and in ``accepted``, and in the
        ``Accept-Patch`` header on PATCH (RFC 5789 §3.1) or ``Accept-Post`` on POST (as the W3C
        Linked Data Platform registered it). ``note`` adds what a client may not guess, such as
        which patch format a plain ``application/json`` body is read as.
        """
        allowed: Iterable[str] = frozenset(media_types)
        accepted = ", ".join(media_types)
        detail = f"Send the body as {' or '.join(media_types)}." + (f" {note}" if note else "")

        def decorator(view: Callable) -> Callable:
            @functools.wraps(view)
            def wrapper(*args, **kwargs):
                if request.mimetype not in allowed:
                    refusal: Any = UnsupportedMediaType(detail)
                    header = {"PATCH": "Accept-Patch", "POST": "Accept-Post"}.get(request.method)
                    refusal.problem_headers = {header: accepted} if header else {}
                    refusal.problem_extensions = {"accepted": list(media_types)}
                    raise refusal
                return view(*args, **kwargs)

            setattr(wrapper, _ACCEPTS, tuple(media_types))
            return wrapper

        return decorator

    @staticmethod
    def _prepare_problem_doc(doc, doc_info, *, method, **_kwargs):
        """Document the errors an operation can answer with, its security and conditional GET.

        Derived from what the framework knows, so every view gets it without repeating it: any
        operation may 404 (unknown document, version, or nothing yet at as_of), 414 or 431 (too
        long a URL or header field) or 429 (rate limited); arguments mean
        422; a declared permission means bearer security, 401 and 403, and on a write that it
        may conflict (409), need If-Match (428, 412), be refused (422) or have a body that
        cannot be read (400, 408, 411, 413); a declared body may be unreadable (400, 411), come
        too slowly (408), be too large (413), of another media type (415) or, if JSON,
        malformed (400) or invalid (422).
        """
        info = doc_info.get("tech7", {})
        responses = doc.setdefault("responses", {})
        # Every routed request counts against a rate limit (app.http.ratelimit); any request
        # may have too long a URL or header field (app.http.requests).
        names = ["NotFound", "RateLimited", "URITooLong", "HeaderFieldsTooLarge"]
        if "arguments" in doc_info:
            names.append("InvalidRequest")
        if info.get("protected"):
            names += ["Unauthenticated", "Forbidden"]
            doc["security"] = deepcopy(_BEARER)
            if method.upper() not in SAFE_METHODS:
                names += ["Conflict", "PreconditionFailed", *_BODY_PROBLEMS, "InvalidRequest",
                          "PreconditionRequired"]
        accepts = info.get("accepts")
        if accepts:
            names += [*_BODY_PROBLEMS, "UnsupportedMediaType"]
            if any(_is_json(media_type) for media_type in accepts):
                names += ["BadRequest", "InvalidRequest"]
            _document_body(doc, accepts)
        # @arguments documents its 422 by an HTTPStatus member name, which varies by Python
        # version (UNPROCESSABLE_ENTITY, UNPROCESSABLE_CONTENT): ours replaces it.
        for status in [key for key, value in responses.items()
                       if str(key) == "422" and value == HTTPStatus(422).name]:
            del responses[status]
        for name in names:
            responses[PROBLEM_RESPONSES[name][0]] = name
        if info.get("idempotent"):
            # One 400 response per operation: the body's problems and the key's, together.
            responses[400] = {"BadRequest": "BadRequestOrIdempotencyKey",
                              "UnreadableBody": "UnreadableBodyOrIdempotencyKey"}.get(
                responses.get(400), "BadIdempotencyKey")
            doc.setdefault("parameters", []).append(deepcopy(IDEMPOTENCY_KEY_PARAMETER))
        # flask-smorest documents a media type only with a schema: name it for byte responses.
        for status, media_type in info.get("opaque", {}).items():
            response = next((value for key, value in responses.items() if str(key) == status),
                            None)
            if isinstance(response, dict):
                response.setdefault("content", {}).setdefault(media_type, {})
        if method.upper() == "GET":
            # Every 200 to a GET carries a strong ETag (app.http.conditional).
            ok = responses.get(200)
            if isinstance(ok, dict):
                ok.setdefault("headers", {}).setdefault("ETag", deepcopy(_ETAG))
            responses[304] = deepcopy(_NOT_MODIFIED)
            doc.setdefault("parameters", []).append(deepcopy(_IF_NONE_MATCH))
            if isinstance(ok, dict) and "Last-Modified" in ok["headers"]:
                doc["parameters"].append(deepcopy(_IF_MODIFIED_SINCE))
                responses[304]["description"] = (
                    "Not Modified: the ETag in If-None-Match is current or, without "
                    "If-None-Match, nothing changed since If-Modified-Since; the body is empty.")
        return doc


_ACCEPTS = "_tech7_accepts"


def _opaque_responses(apidoc: dict) -> dict[str, str]:
    """Statuses (as strings) declared with a media type but no schema, e.g. a C2PA manifest."""
    found = {}
    for status, documented in apidoc.get("response", {}).get("responses", {}).items():
        for response in documented:
            if isinstance(response, dict) and response.get("content_type") \
                    and not {"schema", "example", "examples"} & response.keys():
                found[str(int(status))] = response["content_type"]
    return found


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _document_body(doc: dict, media_types: Iterable[str]) -> None:
    """List every accepted media type in the request body. JSON types get the schema the view
    declared (a JSON object when it parses the body itself, e.g. a merge patch); other types are
    opaque bytes, which OpenAPI 3.1 documents with no schema."""
    body = doc.setdefault("requestBody", {"required": True, "content": {}})
    content = body.setdefault("content", {})
    declared = next(iter(content.values()), {"schema": {"type": "object"}})
    for media_type in media_types:
        content.setdefault(media_type, deepcopy(declared) if _is_json(media_type) else {})
