"""``Last-Modified`` and ``If-Modified-Since`` on versions and collections (RFC 9110 §8.8.2,
§13.1.3), and the precedence of ``If-None-Match`` over ``If-Modified-Since`` (§13.2.2)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.http import http_date, parse_date

from app.http import conditional
from app.http.conditional import client_copy_current, last_modified

VERSION = "/v1/recommendations/sme-participation/versions/1"
COLLECTIONS = ["/v1/recommendations", "/v1/recommendations?tag=sme", "/v1/statements",
               "/v1/associations/bitkom/statements", "/v1/priorities",
               "/v1/recommendations/sme-participation/versions", "/v1/changes?since=0"]


def _earlier(value: str, seconds: int = 1) -> str:
    return http_date(parse_date(value) - timedelta(seconds=seconds))


@pytest.fixture
def settled(monkeypatch):
    """Changes count as settled at once, so a test need not wait for the seed to age."""
    monkeypatch.setattr(conditional, "SETTLED_AFTER", timedelta(0))


def test_a_version_is_last_modified_when_published(app, client):
    publishing = app.extensions["tech7.publishing"]
    publishing._versions.clear()
    for _ in ("through Flask", "through the fast path"):
        response = client.get(VERSION)
        published_at = datetime.fromisoformat(response.json["published_at"])
        assert response.headers["Last-Modified"] == http_date(published_at)
        assert response.headers["Last-Modified"].endswith(" GMT")


@pytest.mark.parametrize("through_flask", [True, False])
def test_if_modified_since_on_a_version(app, client, through_flask):
    publishing = app.extensions["tech7.publishing"]
    served = client.get(VERSION)
    modified, etag = served.headers["Last-Modified"], served.headers["ETag"]

    def get(**headers):
        if through_flask:
            publishing._versions.clear()
        return client.get(VERSION, headers=headers)

    same = get(**{"If-Modified-Since": modified})
    assert same.status_code == 304 and same.get_data() == b""
    assert same.headers["ETag"] == etag
    assert get(**{"If-Modified-Since": http_date(datetime.now(UTC))}).status_code == 304
    assert get(**{"If-Modified-Since": _earlier(modified)}).status_code == 200
    # RFC 9110 §13.1.3: a field that is not one valid HTTP-date is ignored.
    for invalid in ("yesterday", f"{modified}, {modified}", ""):
        assert get(**{"If-Modified-Since": invalid}).status_code == 200, invalid
    # RFC 9110 §13.2.2: If-None-Match decides alone when present.
    assert get(**{"If-None-Match": '"other"', "If-Modified-Since": modified}).status_code == 200
    assert get(**{"If-None-Match": etag,
                  "If-Modified-Since": _earlier(modified)}).status_code == 304


def test_collections_are_last_modified_at_the_last_change(app, client, settled):
    log = app.extensions["tech7.publishing"].log
    expected = http_date(log.last_recorded_at())
    for url in COLLECTIONS:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Last-Modified"] == expected, url
        assert client.get(url, headers={"If-Modified-Since": expected}).status_code == 304, url
        assert client.get(url, headers={"If-Modified-Since": _earlier(expected)}
                          ).status_code == 200, url
        assert client.get(url, headers={"If-None-Match": '"other"',
                                        "If-Modified-Since": expected}).status_code == 200, url
    concept = client.get("/v1/recommendations/key-risks")
    assert concept.headers["Last-Modified"] == expected


def test_a_publication_modifies_collections_and_the_latest_version(app, client, operator,
                                                                   settled):
    before = {url: client.get(url).headers["Last-Modified"]
              for url in ["/v1/recommendations", "/v1/changes?since=0",
                          "/v1/recommendations/key-risks",
                          "/v1/recommendations/key-risks/versions"]}
    time.sleep(1.05)  # HTTP-dates have whole seconds: publish in a later one
    body = client.get("/v1/recommendations/key-risks").json
    body["tags"] = [*body["tags"], "revised"]
    draft = client.put("/v1/recommendations/key-risks/draft", json=body,
                       headers={**operator, "If-None-Match": "*"})
    published = client.post("/v1/recommendations/key-risks/draft/publish",
                            headers={**operator, "If-Match": draft.headers["ETag"]})
    assert published.status_code == 201, published.json
    assert published.headers["Last-Modified"] == http_date(
        datetime.fromisoformat(published.json["published_at"]))
    for url, modified in before.items():
        response = client.get(url, headers={"If-Modified-Since": modified})
        assert response.status_code == 200, url
        assert parse_date(response.headers["Last-Modified"]) > parse_date(modified), url
    # An immutable version is not modified by a later one.
    first = client.get("/v1/recommendations/key-risks/versions/1")
    assert client.get(first.request.path, headers={
        "If-Modified-Since": first.headers["Last-Modified"]}).status_code == 304


def test_a_change_too_recent_to_settle_has_no_last_modified(app, client, monkeypatch):
    monkeypatch.setattr(conditional, "SETTLED_AFTER", timedelta(days=36500))
    for url in COLLECTIONS + ["/v1/recommendations/key-risks"]:
        response = client.get(url)
        assert "Last-Modified" not in response.headers, url
        assert client.get(url, headers={"If-Modified-Since": http_date(
            datetime.now(UTC))}).status_code == 200, url
    assert "Last-Modified" in client.get(VERSION).headers, "an immutable version has one"


def test_last_modified_is_never_later_than_now_and_settles():
    now = datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
    assert last_modified(now + timedelta(minutes=5), now=now) == "Sun, 01 Mar 2026 12:00:00 GMT"
    assert last_modified(now - timedelta(seconds=1), changing=True, now=now) is None
    assert last_modified(now - conditional.SETTLED_AFTER, changing=True,
                         now=now) == "Sun, 01 Mar 2026 11:59:58 GMT"


def test_client_copy_current_follows_rfc_9110_13_2_2():
    etag, modified = '"abc"', "Sun, 01 Mar 2026 12:00:00 GMT"
    assert client_copy_current(None, modified, etag, modified)
    assert client_copy_current(None, "Sun, 01 Mar 2026 12:00:01 GMT", etag, modified)
    assert not client_copy_current(None, "Sun, 01 Mar 2026 11:59:59 GMT", etag, modified)
    assert not client_copy_current(None, modified, etag, None), "no Last-Modified, no 304"
    assert not client_copy_current('"x"', modified, etag, modified)
    assert client_copy_current("W/" + etag, "Sun, 01 Mar 2000 00:00:00 GMT", etag, modified)
    assert not client_copy_current(None, None, etag, modified)
    # The obsolete forms a recipient also accepts (RFC 9110 §5.6.7).
    assert client_copy_current(None, "Sunday, 01-Mar-26 12:00:00 GMT", etag, modified)
    assert client_copy_current(None, "Sun Mar  1 12:00:00 2026", etag, modified)
