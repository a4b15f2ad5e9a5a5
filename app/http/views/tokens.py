"""Managing tokens through the API, and reading the activity trail."""

from __future__ import annotations

import marshmallow as ma
from flask import Response, current_app
from tech7_audit.times import isoformat

from app.access.policy import may_read_activity, onboards
from app.access.principal import ASSOCIATION, OPERATOR
from app.access.scopes import Permission
from app.auth.models import AccessToken, ActivityEvent
from app.auth.service import COMMAND_LINE, get_token, issue_token, list_tokens, revoke_token
from app.core.fields import SLUG, DateTime, Integer, Schema
from app.http import activity
from app.http.api import Blueprint
from app.http.idempotency import idempotent
from app.http.pagination import (
    CURSOR_LINK_HEADER,
    LINK_HEADER,
    PageQuerySchema,
    cursor_link_header,
    page_of,
    since_field,
)
from app.http.permissions import current_principal, record_activity_as, requires

blp = Blueprint("tokens", __name__, url_prefix="/v1",
                description="Access tokens and the activity trail of every write.")



class TokenRequestSchema(Schema):
    association = ma.fields.String(load_default=None, validate=SLUG, metadata={
        "description": "The association the token publishes for. Omitted, an operator's token "
                       "makes an operator token and an association's token one for itself."})
    scopes = ma.fields.List(ma.fields.String(validate=ma.validate.OneOf(
        [p.value for p in Permission])), required=True, validate=ma.validate.Length(min=1),
        metadata={"description": "Only scopes the calling token holds itself. An operator's "
                                 "token makes an association's token only to onboard it: it "
                                 "needs 'onboard-associations', and the association no live "
                                 "token."})
    label = ma.fields.String(load_default="", validate=ma.validate.Length(max=200))
    expires_at = DateTime(load_default=None, metadata={
        "description": "No later than the calling token's expiry (422 otherwise); omitted, the "
                       "calling token's expiry. An association's onboarding token is not bound "
                       "by the operator's."})


class MintedBySchema(Schema):
    token_id = Integer(allow_none=True, required=True, metadata={
        "description": "The token that made this one; null when made on the command line."})
    role = ma.fields.String(required=True,
                            validate=ma.validate.OneOf((OPERATOR, ASSOCIATION, COMMAND_LINE)))
    association = ma.fields.String(allow_none=True, required=True)
    label = ma.fields.String(required=True)


class TokenSchema(Schema):
    id = Integer(required=True)
    href = ma.fields.String(required=True, metadata={"description": "The token's URL."})
    role = ma.fields.String(required=True)
    association = ma.fields.String(allow_none=True, required=True)
    scopes = ma.fields.List(ma.fields.String(), required=True)
    label = ma.fields.String(required=True)
    created_at = ma.fields.String(required=True)
    expires_at = ma.fields.String(allow_none=True, required=True)
    revoked_at = ma.fields.String(allow_none=True, required=True)
    parent_id = Integer(allow_none=True, required=True, metadata={
        "description": "The token this one's life depends on: it expires no later, and "
                       "revoking it revokes this one. Null for a chain's first token."})
    onboarding = ma.fields.Boolean(required=True, metadata={
        "description": "An association's token made by an operator or on the command line, "
                       "not by the association: the first of its own chain."})
    minted_by = ma.fields.Nested(MintedBySchema, required=True, metadata={
        "description": "Who made this token; created_at says when."})


class NewTokenSchema(TokenSchema):
    token = ma.fields.String(required=True, metadata={"description": "Shown once; store it now."})


class TokenListSchema(Schema):
    items = ma.fields.List(ma.fields.Nested(TokenSchema), required=True)
    total = Integer(required=True, metadata={"description": "Items on all pages together."})


class ActivityQuerySchema(Schema):
    """The activity feed's cursor and page size."""

    since = since_field("id")
    limit = Integer(load_default=100, validate=ma.validate.Range(min=1, max=1000))


class ActivityEventSchema(Schema):
    id = Integer(required=True, metadata={"description": "Position in the trail; a cursor."})
    href = ma.fields.String(required=True, metadata={"description": "The event's URL."})
    at = ma.fields.String(required=True, metadata={"description": "RFC 3339 UTC."})
    principal = ma.fields.String(required=True)
    token_id = Integer(allow_none=True, required=True)
    method = ma.fields.String(required=True)
    path = ma.fields.String(required=True)
    permission = ma.fields.String(required=True)
    status = Integer(required=True)


class ActivityListSchema(Schema):
    items = ma.fields.List(ma.fields.Nested(ActivityEventSchema), required=True)
    next_cursor = Integer(required=True, metadata={
        "description": "The id of this page's last event: pass it as since to continue; equal "
                       "to since when there is nothing new."})


