"""JSON in and out: the one strict loader every request body goes through, and RFC 8785 bytes.

A published version is served as its RFC 8785 canonical bytes, so anything the registry accepts
must be JSON that RFC 8785 can canonicalise: I-JSON (RFC 7493). :func:`strict_loads` refuses, as
:class:`~app.core.errors.InvalidJSON`, what Python's ``json`` would otherwise take silently or fail on
later with a 500:

- bytes that are not UTF-8, and text that is not JSON;
- duplicate member names (RFC 7493 §2.3; ``json`` keeps the last one);
- lone surrogates such as ``"\\ud800"`` in any string or name (RFC 7493 §2.1: no UTF-8 encoder,
  rfc8785's included, can write them);
- ``NaN``, ``Infinity``, numbers beyond an IEEE 754 double and integers beyond its exact range,
  ±(2**53 - 1) (RFC 7493 §2.2; RFC 8785 §3.2.2.3 cannot write them either);
- nesting deeper than :data:`MAX_DEPTH` (no registry document nests deeper than a few levels,
  and deep nesting exhausts the recursion of every later step: parser, schema, canonicaliser).

The HTTP layer (:mod:`app.http.api`) parses every JSON body with it; own-key uploads parse their
exact bytes with it before checking that they are canonical.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import rfc8785

from app.core.errors import InvalidJSON

#: The deepest nesting of arrays and objects a body may have.
MAX_DEPTH = 64

_MAX_EXACT_INT = 2**53 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme) serialisation: the bytes everything derives from."""
    return rfc8785.dumps(value)


def strict_loads(data: bytes | str) -> Any:
    """Parse ``data`` as I-JSON (RFC 7493) nested at most :data:`MAX_DEPTH` deep, or raise
    :class:`~app.core.errors.InvalidJSON` saying why not."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        value = json.loads(text, object_pairs_hook=_unique_members,
                           parse_constant=_refuse_constant, parse_float=_finite_float,
                           parse_int=_exact_int)
    except RecursionError:
        raise InvalidJSON(f"The body nests deeper than {MAX_DEPTH} levels.",
                          reason="too-deep") from None
    except UnicodeDecodeError as error:
        raise InvalidJSON(f"The body is not UTF-8: {error.reason}.", reason="encoding") from None
    except json.JSONDecodeError as error:
        raise InvalidJSON(f"The body is not valid JSON: {error.msg} at line {error.lineno} "
                          f"column {error.colno}.", reason="syntax") from None
    _check_tree(value)
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for duplicate, _ in pairs:
            if duplicate in seen:
                break
            seen.add(duplicate)
        raise InvalidJSON(f"The member name {duplicate!r} appears twice in one object "
                          f"(RFC 7493 §2.3).", reason="duplicate-member")
    return members


def _refuse_constant(name: str) -> Any:
    raise InvalidJSON(f"{name} is not a JSON number (RFC 7493 §2.2).", reason="number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise InvalidJSON(f"The number {literal[:40]} is beyond an IEEE 754 double "
                          f"(RFC 7493 §2.2).", reason="number")
    return value


def _exact_int(literal: str) -> int:
    # Checked by length first: int() of thousands of digits is itself refused, with a ValueError.
    if len(literal.lstrip("-")) > 16 or abs(int(literal)) > _MAX_EXACT_INT:
        raise InvalidJSON(f"The integer {literal[:40]} is beyond what an IEEE 754 double holds "
                          f"exactly, ±(2**53 - 1) (RFC 7493 §2.2).", reason="number")
    return int(literal)


def _check_tree(value: Any) -> None:
    """Refuse nesting beyond :data:`MAX_DEPTH` and lone surrogates, walking without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise InvalidJSON("A string holds a lone surrogate, which no UTF-8 text can "
                                  "carry (RFC 7493 §2.1).", reason="surrogate")
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise InvalidJSON(f"The body nests deeper than {MAX_DEPTH} levels.",
                              reason="too-deep")
        if isinstance(item, dict):
            stack.extend((name, depth) for name in item)
            stack.extend((member, depth + 1) for member in item.values())
        else:
            stack.extend((member, depth + 1) for member in item)
