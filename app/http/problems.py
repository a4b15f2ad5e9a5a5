"""RFC 9457 problem details for every error the service returns.

One renderer serves three sources of errors: the registry's own :class:`~app.core.errors.RegistryError`
hierarchy, werkzeug's HTTP exceptions (404, 405, 413, 415 …, raised by routing and request parsing)
and webargs' validation errors (422, with the field errors as an ``errors`` extension member).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Response, current_app
from werkzeug.exceptions import HTTPException

from app.core.errors import InvalidRequest, NotFound, RegistryError
from app.http.bodies import json_response

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"

log = logging.getLogger(__name__)

# werkzeug's HTTP errors carry a status only. These give each the problem type and title that the
# registry's own error of that status uses, so that a type always has one title (RFC 9457 §3.1.3),
# and a detail that tells the client what to do rather than werkzeug's HTML-oriented prose.
_HTTP_PROBLEMS: dict[int, tuple[str, str, str]] = {
    400: (RegistryError.problem, RegistryError.title,
          "The request could not be parsed; check that the body is valid JSON."),
    404: (NotFound.problem, NotFound.title, "No resource exists at this URL."),
    405: ("method-not-allowed", "Method not allowed",
          "This method is not allowed here; the Allow header lists those that are."),
    408: ("request-timeout", "Request timeout",
          "The request body did not arrive in time; send it again, faster."),
    411: ("length-required", "Length required",
          "Send the request body with a Content-Length."),
    413: ("content-too-large", "Content too large",
          "The request body is larger than this service accepts."),
    415: ("unsupported-media-type", "Unsupported media type",
          "The request body must be sent with a supported Content-Type."),
    422: (InvalidRequest.problem, InvalidRequest.title,
          "The request parameters or body failed validation; see errors."),
    429: ("rate-limited", "Too many requests",
          "Too many requests; retry after the time given in Retry-After."),
    500: ("internal-error", "Internal error",
          "The service failed unexpectedly; the failure was logged."),
}


def problem_response(status: int, problem: str, title: str, detail: str, *,
                     headers: dict[str, str] | None = None, **extensions: Any) -> Response:
    """Build an ``application/problem+json`` response (RFC 9457 §3)."""
    body = {"type": PROBLEM_BASE + problem, "title": title, "status": status, "detail": detail}
    body.update(extensions)
    return json_response(body, status=status, headers=headers, mimetype=PROBLEM_MEDIA_TYPE,
                         sort_keys=True)


def render_registry_error(error: RegistryError) -> Response:
    """Render a domain error from its class attributes."""
    return problem_response(error.status, error.problem, error.title, error.detail,
                            headers=error.headers, **error.extensions)


def render_http_exception(error: HTTPException) -> Response:
    """Render a werkzeug/webargs HTTP exception, keeping headers such as ``Allow`` on 405."""
    status = error.code or 500
    phrase = HTTPStatus(status).phrase
    problem, title, detail = _HTTP_PROBLEMS.get(
        status, (phrase.lower().replace(" ", "-"), phrase, error.description or ""))
    extensions: dict[str, Any] = {}
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if messages is not None:
        # webargs puts field errors under their location ("json", "query", …); keep that shape.
        extensions["errors"] = messages
        detail = "Validation failed: " + _summarise(messages)
    elif data.get("message"):
        detail = data["message"]
    elif error.description and error.description != type(error).description:
        # Raised with a description of the service's own (a 415 naming the accepted types).
        detail = error.description
    elif status == 400 and error.description and "JSON" in error.description:
        detail = "The request body is not valid JSON."
    if status == 413 and current_app.config.get("MAX_CONTENT_LENGTH"):
        limit = int(current_app.config["MAX_CONTENT_LENGTH"])
        extensions["max_body_bytes"] = limit
        detail = f"The request body is larger than this service accepts: at most {limit} bytes."
    if status == 408:
        seconds = current_app.config["BODY_TIMEOUT"]
        extensions["body_timeout_seconds"] = seconds
        detail = f"The whole request body must arrive within {seconds:g} seconds; it did not."
    # get_headers() carries Allow (405) and Retry-After (429/503); Content-Type is ours to set.
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    headers.update(getattr(error, "problem_headers", {}))
    extensions.update(getattr(error, "problem_extensions", {}))
    return problem_response(status, problem, title, detail, headers=headers, **extensions)


def render_unexpected(error: Exception) -> Response:
    """Render an unexpected exception as a 500 problem after logging it with its traceback."""
    log.exception("unhandled error", exc_info=error)
    problem, title, detail = _HTTP_PROBLEMS[500]
    return problem_response(500, problem, title, detail)


def _summarise(messages: Any, prefix: str = "") -> str:
    """Flatten webargs' nested field errors into ``field: message`` phrases for ``detail``."""
    if isinstance(messages, dict):
        parts = []
        for key, value in messages.items():
            # The location level ("json", "query") is not a field name.
            name = prefix if key in {"json", "query", "headers", "form", "files", "view_args"} \
                else (f"{prefix}.{key}" if prefix else str(key))
            parts.append(_summarise(value, name))
        return "; ".join(parts)
    if isinstance(messages, list):
        text = " ".join(str(m) for m in messages if not isinstance(m, (dict, list)))
        nested = [_summarise(m, prefix) for m in messages if isinstance(m, (dict, list))]
        return "; ".join(([f"{prefix}: {text}" if prefix else text] if text else []) + nested)
    return f"{prefix}: {messages}" if prefix else str(messages)
