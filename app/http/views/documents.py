"""The document routes, generated once per kind: concept, versions, diffs, drafts and publish.

For a kind with collection ``recommendations`` the routes are ``/v1/recommendations``,
``/v1/recommendations/{slug}``, ``…/versions``, ``…/versions/{n}``, ``…/versions/{n}/diff/{m}``,
``…/draft`` and ``…/draft/publish``; the singleton declaration drops the slug segment.
"""

from __future__ import annotations

from typing import Any, cast

import marshmallow as ma
from flask import Response, current_app, request
from tech7_audit.times import isoformat

from app.access.scopes import Permission
from app.core.etags import none_match
from app.http.api import LAST_MODIFIED, Blueprint
from app.http.bodies import json_response
from app.http.conditional import client_copy_current, last_modified, not_modified
from app.http.idempotency import idempotent
from app.http.pagination import (
    CURSOR_LINK_HEADER,
    LINK_HEADER,
    Page,
    PageQuerySchema,
    cursor_link_header,
    page_from,
)
from app.http.permissions import current_principal, requires
from app.http.schemas import (
    AsOfQuerySchema,
    ChangesQuerySchema,
    ChangesSchema,
    CollectionQuerySchema,
    JsonPatchOperationSchema,
    VersionListSchema,
    collection_schema,
    draft_schema,
    version_schema,
)
from app.http.views.log import RECEIPT_DOC, receipt_response
from app.publishing.collections import CollectionFilter
from app.publishing.kinds import DocumentKind
from app.publishing.service import DraftView, PublishedVersion, PublishingService

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
MERGE_PATCH = "application/merge-patch+json"
C2PA_MEDIA_TYPE = "application/c2pa"


def publishing() -> PublishingService:
    """The publishing service of this process."""
    return current_app.extensions["tech7.publishing"]


def version_headers(kind: DocumentKind, version: PublishedVersion, *,
                    concept: bool = False) -> dict[str, Any]:
    """The validators and links served with a version (also used by the WSGI fast path)."""
    location = kind.version_path(version.slug, version.number)
    return {"ETag": version.etag, "Content-Digest": version.content_digest,
            "Cache-Control": REVALIDATE if concept else IMMUTABLE,
            "Content-Location": location,
            # What the concept URL serves changes with the next version, which the registry's
            # last change bounds (a version signed with an association's own key may carry a
            # published_at earlier than when it arrived); a version itself never changes.
            **(changing_last_modified() if concept
               else {"Last-Modified": last_modified(version.published_at)}),
            # C2PA 2.2 §15.5.3.2: a sidecar manifest is advertised with a Link header.
            "Link": f'<{location}/manifest>; rel="c2pa-manifest", '
                    f'<{location}/receipt>; rel="receipt"'}


def version_response(version: PublishedVersion, kind: DocumentKind, *, status: int = 200,
                     concept: bool = False) -> Response:
    """Serve a version's exact canonical bytes with its validators.

    On its own URL a version is cacheable forever; on the concept URL it is the latest version
    for now, so caches must revalidate and ``Content-Location`` names the version (RFC 9110 §8.7).
    """
    headers = version_headers(kind, version, concept=concept)
    if status == 200 and client_copy_current(request.headers.get("If-None-Match"),
                                             request.headers.get("If-Modified-Since"),
                                             version.etag, headers.get("Last-Modified")):
        return not_modified(version.etag, headers)
    return Response(version.body, status=status, mimetype="application/json", headers=headers)


def changing_last_modified() -> dict[str, str]:
    """``Last-Modified`` of a representation that changes with publications (a collection, the
    latest version): the time of the registry's last logged change, once it has settled
    (:func:`app.http.conditional.last_modified`); no field before."""
    moment = publishing().log.last_recorded_at()
    value = moment and last_modified(moment, changing=True)
    return {"Last-Modified": value} if value else {}


