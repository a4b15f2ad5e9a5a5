"""What a collection query filters on, derived once from a version's bytes when it is published.

A published version never changes, so neither does what is derived from it: each version gets
one ``version_search`` row (its kind, association, priority, statement type, withdrawn flag,
publication time and the words of its text) and one ``version_labels`` row per tag and per
addressed recommendation, inserted in the transaction that publishes it. The one fact that does
change is whether it is still its document's latest version: the transaction that publishes the
next one clears ``latest`` on these derived rows (never on the version). Collection filters then
run in the database, on these rows and their indexes, and never read a version's body or
manifest until the page is known.

``q`` matches **words**. The text of a document is every string value in it, at any depth (title,
text, slug, tags, …; not its field names). It is cut into words — maximal runs of Unicode letters
and digits — after folding case (Unicode case folding, so ``ß`` is ``ss``) and accents (NFKD with
the combining marks dropped, so ``é`` is ``e``). A document matches when every word of ``q``,
folded the same way, is one of its words: whole words, in any order. A ``q`` with no word in it
matches nothing.

Both engines see the same words, computed here, so they answer alike: SQLite indexes them with
FTS5 (the ``ascii`` tokenizer, under which each stored word is exactly one token) and PostgreSQL
with a GIN index on ``words::tsvector`` (the ``tsvector`` input form takes each space-separated
word as a lexeme verbatim, with no parser or dictionary in between). Words are letters and digits
only, so neither form can be misread as query syntax.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

TAG, RECOMMENDATION = "tag", "recommendation"

_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """``text`` with case and accents folded: Unicode case folding, then NFKD without the
    combining marks."""
    folded = text.casefold()
    if folded.isascii():  # NFKD leaves ASCII unchanged, and it has no combining marks
        return folded
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The folded words of ``text``, in order (see the module docstring)."""
    return _WORD.findall(fold(text))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def document_words(document: Mapping[str, Any]) -> str:
    """The distinct words of a document's text, space-separated, in first-seen order."""
    return " ".join(dict.fromkeys(w for s in _strings(document) for w in words(s)))


def facets(document: Mapping[str, Any]) -> dict[str, Any]:
    """The filterable facts of a published document (its served JSON object)."""
    priority = document.get("priority")
    return {
        "association": document.get("association"),
        "priority": priority if isinstance(priority, int) and not isinstance(priority, bool)
        else None,
        "statement_type": document.get("statement_type"),
        "withdrawn": bool(document.get("withdrawn")),
        "words": document_words(document),
    }


def labels(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (label, value) pairs of a document: its tags and the recommendations it addresses."""
    found = {(TAG, tag) for tag in document.get("tags", ()) if isinstance(tag, str)}
    found |= {(RECOMMENDATION, address["slug"]) for address in document.get("addresses", ())
              if isinstance(address, Mapping) and isinstance(address.get("slug"), str)}
    return found
