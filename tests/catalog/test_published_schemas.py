"""The JSON Schemas in ``schemas/`` are the public contract: every served document must meet them.

Each file must be a valid draft 2020-12 schema. Every document that the seeded registry serves must
validate against its file, with format checking on: every collection item, every concept and
every listed version. The test also proves that the check can fail.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from app.core.config import SEED_FILE

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
COLLECTIONS = {"declaration": "declaration", "priority": "priorities",
               "recommendation": "recommendations", "association": "associations"}
KINDS = list(COLLECTIONS)
# Statements are not seeded: they are checked on statements published by the test below.
SCHEMA_KINDS = [*KINDS, "statement"]


def _schema(kind: str) -> dict:
    return json.loads((SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8"))


def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(_schema(kind), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _seeded_count(kind: str) -> int:
    seed = json.loads(Path(SEED_FILE).read_text(encoding="utf-8"))
    return 1 if kind == "declaration" else len(seed[COLLECTIONS[kind]])


def _get(client, url: str, **query) -> dict:
    response = client.get(url, query_string=query)
    assert response.status_code == 200, (url, response.get_data(as_text=True))
    assert response.mimetype == "application/json", url
    return response.json


def _served_documents(client, kind: str) -> list[tuple[str, dict]]:
    """(where, document) for every document of ``kind`` the registry serves."""
    collection = COLLECTIONS[kind]
    documents: list[tuple[str, dict]] = []
    if kind == "declaration":
        concepts = ["/v1/declaration"]
    else:
        page = _get(client, f"/v1/{collection}", per_page=100, include_withdrawn="true")
        assert len(page["items"]) == page["total"], "everything fits on one page of 100"
        # A collection item is the version's document plus its href, which its bytes lack.
        for i, item in enumerate(page["items"]):
            href = item.pop("href")
            assert href == f"/v1/{collection}/{item['slug']}/versions/{item['version']}"
            documents.append((f"/v1/{collection} items[{i}]", item))
        concepts = [f"/v1/{collection}/{item['slug']}" for item in page["items"]]
    for concept in concepts:
        documents.append((concept, _get(client, concept)))
        listed = [entry["href"] for entry in _get(client, concept + "/versions")["items"]]
        assert concept + "/versions/1" in listed
        documents += [(href, _get(client, href)) for href in listed]
    return documents


def _errors(validator: Draft202012Validator, documents: list[tuple[str, dict]]) -> list[str]:
    return [f"{where} {error.json_path}: {error.message}"
            for where, document in documents
            for error in validator.iter_errors(document)]


def _object_schemas(schema):
    """Every subschema that describes a JSON object."""
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield schema
        for value in schema.values():
            yield from _object_schemas(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _object_schemas(value)


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_schema_files_are_valid_2020_12_schemas(kind):
    schema = _schema(kind)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:tech7-registry:schema:{kind}:v1"
    # Validates against the 2020-12 metaschema, including that every pattern is a valid regex.
    Draft202012Validator.check_schema(schema)
    objects = list(_object_schemas(schema))
    assert schema in objects
    for subschema in objects:
        assert subschema.get("additionalProperties") is False, subschema
    assert set(schema["required"]) <= set(schema["properties"])
    assert {"kind", "slug", "version", "published_at", "withdrawn",
            "withdrawal_reason"} <= set(schema["required"])
    assert schema["properties"]["published_at"]["format"] == "date-time"
    assert schema["properties"]["kind"]["const"] == kind


@pytest.mark.parametrize("kind", KINDS)
def test_every_served_document_validates_against_its_schema(client, kind):
    documents = _served_documents(client, kind)
    concepts = {document["slug"] for _, document in documents}
    assert len(concepts) == _seeded_count(kind)
    assert _errors(_validator(kind), documents) == []


@pytest.mark.parametrize("kind", KINDS)
def test_schema_files_agree_with_the_openapi_document(client, kind):
    component = _get(client, "/openapi.json")["components"]["schemas"][f"{kind.title()}Version"]
    schema = _schema(kind)
    assert set(schema["properties"]) == set(component["properties"])
    assert set(schema["required"]) == set(component["required"])


def test_a_withdrawal_validates(client, operator):
    draft_url = "/v1/recommendations/key-risks/draft"
    body = _get(client, "/v1/recommendations/key-risks") | {
        "withdrawn": True, "withdrawal_reason": "Superseded by a later statement."}
    draft = client.put(draft_url, json=body, headers={**operator, "If-None-Match": "*"})
    assert draft.status_code == 201, draft.json
    published = client.post(draft_url + "/publish",
                            headers={**operator, "If-Match": draft.headers["ETag"]})
    assert published.status_code == 201, published.json
    assert published.json["withdrawn"] is True
    documents = [("publish response", published.json),
                 *_served_documents(client, "recommendation")]
    assert _errors(_validator("recommendation"), documents) == []


def _recommendation(client) -> dict:
    return _get(client, "/v1/recommendations/sme-participation/versions/1")


def _declaration(client) -> dict:
    return _get(client, "/v1/declaration/versions/1")


def _without(document: dict, field: str) -> dict:
    return {k: v for k, v in document.items() if k != field}


@pytest.mark.parametrize("kind, load, mutate, keyword", [
    ("recommendation", _recommendation, lambda d: d | {"colour": "red"}, "additionalProperties"),
    ("recommendation", _recommendation, lambda d: _without(d, "title"), "required"),
    ("recommendation", _recommendation, lambda d: _without(d, "published_at"), "required"),
    ("recommendation", _recommendation, lambda d: d | {"kind": "priority"}, "const"),
    ("recommendation", _recommendation, lambda d: d | {"slug": "Not A Slug"}, "pattern"),
    ("recommendation", _recommendation, lambda d: d | {"version": 0}, "minimum"),
    ("recommendation", _recommendation, lambda d: d | {"priority": 8}, "maximum"),
    ("recommendation", _recommendation, lambda d: d | {"text": []}, "minItems"),
    ("recommendation", _recommendation,
     lambda d: d | {"published_at": "2025-02-10T09:30:00+01:00"}, "pattern"),
    ("recommendation", _recommendation,
     lambda d: d | {"withdrawn": False, "withdrawal_reason": "why"}, "maxLength"),
    ("declaration", _declaration,
     lambda d: d | {"sections": [d["sections"][0] | {"note": "x"}]}, "additionalProperties"),
    ("declaration", _declaration, lambda d: _without(d, "call_to_action"), "required"),
])
def test_documents_that_break_the_contract_fail(client, kind, load, mutate, keyword):
    document = load(client)
    validator = _validator(kind)
    assert _errors(validator, [("served", document)]) == []
    broken = mutate(copy.deepcopy(document))
    errors = list(validator.iter_errors(broken))
    assert errors, "the broken document must not validate"
    assert keyword in {error.validator for error in errors}
    with pytest.raises(ValidationError):
        validator.validate(broken)


def test_published_statements_validate_against_their_schema(app, client):
    from app.auth.service import ASSOCIATION, create_token  # noqa: PLC0415

    token = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association="techuk")
    headers = {"Authorization": f"Bearer {token}"}
    base = "/v1/associations/techuk/statements"
    created = client.post(base, headers=headers, json={
        "slug": "progress-2025", "statement_type": "progress-report", "title": "Progress",
        "text": ["techUK reports progress."], "addresses": [{"slug": "key-risks", "version": 1}]})
    assert created.status_code == 201, created.json
    published = client.post(f"{base}/progress-2025/draft/publish",
                            headers={**headers, "If-Match": created.headers["ETag"]})
    assert published.status_code == 201, published.json
    documents = [("publish response", published.json),
                 ("concept", _get(client, f"{base}/progress-2025")),
                 ("collection", _get(client, "/v1/statements")["items"][0])]
    assert documents[2][1].pop("href") == f"{base}/progress-2025/versions/1"
    assert _errors(_validator("statement"), documents) == []
    broken = copy.deepcopy(published.json) | {"colour": "red"}
    assert _errors(_validator("statement"), [("broken", broken)])
