"""The SQLite file storage of the rate limit counters, which the workers of one host share."""

from __future__ import annotations

import stat
import threading
import time

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app.http.ratelimit_storage import SQLiteStorage

DECLARATION = "/v1/declaration"


@pytest.fixture
def storage_uri(tmp_path) -> str:
    return f"tech7-sqlite://{tmp_path / 'limits' / 'ratelimits.db'}"


def test_the_scheme_is_registered_and_the_file_is_owner_only(storage_uri, tmp_path):
    storage = storage_from_string(storage_uri)
    assert isinstance(storage, SQLiteStorage)
    assert not storage.path.exists(), "nothing is made before the first count"
    assert storage.incr("k", 60) == 1
    assert stat.S_IMODE(storage.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(storage.path.parent.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in storage.path.parent.iterdir()} == {0o600}


def test_a_uri_without_a_file_is_refused():
    with pytest.raises(ValueError, match="names no file"):
        storage_from_string("tech7-sqlite://")


def test_counters_count_expire_and_clear(storage_uri):
    storage = storage_from_string(storage_uri)
    before = time.time()
    assert [storage.incr("a", 2) for _ in range(3)] == [1, 2, 3]
    assert storage.incr("a", 2, amount=2) == 5
    assert storage.get("a") == 5 and storage.get("b") == 0
    # The window starts at the first hit and is not pushed back by later ones.
    assert before + 2 <= storage.get_expiry("a") <= time.time() + 2
    assert storage.get_expiry("b") == pytest.approx(time.time(), abs=1)
    time.sleep(2.1)
    assert storage.get("a") == 0, "an expired window counts nothing"
    assert storage.incr("a", 60) == 1, "and the next hit starts a new one"
    storage.incr("b", 60)
    storage.clear("a")
    assert (storage.get("a"), storage.get("b")) == (0, 1)
    assert storage.check()
    assert storage.reset() == 1
    assert storage.get("b") == 0


def test_two_processes_worth_of_storages_count_against_one_limit(storage_uri):
    # Each worker opens the file itself; threads of each count at once.
    limiters = [FixedWindowRateLimiter(storage_from_string(storage_uri)) for _ in range(2)]
    limit = parse("50 per minute")
    granted = []

    def hit(limiter):
        granted.extend(limiter.hit(limit, "ip:192.0.2.1") for _ in range(40))

    threads = [threading.Thread(target=hit, args=(limiters[n % 2],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert (granted.count(True), granted.count(False)) == (50, 110)
    assert limiters[0].get_window_stats(limit, "ip:192.0.2.1").remaining == 0


def test_apps_on_one_data_folder_share_the_limit(make_app, databases, tmp_path):
    # The embedded default: two workers of one serve, each with its own app.
    apps = [make_app(databases.clone_template(), tmp_path, RATELIMIT_ANONYMOUS="3 per minute")
            for _ in range(2)]
    try:
        assert apps[0].config["RATELIMIT_STORAGE_URI"] == \
            f"tech7-sqlite://{tmp_path.resolve() / 'ratelimits.db'}"
        clients = [application.test_client() for application in apps]
        statuses = [clients[n % 2].get(DECLARATION).status_code for n in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
    finally:
        for application in apps:
            application.extensions["tech7.db"].engine.dispose()
