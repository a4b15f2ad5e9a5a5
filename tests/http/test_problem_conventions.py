"""One set of conventions for problems (RFC 9457): one title per type, 415 and 413 that say what
is accepted, and details in the client's words rather than the implementation's."""

from __future__ import annotations

import io
import re

from app.core.errors import RegistryError
from app.http.problems import _HTTP_PROBLEMS

DRAFT = "/v1/recommendations/key-risks/draft"


def _all_errors(cls: type[RegistryError]) -> list[type[RegistryError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _all_errors(sub)
    return found


def test_every_problem_type_has_one_title(app):
    # The app is built, so every service module and its errors are imported.
    titles: dict[str, set[str]] = {}
    for error in _all_errors(RegistryError):
        titles.setdefault(error.problem, set()).add(error.title)
    for problem, title, _detail in _HTTP_PROBLEMS.values():
        titles.setdefault(problem, set()).add(title)
    assert {p: t for p, t in titles.items() if len(t) > 1} == {}


def test_framework_and_registry_problems_of_one_type_read_alike(client, operator):
    seen: dict[str, set[str]] = {}
    for response in (
        client.get("/nowhere"),                                   # routing's 404
        client.get("/v1/recommendations/no-such-slug"),           # the registry's NotFound
        client.get("/v1/recommendations?priority=x"),             # webargs' 422
        client.get("/v1/declaration?as_of=yesterday"),            # webargs' 422 on a date
        client.patch(DRAFT, json=[], headers={**operator, "If-Match": '"x"'}),  # 428 or 422
        client.post("/v1/tokens", json={"scopes": ["nosuch"]}, headers=operator),
    ):
        assert response.mimetype == "application/problem+json"
        body = response.get_json()
        seen.setdefault(body["type"], set()).add(body["title"])
    assert "/problems/not-found" in seen and "/problems/invalid-request" in seen
    assert {t: s for t, s in seen.items() if len(s) > 1} == {}
    assert seen["/problems/not-found"] == {"Not found"}
    assert seen["/problems/invalid-request"] == {"Invalid request"}


def test_415_names_the_accepted_media_types(client, operator):
    verify = client.post("/v1/verify", data=b"{}", content_type="application/json")
    assert verify.status_code == 415
    assert verify.json["accepted"] == ["multipart/form-data"]
    assert "multipart/form-data" in verify.json["detail"]
    assert verify.headers["Accept-Post"] == "multipart/form-data"

    body = client.get("/v1/recommendations/key-risks").json
    draft = client.put(DRAFT, json=body, headers={**operator, "If-None-Match": "*"})
    assert draft.status_code == 201
    json_patch = client.patch(DRAFT, data=b'[{"op": "remove", "path": "/tags"}]', headers={
        **operator, "Content-Type": "application/json-patch+json",
        "If-Match": draft.headers["ETag"]})
    assert json_patch.status_code == 415
    assert json_patch.headers["Accept-Patch"] == "application/merge-patch+json, application/json"
    assert "merge patch" in json_patch.json["detail"]
    assert "JSON Patch" in json_patch.json["detail"]
    assert client.get(DRAFT, headers=operator).json == draft.json, "a refused patch changes nothing"


def test_413_states_the_limit(app, client, operator):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = client.post("/v1/tokens", data=b" " * (limit + 1), headers=operator,
                           content_type="application/json")
    assert response.status_code == 413
    assert response.json["max_body_bytes"] == limit
    assert f"at most {limit} bytes" in response.json["detail"]


def test_unreadable_manifests_are_described_without_internal_names(client):
    content = client.get("/v1/recommendations/key-risks/versions/1").data
    response = client.post("/v1/verify", data={
        "file": (io.BytesIO(content), "version.json"),
        "manifest": (io.BytesIO(b"not a JUMBF box at all"), "version.c2pa")},
        content_type="multipart/form-data")
    assert response.status_code == 200
    report = response.json
    assert report["state"] == "Invalid"
    text = report["summary"] + " ".join(step["detail"] or "" for step in report["steps"])
    assert "c2pa could not read it" in text
    # No Python class names (``_C2paVerify``, ``ValueError``) and no c2pa error-kind prefixes.
    assert not re.search(r"_C2pa|C2paError|[A-Z][a-z]+Error\b|\bVerify: ", text), text
