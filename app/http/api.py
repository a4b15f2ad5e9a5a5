"""The project's flask-smorest adaptation: every view imports ``Api``, ``Blueprint`` and ``Schema``
from here.

What it fixes or adds, once, for every domain:

- errors are RFC 9457 problem+json (including 405 with ``Allow``, 413, 415 and 422 field errors);
- a view that changes state must declare the permission it needs (:func:`app.auth.requires`) or
  its blueprint refuses to register it;
- write endpoints declare the media types they accept, and anything else gets a 415;
- the pagination ``Link`` header and problem responses are documented in OpenAPI.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import flask_smorest
import marshmallow as ma
from flask import request
from werkzeug.exceptions import HTTPException, UnsupportedMediaType

from app.auth.permissions import declared_permission
from app.errors import RegistryError
from app.http.problems import (PROBLEM_MEDIA_TYPE, render_http_exception, render_registry_error,
                               render_unexpected)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Schema(ma.Schema):
    """Base schema: unknown fields are an error, so typos never pass silently."""

    class Meta:
        unknown = ma.RAISE


class ProblemSchema(Schema):
    """An RFC 9457 problem details object."""

    type = ma.fields.String(required=True, metadata={"description": "Problem type URI reference."})
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String(required=True, metadata={"description": "What went wrong this time."})
    errors = ma.fields.Dict(metadata={"description": "Field errors, by request location."})


class Api(flask_smorest.Api):
    """flask-smorest's Api with problem+json error handling for the whole application."""

    ERROR_SCHEMA = ProblemSchema

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
        # Every documented error response is problem+json, not application/json.
        for response in self.spec.components.responses.values():
            content = response.get("content")
            if content and "application/json" in content:
                content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with declared permissions and accepted media types."""

    def route(self, rule: str, *, parameters=None, tags=None, **options):
        methods = {m.upper() for m in options.get("methods", ["GET"])}
        register = super().route(rule, parameters=parameters, tags=tags, **options)

        def decorator(view: Callable):
            if methods - SAFE_METHODS and declared_permission(view) is None:
                raise TypeError(f"{self.name}.{view.__name__} changes state but declares no "
                                f"permission: decorate it with @requires(...)")
            return register(view)

        return decorator

    @staticmethod
    def accepts(*media_types: str) -> Callable[[Callable], Callable]:
        """Refuse (415) request bodies whose Content-Type is not one of ``media_types``."""
        allowed: Iterable[str] = frozenset(media_types)

        def decorator(view: Callable) -> Callable:
            @functools.wraps(view)
            def wrapper(*args, **kwargs):
                if request.mimetype not in allowed:
                    raise UnsupportedMediaType(
                        f"Send the body as {' or '.join(sorted(allowed))}.")
                return view(*args, **kwargs)

            return wrapper

        return decorator
