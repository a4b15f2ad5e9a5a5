"""The kinds of documents the registry publishes, and how each maps to URLs and content.

A kind names its collection segment (``/v1/<collection>``), the marshmallow schema of the fields an
editor may change, and the identity fields the server derives from the URL. Domain packages
(``catalog``, ``statements``) define their kinds; the composition root gathers them into one
:class:`DocumentKinds` (:func:`app.composition.create_app`), and publishing, its routes and the
services above it treat them all alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import marshmallow as ma

# Fields that exist on a served version or draft but that only the server sets. A client may send
# a body exactly as it was served; these are dropped before the content is validated.
SERVER_MANAGED_FIELDS = frozenset({"kind", "slug", "version", "published_at", "based_on_version",
                                   "updated_at", "number", "association"})


@dataclass(frozen=True, eq=False)
class DocumentKind:
    """How one kind of document is addressed, validated and signed."""

    name: str
    collection: str
    content_schema: type[ma.Schema]
    description: str
    singleton_slug: str | None = None
    slug_pattern: str = r"^[a-z0-9]+(-[a-z0-9]+)*$"
    creatable: bool = False
    identity: Callable[[str], Mapping[str, Any]] = field(default=lambda slug: {})
    identity_fields: Mapping[str, ma.fields.Field] = field(default_factory=dict)
    #: Documents of this kind live under an association (``/v1/associations/{a}/<collection>``);
    #: only that association may edit them, and they are signed with its own certificate.
    owned_by_association: bool = False
    #: Checks that need the database (references to other documents); raises InvalidRequest.
    check_references: Callable[[Any, Mapping[str, Any]], None] | None = None
    #: The schema of a draft body (:meth:`input_schema`), made with the kind.
    _input_schema: type[ma.Schema] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_input_schema", _ignoring_server_fields(self))

    @staticmethod
    def owned_slug(association: str, slug: str) -> str:
        """The stored slug of an association-owned document: unique across associations."""
        return f"{association}/{slug}"

    def concept_path(self, slug: str) -> str:
        """The URL path of the document (its latest version)."""
        if self.singleton_slug is not None:
            return f"/v1/{self.collection}"
        if self.owned_by_association:
            association, own_slug = slug.split("/", 1)
            return f"/v1/associations/{association}/{self.collection}/{own_slug}"
        return f"/v1/{self.collection}/{slug}"

    def stored_slug(self, document: Mapping[str, Any]) -> str:
        """The stored slug of a served version or draft: its ``slug``, under its
        ``association`` for an association-owned kind."""
        if self.owned_by_association:
            return self.owned_slug(document["association"], document["slug"])
        return document["slug"]

    def version_path(self, slug: str, number: int) -> str:
        """The immutable URL path of one version."""
        return f"{self.concept_path(slug)}/versions/{number}"

    def served_body(self, slug: str, number: int, published_at: str,
                    content: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON object of a published version: identity, server fields, then the content."""
        return {"kind": self.name, "slug": slug.rsplit("/", 1)[-1], **self.identity(slug),
                "version": number, "published_at": published_at, **content}

    def input_schema(self) -> type[ma.Schema]:
        """The schema of a draft body: the content, plus server-managed fields that are ignored.

        Accepting (and dropping) the server-managed fields is what lets a client GET a version,
        edit it and PUT it back unchanged in shape.
        """
        return self._input_schema

    def load_content(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a draft body into content; raises ``marshmallow.ValidationError``."""
        return self.input_schema()().load(body)


def _ignoring_server_fields(kind: DocumentKind) -> type[ma.Schema]:
    ignored = {name: ma.fields.Raw(load_default=None, allow_none=True, metadata={
        "description": "Set by the server; accepted and ignored so served bodies round-trip."})
        for name in SERVER_MANAGED_FIELDS}

    def _drop_server_fields(self, data, **_kwargs):
        return {k: v for k, v in data.items() if k not in SERVER_MANAGED_FIELDS}

    return type(f"{kind.name.title()}DraftInput", (kind.content_schema,),
                {**ignored, "_drop_server_fields": ma.post_load(_drop_server_fields)})


class DocumentKinds(Mapping[str, DocumentKind]):
    """The kinds this registry publishes, by name; built once, by the composition root.

    ``members`` is the kind whose documents are the member associations: those that own the
    documents of association-owned kinds, and the only associations tokens are made for.
    """

    def __init__(self, kinds: Iterable[DocumentKind], *, members: DocumentKind):
        self.members = members
        self._by_name: dict[str, DocumentKind] = {}
        for kind in kinds:
            if kind.name in self._by_name:
                raise ValueError(f"two document kinds are named {kind.name!r}")
            self._by_name[kind.name] = kind
        self._by_collection = {kind.collection: kind for kind in self._by_name.values()}
        if len(self._by_collection) != len(self._by_name):
            raise ValueError("two document kinds share a collection")
        if self._by_name.get(members.name) is not members:
            raise ValueError(f"the members' kind {members.name!r} is not one of the kinds")

    def __getitem__(self, name: str) -> DocumentKind:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def by_collection(self, collection: str) -> DocumentKind | None:
        """The kind served under ``/v1/<collection>``, or None."""
        return self._by_collection.get(collection)
