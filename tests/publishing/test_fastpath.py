"""The WSGI fast path answers exactly as Flask does for cached immutable versions."""

from __future__ import annotations

import pytest

URL = "/v1/recommendations/sme-participation/versions/1"


def _observed(response):
    # X-Request-ID is new on every request (tests/ops/test_logging.py checks both paths echo it).
    headers = sorted((k, v) for k, v in response.headers.items()
                     if k not in ("Date", "X-Request-ID"))
    return response.status_code, headers, response.get_data()


@pytest.mark.parametrize("url", [URL, "/v1/declaration/versions/1", "/v1/priorities/3/versions/1"])
def test_fast_path_matches_flask(app, url):
    publishing = app.extensions["tech7.publishing"]
    client = app.test_client()
    first = client.get(url)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    for method, headers in [("GET", {"If-Modified-Since": modified}),
                            ("GET", {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}),
                            ("GET", {"If-Modified-Since": "not a date"}),
                            ("GET", {"If-None-Match": '"x"', "If-Modified-Since": modified}),
                            ("HEAD", {"If-Modified-Since": modified}),
                            ("GET", {}), ("HEAD", {}), ("GET", {"If-None-Match": etag}),
                            ("GET", {"If-None-Match": "W/" + etag}),
                            ("GET", {"If-None-Match": f'"x", {etag}'}),
                            ("GET", {"If-None-Match": "*"}), ("GET", {"If-None-Match": '"x"'})]:
        publishing._versions.clear()  # force the request through Flask
        slow = _observed(client.open(url, method=method, headers=headers))
        assert publishing._versions, "Flask cached the version"
        fast = _observed(client.open(url, method=method, headers=headers))
        assert fast == slow, (method, headers)


def test_fast_path_is_taken_for_cached_versions(app, monkeypatch):
    client = app.test_client()
    client.get(URL)
    calls = []
    monkeypatch.setattr(app, "full_dispatch_request", lambda: calls.append(1))
    assert client.get(URL).status_code == 200
    assert calls == [], "a cached immutable version is served without Flask"


def test_other_requests_fall_through(client):
    client.get(URL)
    assert client.get(URL + "?x=1").status_code == 200
    assert client.get("/v1/recommendations/sme-participation/versions/99").status_code == 404
    assert client.post(URL).status_code == 405
    preflight = client.options(URL, headers={"Origin": "https://a.example",
                                             "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200
