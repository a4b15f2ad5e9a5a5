"""The one JSON style of every response that is not a version's canonical bytes.

Compact (no space after ``,`` or ``:``, as RFC 8785's canonical form is too), UTF-8 rather than
``\\u`` escapes, keys in the order the view built them, and a final newline. Flask's JSON
provider (:class:`app.http.api.StrictJSONProvider`), and so every schema-dumped response,
writes through :func:`dumps`; views that build a response themselves use :func:`json_response`,
and problems (:mod:`app.http.problems`) do too, even outside an application context.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from flask import Response

SEPARATORS = (",", ":")


def dumps(value: Any, *, sort_keys: bool = False,
          default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as JSON text in the house style (without the final newline)."""
    return json.dumps(value, ensure_ascii=False, separators=SEPARATORS, sort_keys=sort_keys,
                      allow_nan=False, default=default)


def json_response(value: Any, *, status: int = 200, headers: Mapping[str, str] | None = None,
                  mimetype: str = "application/json", sort_keys: bool = False) -> Response:
    """A response whose body is ``value`` in the house style."""
    return Response(dumps(value, sort_keys=sort_keys) + "\n", status=status, mimetype=mimetype,
                    headers=dict(headers or {}))