def _draft_response(draft: DraftView, kind: DocumentKind, status: int = 200) -> Response:
    response = Response(draft.body, status=status, mimetype="application/json",
                        headers={"ETag": draft.etag, "Cache-Control": "private, no-cache"})
    if status == 201:
        response.headers["Location"] = kind.concept_path(draft.slug) + "/draft"
    return response


#: The query parameters that become a :class:`CollectionFilter` (those a kind's schema lacks are
#: ``None``, i.e. not filtered on).
_FILTERS = tuple(CollectionFilter.__dataclass_fields__)


def document_blueprint(kind: DocumentKind, *, query_schema=None) -> Blueprint:
    """Build the blueprint that serves one kind of document."""
    blp = Blueprint(kind.collection, __name__, url_prefix="/v1", description=kind.description)
    singleton = kind.singleton_slug is not None
    owned = kind.owned_by_association
    # Association-owned documents live under their association's URL.
    home = f"/associations/<string:association>/{kind.collection}" if owned \
        else f"/{kind.collection}"
    base = home if singleton else home + "/<string:slug>"
    served = version_schema(kind)
    query_schema = query_schema or CollectionQuerySchema

    def slug_of(kwargs: dict[str, Any]) -> str:
        if owned:
            return kind.owned_slug(kwargs["association"], kwargs["slug"])
        # A singleton's route has no slug, and a singleton kind always names its one slug.
        return cast(str, kwargs.get("slug", kind.singleton_slug))

    def listing(args: dict) -> Response:
        requested = page_from(args)
        filters: dict[str, Any] = {name: args.get(name) for name in _FILTERS}
        query = CollectionFilter(**filters)
        page_items, total = publishing().collection_page(
            kind, query, offset=requested.offset, limit=requested.size)
        page = Page(number=requested.number, size=requested.size, total=total)
        items = [{**item, "href": kind.version_path(kind.stored_slug(item), item["version"])}
                 for item in page_items]
        return json_response({"items": items, "total": page.total},
                             headers={"Link": page.link_header(), "Cache-Control": REVALIDATE,
                                      **changing_last_modified()})

    if not singleton:
        @blp.route(f"/{kind.collection}", endpoint="collection")
        @blp.arguments(query_schema, location="query", as_kwargs=False)
        @blp.response(200, collection_schema(kind), headers={**LINK_HEADER, "Last-Modified": LAST_MODIFIED})
        def collection(args):
            """List the latest version of each document"""
            return listing(args)

    if owned:
        @blp.route(home, endpoint="association_collection")
        @blp.arguments(query_schema, location="query", as_kwargs=False)
        @blp.response(200, collection_schema(kind), headers={**LINK_HEADER, "Last-Modified": LAST_MODIFIED})
        def association_collection(args, association):
            """List one association's documents (latest versions)"""
            publishing().require_association(association)
            return listing({**args, "association": association})

    @blp.route(base, endpoint="concept")
    @blp.arguments(AsOfQuerySchema, location="query", as_kwargs=False)
    @blp.response(200, served, headers={"Content-Location": {
        "description": "The immutable URL of the version served.", "schema": {"type": "string"}},
        "Last-Modified": LAST_MODIFIED})
    def concept(args, **path):
        """Read the latest version (or the one current at as_of)"""
        version = publishing().latest(kind, slug_of(path), args["as_of"])
        return version_response(version, kind, concept=True)

    @blp.route(base + "/versions", endpoint="versions")
    @blp.arguments(PageQuerySchema, location="query", as_kwargs=False)
    @blp.response(200, VersionListSchema, headers={**LINK_HEADER, "Last-Modified": LAST_MODIFIED})
    def versions(args, **path):
        """List the published versions, oldest first"""
        slug = slug_of(path)
        requested = page_from(args)
        summaries, total = publishing().versions(kind, slug, offset=requested.offset,
                                                 limit=requested.size)
        page = Page(number=requested.number, size=requested.size, total=total)
        items = [{"version": v.number, "published_at": isoformat(v.published_at),
                  "withdrawn": v.withdrawn, "sha256": v.sha256,
                  "href": kind.version_path(slug, v.number)} for v in summaries]
        return {"items": items, "total": total}, 200, {"Link": page.link_header(),
                                                       **changing_last_modified()}

    @blp.route(base + "/versions/<int(max=999999999):number>", endpoint="version")
    @blp.response(200, served, headers={"Last-Modified": LAST_MODIFIED})
    def version(number, **path):
        """Read one immutable version, as its exact RFC 8785 bytes"""
        return version_response(publishing().version(kind, slug_of(path), number), kind)

    @blp.route(base + "/versions/<int(max=999999999):number>/diff/<int(max=999999999):other>",
               endpoint="diff")
    @blp.response(200, JsonPatchOperationSchema(many=True),
                  content_type="application/json-patch+json")
    def diff(number, other, **path):
        """RFC 6902 JSON Patch from this version to another"""
        patch = publishing().diff(kind, slug_of(path), number, other)
        return json_response(patch, mimetype="application/json-patch+json",
                             headers={"Cache-Control": IMMUTABLE})

    @blp.route(base + "/versions/<int(max=999999999):number>/manifest", endpoint="manifest")
    @blp.response(200, content_type=C2PA_MEDIA_TYPE, description="The C2PA manifest store.")
    def manifest(number, **path):
        """The version's C2PA sidecar manifest (hard-bound to its canonical bytes)"""
        version = publishing().version(kind, slug_of(path), number)
        headers = {"ETag": version.manifest_etag, "Cache-Control": IMMUTABLE}
        if none_match(request.headers.get("If-None-Match"), version.manifest_etag):
            return not_modified(version.manifest_etag, headers)
        return Response(version.manifest, mimetype=C2PA_MEDIA_TYPE, headers=headers)

    @blp.route(base + "/versions/<int(max=999999999):number>/receipt", endpoint="receipt")
    @blp.response(200, **RECEIPT_DOC)
    def receipt(number, **path):
        """A self-contained log receipt: the leaf, its inclusion proof and a signed checkpoint

        Where the log has witnesses, the checkpoint is the newest one holding the entry whose
        cosignatures make the policy's quorum, and `Tech7-Quorate: ?1` says so; until there is
        one, it is the newest checkpoint with the cosignatures it has, and `Tech7-Quorate: ?0`.
        """
        return receipt_response(publishing().version(kind, slug_of(path), number).log_index)

    drafts = draft_schema(kind)
    draft_input = kind.input_schema()

    @blp.route(base + "/draft", endpoint="draft", methods=["GET"])
    @requires(Permission.READ_DRAFTS)
    @blp.response(200, drafts)
    def get_draft(**path):
        """Read the draft"""
        view = publishing().draft(kind, slug_of(path), principal=current_principal())
        return _draft_response(view, kind)

    @blp.route(base + "/draft", endpoint="put_draft", methods=["PUT"])
    @requires(Permission.PUBLISH)
    @idempotent()
    @blp.accepts("application/json")
    @blp.arguments(draft_input, as_kwargs=False)
    @blp.response(200, drafts)
    @blp.alt_response(201, schema=drafts, description="The draft was created.")
    def put_draft(content, **path):
        """Create (If-None-Match: *) or replace (If-Match) the draft"""
        view, created = publishing().put_draft(
            kind, slug_of(path), content, if_match=request.headers.get("If-Match"),
            if_none_match=request.headers.get("If-None-Match"), principal=current_principal())
        return _draft_response(view, kind, 201 if created else 200)

    @blp.route(base + "/draft", endpoint="patch_draft", methods=["PATCH"])
    @requires(Permission.PUBLISH)
    @idempotent()
    @blp.accepts(MERGE_PATCH, "application/json",
                 note="Either is read as a JSON merge patch (RFC 7396); JSON Patch "
                      "(application/json-patch+json) is not accepted on drafts.")
    @blp.response(200, drafts)
    def patch_draft(**path):
        """Apply an RFC 7396 merge patch to the draft (If-Match required)"""
        patch = request.get_json(force=True)
        view = publishing().patch_draft(
            kind, slug_of(path), patch, if_match=request.headers.get("If-Match"),
            principal=current_principal())
        return _draft_response(view, kind)

    @blp.route(base + "/draft", endpoint="delete_draft", methods=["DELETE"])
    @requires(Permission.PUBLISH)
    @idempotent()
    @blp.response(204)
    def delete_draft(**path):
        """Discard the draft (If-Match required)"""
        publishing().delete_draft(kind, slug_of(path), if_match=request.headers.get("If-Match"),
                                  principal=current_principal())
        return Response(status=204)

    @blp.route(base + "/draft/publish", endpoint="publish", methods=["POST"])
    @requires(Permission.PUBLISH)
    @idempotent()
    @blp.response(201, served, headers={"Location": {
        "description": "The new version's immutable URL.", "schema": {"type": "string"}}})
    def publish(**path):
        """Publish the draft as the next version (If-Match; Idempotency-Key honoured)"""
        version = publishing().publish(kind, slug_of(path),
                                       if_match=request.headers.get("If-Match"),
                                       principal=current_principal())
        response = version_response(version, kind, status=201)
        response.headers["Location"] = kind.version_path(version.slug, version.number)
        return response

    if kind.creatable:
        @blp.route(home, endpoint="create", methods=["POST"])
        @requires(Permission.PUBLISH)
        @idempotent()
        @blp.accepts("application/json")
        @blp.arguments(_creation_schema(kind), as_kwargs=False)
        @blp.response(201, drafts, headers={"Location": {
            "description": "The new document's draft.", "schema": {"type": "string"}}})
        def create(body, **path):
            """Create a new document as a draft; publish it to make version 1"""
            association = path.get("association")
            slug = body.pop("new_slug")
            if association is not None:  # the owned kinds' routes name it
                slug = kind.owned_slug(association, slug)
            view = publishing().create(kind, slug, body, principal=current_principal(),
                                       association=association)
            return _draft_response(view, kind, 201)

    return blp


