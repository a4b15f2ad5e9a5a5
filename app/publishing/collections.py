"""What collection queries filter on, and the queries: every filter runs in the database.

A new version writes its derived search and label rows (:func:`index_version`, in the publish's
own transaction); :func:`collection_query` pages along their indexes, with ``q`` through the
engine's own text search (FTS5 on SQLite, ``tsvector`` on PostgreSQL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.orm import Session, aliased

from app.publishing.kinds import DocumentKind
from app.publishing.models import Version, VersionLabel, VersionSearch
from app.publishing.search import RECOMMENDATION, TAG, facets, labels, words


@dataclass(frozen=True)
class CollectionFilter:
    """What a collection query asks for; every part of it runs in the database.

    ``q`` matches words, with case and accents folded (:mod:`app.publishing.search`).
    """

    as_of: datetime | None = None
    include_withdrawn: bool = False
    priority: int | None = None
    tag: str | None = None
    association: str | None = None
    statement_type: str | None = None
    recommendation: str | None = None
    q: str | None = None


def index_version(session: Session, kind: DocumentKind, version: Version) -> None:
    """Write what collection queries filter on for a new version, in its own transaction: its
    search and label rows, latest now, and the previous version's no longer latest."""
    document = json.loads(version.body)
    derived = facets(document)
    if version.number > 1:  # a first version has no earlier rows to clear
        for table in (VersionSearch, VersionLabel):
            # Nothing in the session holds these rows: there is nothing to synchronise.
            session.execute(sa.update(table).where(table.document_id == version.document_id,
                                                   table.latest.is_(True)).values(latest=False),
                            execution_options={"synchronize_session": False})
    # Plain INSERTs: nothing reads these rows back as objects in this transaction, so they skip
    # the unit of work.
    session.execute(sa.insert(VersionSearch), {
        "version_id": version.id, "document_id": version.document_id, "number": version.number,
        "kind": kind.name, "latest": True, "published_at": version.published_at, **derived})
    found = sorted(labels(document))
    if found:
        session.execute(sa.insert(VersionLabel), [
            {"label": label, "value": value, "version_id": version.id,
             "document_id": version.document_id, "kind": kind.name, "latest": True,
             "withdrawn": derived["withdrawn"]} for label, value in found])


def collection_query(kind: DocumentKind, query: CollectionFilter, *, is_sqlite: bool
                      ) -> tuple[Any, Any, sa.Select] | None:
    """The SELECT of a collection query, with its version-id and document-id columns; ``None``
    when it can match nothing (a ``q`` without a word).

    It is driven by the narrowest index that answers it on its own: a label filter walks
    ``version_labels`` (label, value, kind, latest, withdrawn, document_id); otherwise
    ``version_search`` by kind, latest, withdrawn and the one column filtered on. The search row
    is joined only when another column is needed, so the usual listing counts and pages along
    one index without reading a row.
    """
    terms: list[str] = []
    if query.q is not None:
        terms = list(dict.fromkeys(words(query.q)))
        if not terms:
            return None
    wanted = [(TAG, query.tag), (RECOMMENDATION, query.recommendation)]
    wanted = [(label, value) for label, value in wanted if value is not None]
    needs_search = (query.as_of is not None or bool(terms) or any(
        value is not None for value in (query.priority, query.association,
                                        query.statement_type)))
    search = VersionSearch
    # The table the page is read from: the narrowest label's rows, or the search rows.
    base: Any
    if wanted and not terms:
        base = aliased(VersionLabel)
        label, value = wanted.pop(0)
        where = [base.label == label, base.value == value]
    else:
        base = search
        where = []
    select = sa.select(base.version_id)
    if base is not search and needs_search:
        select = select.join(search, search.version_id == base.version_id)
    if terms and is_sqlite:
        # The words are the narrowest filter there is: SQLite must walk the FTS5 matches and
        # look each search row up by its rowid. Left usable, the (kind, latest, ...) indexes
        # lure its planner into testing every listed row against the matches instead, ~100×
        # slower at 10^5 statements; ``kind || ''`` is the same test, without an index.
        where.append(base.kind.concat("") == kind.name)
    else:
        where.append(base.kind == kind.name)
    if query.as_of is None:
        where.append(base.latest.is_(True))
    else:
        # Latest at as_of: published by then, and no later version of it published by then.
        later = aliased(VersionSearch)
        where += [search.published_at <= query.as_of, ~sa.exists().where(
            later.document_id == search.document_id, later.number > search.number,
            later.published_at <= query.as_of)]
    if not query.include_withdrawn:
        where.append(base.withdrawn.is_(False))
    equal_to: tuple[tuple[Any, int | str | None], ...] = (
        (search.priority, query.priority), (search.association, query.association),
        (search.statement_type, query.statement_type))
    for column, expected in equal_to:
        if expected is not None:
            where.append(column == expected)
    for label, value in wanted:
        other = aliased(VersionLabel)
        where.append(sa.exists().where(other.label == label, other.value == value,
                                       other.version_id == base.version_id))
    if terms:
        where.append(_text_match(search.version_id, search.words, terms, is_sqlite=is_sqlite))
    return base.version_id, base.document_id, select.where(*where)


#: The SQLite FTS5 index of version_search.words (made by the migration, not a model).
_FTS = sa.table("version_search_fts", sa.column("rowid"))


def _text_match(version_id: Any, words_column: Any, terms: list[str],
                *, is_sqlite: bool) -> sa.ColumnElement[bool]:
    """Every one of ``terms`` (folded words: letters and digits only) is a word of the version,
    through the engine's own text index (:data:`_FTS` on SQLite)."""
    if is_sqlite:
        # FTS5: a quoted string is one token; listed tokens must all be present.
        matched = sa.select(_FTS.c.rowid).where(
            sa.text("version_search_fts MATCH :fts_terms").bindparams(
                fts_terms=" ".join(f'"{term}"' for term in terms)))
        return version_id.in_(matched)
    # The tsvector and tsquery input forms take each word verbatim as a lexeme: the same words.
    return sa.cast(words_column, TSVECTOR).op("@@")(sa.cast(" & ".join(terms), TSQUERY))
