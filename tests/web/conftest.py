"""Browser tests: where a browser is required (``TECH7_REQUIRE_BROWSER=1``, as ``.ci/run`` sets),
a browser test that would skip fails instead, so that a missing Chromium cannot pass unseen."""

from __future__ import annotations

import os

import pytest

BROWSER_REQUIRED = os.environ.get("TECH7_REQUIRE_BROWSER") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if BROWSER_REQUIRED and report.skipped and "tests/web/" in item.nodeid.replace(os.sep, "/"):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} skipped although TECH7_REQUIRE_BROWSER=1: "
                           f"{report.longrepr}")