def _db():
    return current_app.extensions["tech7.db"]


def token_json(row: AccessToken) -> dict:
    """A token as ``GET /v1/tokens`` shows it (``row.minted_by`` loaded); never the token."""
    minter = row.minted_by
    return {"id": row.id, "href": f"/v1/tokens/{row.id}", "role": row.role, "association": row.association,
            "scopes": row.scopes.split(), "label": row.label,
            "created_at": isoformat(row.created_at),
            "expires_at": isoformat(row.expires_at) if row.expires_at else None,
            "revoked_at": isoformat(row.revoked_at) if row.revoked_at else None,
            "parent_id": row.parent_id,
            "onboarding": row.role == ASSOCIATION and row.parent_id is None,
            "minted_by": {"token_id": minter.id, "role": minter.role,
                          "association": minter.association, "label": minter.label}
            if minter else {"token_id": None, "role": COMMAND_LINE, "association": None,
                            "label": ""}}


@blp.route("/tokens", methods=["GET"])
@requires(Permission.MANAGE_TOKENS)
@blp.arguments(PageQuerySchema, location="query", as_kwargs=False)
@blp.response(200, TokenListSchema, headers=LINK_HEADER)
def tokens(args):
    """List tokens (an association sees its own; an operator sees all), oldest first"""
    rows, page = page_of(list_tokens(_db(), current_principal()), args)
    return {"items": [token_json(row) for row in rows], "total": page.total}, 200, {
        "Link": page.link_header(), "Cache-Control": "no-store"}


@blp.route("/tokens", methods=["POST"])
@requires(Permission.MANAGE_TOKENS)
@idempotent(secret_fields=("token",))
@blp.accepts("application/json")
@blp.arguments(TokenRequestSchema, as_kwargs=False)
@blp.response(201, NewTokenSchema)
def create_token(body):
    """Create a token; the response is the only time it is shown

    A retry under the same `Idempotency-Key` replays the answer without `token`: the registry
    keeps only the token's hash, so it cannot show it again. Revoke that token and make another.
    """
    principal = current_principal()
    if onboards(principal, body["association"]):
        record_activity_as(Permission.ONBOARD_ASSOCIATIONS)
    issued = issue_token(_db(), principal, association=body["association"],
                         scopes=body["scopes"], label=body["label"],
                         expires_at=body["expires_at"])
    return {**token_json(issued.row), "token": issued.token}, 201, {
        "Location": f"/v1/tokens/{issued.row.id}", "Cache-Control": "no-store"}


@blp.route("/tokens/<int(max=2147483647):token_id>", methods=["GET"])
@requires(Permission.MANAGE_TOKENS)
@blp.response(200, TokenSchema)
def token(token_id):
    """Read one token (an association reads its own; an operator reads any); never the token"""
    return token_json(get_token(_db(), current_principal(), token_id)), 200, {
        "Cache-Control": "no-store"}


@blp.route("/tokens/<int(max=2147483647):token_id>", methods=["DELETE"])
@requires(Permission.MANAGE_TOKENS)
@idempotent()
@blp.response(204)
def delete_token(token_id):
    """Revoke a token and every token it made (they stop working at once)"""
    revoke_token(_db(), current_principal(), token_id)
    return Response(status=204)


def _event_json(row: ActivityEvent) -> dict:
    return {"id": row.id, "href": f"/v1/activity/{row.id}", "at": isoformat(row.at),
            "principal": row.principal, "token_id": row.token_id, "method": row.method,
            "path": row.path, "permission": row.permission, "status": row.status}


@blp.route("/activity")
@requires(Permission.READ_ACTIVITY)
@blp.arguments(ActivityQuerySchema, location="query", as_kwargs=False)
@blp.response(200, ActivityListSchema, headers=CURSOR_LINK_HEADER)
def activity_feed(args):
    """Follow the activity trail of writes after a cursor, oldest first (operators only)"""
    may_read_activity(current_principal())
    rows = activity.events(_db(), since=args["since"], limit=args["limit"])
    next_cursor = rows[-1].id if rows else args["since"]
    return {"items": [_event_json(row) for row in rows], "next_cursor": next_cursor}, 200, {
        "Link": cursor_link_header(next_cursor, args["limit"]), "Cache-Control": "no-store"}


@blp.route("/activity/<int(max=2147483647):event_id>")
@requires(Permission.READ_ACTIVITY)
@blp.response(200, ActivityEventSchema)
def activity_event(event_id):
    """Read one event of the activity trail (operators only)"""
    may_read_activity(current_principal())
    return _event_json(activity.event(_db(), event_id)), 200, {"Cache-Control": "no-store"}
