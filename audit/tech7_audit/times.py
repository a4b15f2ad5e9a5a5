"""The one way the registry writes an instant: RFC 3339 (§5.6) in UTC, with milliseconds and a
``Z``, e.g. ``2025-02-10T09:30:00.000Z``.

Every time the API, the CLI, the logs, the transparency log's records and published versions
show goes through :func:`isoformat`, so a client parses one format. (HTTP's own date fields,
such as ``Last-Modified``, keep the IMF-fixdate that RFC 9110 §5.6.7 requires.)
"""

from __future__ import annotations

from datetime import UTC, datetime


def isoformat(moment: datetime) -> str:
    """``moment`` as RFC 3339 UTC with milliseconds and a ``Z``.

    An aware time in another zone is converted to UTC; a naive one names no instant, so it is
    refused rather than guessed at.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no UTC offset, so it names no instant")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")
