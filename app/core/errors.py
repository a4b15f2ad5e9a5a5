"""The registry's error hierarchy.

Every failure a client can cause is a subclass of :class:`RegistryError` that names its HTTP status
and its RFC 9457 problem type. Services raise these; :mod:`app.http.problems` renders any of them as
``application/problem+json`` from the class alone, so adding an error never means touching a view.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RegistryError(Exception):
    """Base of every error the registry reports to a client.

    ``problem`` is the last path segment of the problem type URI (``/problems/<problem>``) and
    ``title`` its short, stable summary (RFC 9457 §3.1.3). ``detail`` is the message passed to the
    constructor and says what happened this time.
    """

    status: ClassVar[int] = 400
    problem: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extensions: Any):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


class NotFound(RegistryError):
    """The resource does not exist (or did not exist at the requested ``as_of`` time)."""

    status = 404
    problem = "not-found"
    title = "Not found"


class InvalidRequest(RegistryError):
    """The request is well-formed HTTP but its parameters or body are not acceptable."""

    status = 422
    problem = "invalid-request"
    title = "Invalid request"


class InvalidJSON(RegistryError):
    """The body is not I-JSON (RFC 7493) that the registry can canonicalise (RFC 8785); ``reason``
    names the rule it broke (:mod:`app.core.canonical`)."""

    status = 400
    problem = "invalid-json"
    title = "The body is not acceptable JSON"


class UnreadableBody(RegistryError):
    """The server could not read the request body: its chunked framing does not parse
    (RFC 9112 §7.1), or the client stopped sending before its end."""

    status = 400
    problem = "unreadable-body"
    title = "The request body could not be read"


class PreconditionRequired(RegistryError):
    """A state-changing request on a draft came without ``If-Match`` (RFC 6585 §3)."""

    status = 428
    problem = "precondition-required"
    title = "Precondition required"


class PreconditionFailed(RegistryError):
    """``If-Match`` / ``If-None-Match`` did not hold: the client's copy is stale (RFC 9110 §13.1)."""

    status = 412
    problem = "precondition-failed"
    title = "Precondition failed"


class Conflict(RegistryError):
    """The request conflicts with the current state of the resource."""

    status = 409
    problem = "conflict"
    title = "Conflict"


class IdempotencyKeyReused(RegistryError):
    """An ``Idempotency-Key`` was replayed with a different request body."""

    status = 422
    problem = "idempotency-key-reused"
    title = "Idempotency key reused with a different request"


class InvalidIdempotencyKey(RegistryError):
    """An ``Idempotency-Key`` that is empty or longer than the registry stores whole."""

    status = 400
    problem = "invalid-idempotency-key"
    title = "Invalid idempotency key"


class Unauthenticated(RegistryError):
    """No bearer token, or one that is unknown, expired or revoked."""

    status = 401
    problem = "unauthenticated"
    title = "Authentication required"

    def __init__(self, detail: str, **extensions: Any):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="tech7-registry"'},
                         **extensions)


class Forbidden(RegistryError):
    """The token is valid but does not grant this action on this resource."""

    status = 403
    problem = "forbidden"
    title = "Forbidden"


class ServiceUnavailable(RegistryError):
    """A dependency (database, timestamp authority) is unavailable; retrying later may succeed."""

    status = 503
    problem = "service-unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int = 5, **extensions: Any):
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, **extensions)