def _creation_schema(kind: DocumentKind) -> type[ma.Schema]:
    return kind.content_schema.from_dict(
        {"new_slug": ma.fields.String(required=True, data_key="slug", validate=[
            ma.validate.Regexp(kind.slug_pattern, error="Use lowercase kebab-case."),
            # An owned slug is stored as "<association>/<slug>" in a 128-character column.
            ma.validate.Length(max=63 if kind.owned_by_association else 128)])},
        name=f"New{kind.name.title()}")


changes_blp = Blueprint("changes", __name__, url_prefix="/v1",
                        description="Every publication, in publication order.")


@changes_blp.route("/changes")
@changes_blp.arguments(ChangesQuerySchema, location="query", as_kwargs=False)
@changes_blp.response(200, ChangesSchema, headers={**CURSOR_LINK_HEADER, "Last-Modified": LAST_MODIFIED})
def changes(args):
    """Follow publications after a cursor, oldest first"""
    entries = publishing().changes(args["since"], args["limit"])
    kinds = publishing().kinds
    items = [{"seq": c.seq, "kind": c.kind, "slug": c.slug.rsplit("/", 1)[-1],
              "association": c.association, "version": c.version,
              "published_at": isoformat(c.published_at), "withdrawn": c.withdrawn,
              "document": kinds[c.kind].concept_path(c.slug),
              "href": kinds[c.kind].version_path(c.slug, c.version)} for c in entries]
    next_cursor = entries[-1].seq if entries else args["since"]
    return json_response({"items": items, "next_cursor": next_cursor},
                         headers={"Cache-Control": REVALIDATE,
                                  "Link": cursor_link_header(next_cursor, args["limit"]),
                                  **changing_last_modified()})
