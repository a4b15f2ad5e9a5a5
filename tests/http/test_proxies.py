"""Behind a reverse proxy: X-Forwarded-* fields are honoured only from as many proxies as trusted."""

from __future__ import annotations

import pytest

DECLARATION = "/v1/declaration"
PROXY = "10.0.0.5"  # the proxy's own address, as the service sees it
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.org"}


@pytest.fixture
def build(make_app, databases, tmp_path):
    built = []

    def make(**settings):
        application = make_app(databases.clone_template(), tmp_path, **settings)
        built.append(application)
        return application.test_client()

    yield make
    for application in built:
        application.extensions["tech7.db"].engine.dispose()


def _get(client, url, client_address=None, **headers):
    if client_address:
        headers["X-Forwarded-For"] = client_address
    return client.get(url, headers=headers, environ_base={"REMOTE_ADDR": PROXY})


def test_with_one_trusted_proxy_the_docs_name_the_forwarded_host_and_scheme(build):
    client = build(TRUSTED_PROXIES=1)
    page = _get(client, "/docs/", **FORWARDED).get_data(as_text=True)
    assert "https://registry.example.org/docs/oauth2-redirect.html" in page
    assert "localhost" not in page


def test_without_trusted_proxies_the_forwarded_fields_are_ignored(build):
    client = build()  # TRUSTED_PROXIES defaults to 0
    page = _get(client, "/docs/", **FORWARDED).get_data(as_text=True)
    assert "http://localhost/docs/oauth2-redirect.html" in page
    assert "registry.example.org" not in page


def test_forwarded_clients_get_buckets_of_their_own(build):
    client = build(TRUSTED_PROXIES=1, RATELIMIT_ANONYMOUS="2 per minute")
    assert [_get(client, DECLARATION, "192.0.2.1").status_code for _ in range(3)] == \
        [200, 200, 429]
    # Another client behind the same proxy has its own budget.
    assert _get(client, DECLARATION, "192.0.2.2").headers["RateLimit-Remaining"] == "1"
    # Only the last hop counts: a client cannot name another address in front of it.
    spoofed = _get(client, DECLARATION, "198.51.100.7, 192.0.2.1")
    assert spoofed.status_code == 429


def test_without_trusted_proxies_every_forwarded_client_shares_the_proxys_bucket(build):
    client = build(RATELIMIT_ANONYMOUS="2 per minute")
    assert [_get(client, DECLARATION, f"192.0.2.{n}").status_code for n in (1, 2, 3)] == \
        [200, 200, 429]
