"""``Idempotency-Key`` on every unsafe request that makes or changes something: one rule.

A client that sends a request under a key of its choosing (1 to 255 characters) and does not
hear back may send it again under the same key. The registry remembers, per token, the first
request under each key that succeeded, and its answer:

* the same request again (same method, path, preconditions and body) replays that answer: the
  same status,
  body and headers, plus ``Idempotent-Replayed: true``; nothing is done twice;
* another request under the key is refused (422 ``idempotency-key-reused``), so a key never
  stands for two things;
* an answer that is not a success keeps nothing: the client may correct the request and send
  it again under the same key;
* a key that is empty or longer than 255 characters is refused (400), never cut, since two
  keys cut to one prefix would replay each other.

The request runs in one :meth:`~app.core.db.Database.transaction` that the services' writes join,
and the record of its answer is added to it: the effect and the record commit together or not
at all, so a worker killed at any point leaves either both or neither. Of two requests under one
key at once, the second waits, before it looks for a record, for the writer lock (SQLite) or
for a transaction-scoped advisory lock on the key (PostgreSQL), and is then answered from the
first's record.

An answer can hold a secret the registry keeps only hashed (a new token): such fields are left
out of what is stored, so a replay lacks them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import datetime

import sqlalchemy as sa
from flask import Response, current_app, g, request
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.db import Base, UTCDateTime, utcnow
from app.core.errors import IdempotencyKeyReused, InvalidIdempotencyKey
from app.http.bodies import dumps

IDEMPOTENCY_KEY_MAX_LENGTH = 255
"""The longest ``Idempotency-Key`` the registry stores whole; longer keys are refused (400)."""

#: Headers of a first answer that a replay repeats; the rest (rate limits, CORS, dates) belong
#: to each answer itself.
_REPLAYED_HEADERS = ("Location", "ETag", "Content-Location", "Content-Digest", "Link",
                     "Last-Modified", "Cache-Control")


class IdempotencyRecord(Base):
    """The first request a token sent under an ``Idempotency-Key`` that succeeded, and its
    answer, for faithful replays."""

    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int]
    key: Mapped[str] = mapped_column(sa.String(IDEMPOTENCY_KEY_MAX_LENGTH))
    request_sha256: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[int]
    mimetype: Mapped[str] = mapped_column(sa.String(100))
    headers: Mapped[str] = mapped_column(sa.Text, doc="JSON of the replayed headers.")
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (sa.UniqueConstraint("token_id", "key"),)


_ATTRIBUTE = "_tech7_idempotent"

#: The OpenAPI description of the header, on every operation that honours it.
IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Any string of your choosing: a retry with the same key and request replays "
                   "the first successful response (Idempotent-Replayed: true); another request "
                   "under it is refused (422). Longer keys are refused (400), not cut.",
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH},
}


def idempotent(*, secret_fields: Iterable[str] = ()) -> Callable[[Callable], Callable]:
    """Honour ``Idempotency-Key`` on a view, below :func:`~app.http.permissions.requires` (it needs the
    caller's token) and above the decorators that parse the body. The OpenAPI document then names the header.

    ``secret_fields`` are top-level fields of a JSON answer that are never stored, so a replay
    lacks them.
    """
    secrets = tuple(secret_fields)

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            key = request.headers.get("Idempotency-Key")
            if key is None:
                return view(*args, **kwargs)
            if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH:
                raise InvalidIdempotencyKey(
                    f"An Idempotency-Key has 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters; this "
                    f"one has {len(key)}.")
            token_id = g.principal.token_id
            # The preconditions are part of the request: a publish under the same key with
            # another If-Match is another request, not a retry of the first.
            digest = hashlib.sha256(b"\n".join([
                request.method.encode(), request.path.encode(),
                request.headers.get("If-Match", "").encode(),
                request.headers.get("If-None-Match", "").encode(),
                request.get_data()])).hexdigest()
            db = current_app.extensions["tech7.db"]
            try:
                with db.transaction() as session:
                    _claim(session, token_id, key)
                    replay = _replay(session, token_id, key, digest)
                    if replay is not None:
                        return replay
                    response = current_app.make_response(view(*args, **kwargs))
                    if 200 <= response.status_code < 300:
                        session.add(_record_of(token_id, key, digest, response, secrets))
                        session.flush()
                    return response
            except sa.exc.IntegrityError:
                # Another request under this key committed first (PostgreSQL): this one's
                # writes are rolled back whole, and it is answered as a retry of that one.
                with db.sessions() as session:
                    replay = _replay(session, token_id, key, digest)
                if replay is None:
                    raise
                return replay

        setattr(wrapper, _ATTRIBUTE, True)
        return wrapper

    return decorator


def is_idempotent(view: Callable) -> bool:
    """Whether a view honours ``Idempotency-Key`` (:func:`idempotent`); app.http.api then
    documents the header and its 400 on the operation."""
    return getattr(view, _ATTRIBUTE, False)


def _claim(session: Session, token_id: int, key: str) -> None:
    """Hold the key until this transaction ends, so that a retry racing the first request waits
    for its answer and replays it, instead of running the view again and failing where the first
    succeeded (its draft already published, say). SQLite's writer lock, taken as the transaction
    began, does this already; PostgreSQL takes a transaction-scoped advisory lock on the key."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:claim, 0))"),
                        {"claim": f"{token_id}:{key}"})


def _replay(session: Session, token_id: int, key: str, digest: str) -> Response | None:
    """The first answer under ``key``, for the same request; None when there is none yet."""
    record = session.scalar(sa.select(IdempotencyRecord).where(
        IdempotencyRecord.token_id == token_id, IdempotencyRecord.key == key))
    if record is None:
        return None
    if record.request_sha256 != digest:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was first used with a different request; use a new key for a "
            "new request.")
    response = Response(record.body, status=record.status, mimetype=record.mimetype,
                        headers=json.loads(record.headers))
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _record_of(token_id: int, key: str, digest: str, response: Response,
               secrets: tuple[str, ...]) -> IdempotencyRecord:
    body = response.get_data()
    if secrets:
        # Replayed in the house style, like the first answer (app.http.bodies).
        body = (dumps({name: value for name, value in json.loads(body).items()
                       if name not in secrets}) + "\n").encode()
    headers = {name: response.headers[name] for name in _REPLAYED_HEADERS
               if name in response.headers}
    return IdempotencyRecord(token_id=token_id, key=key, request_sha256=digest,
                             status=response.status_code, mimetype=response.mimetype,
                             headers=json.dumps(headers), body=body, created_at=utcnow())
