"""Where a browser is required, a browser test that skips fails the run (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _browser_hook() -> str:
    """The suite's browser hook alone, as a conftest of its own (the suite's conftest needs the
    app)."""
    source = (Path(__file__).parents[1] / "conftest.py").read_text()
    start = source.index("BROWSER_REQUIRED = ")
    return "import os\n\nimport pytest\n\n" + source[start:]


_BROWSER_HOOK = _browser_hook()

SKIPPING_TEST = '''
import pytest

def test_needs_a_browser():
    pytest.skip("no browser here")
'''


@pytest.mark.parametrize(("required", "exit_code", "outcome"),
                         [("1", 1, "1 failed"), ("", 0, "1 skipped")])
def test_a_skipped_browser_test_fails_only_when_a_browser_is_required(tmp_path, required,
                                                                      exit_code, outcome):
    web = tmp_path / "tests" / "web"
    web.mkdir(parents=True)
    (tmp_path / "tests" / "conftest.py").write_text(_BROWSER_HOOK)
    (web / "test_skipping.py").write_text(SKIPPING_TEST)
    env = {**os.environ, "TECH7_REQUIRE_BROWSER": required}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                          "tests/web"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == exit_code, run.stdout + run.stderr
    assert outcome in run.stdout
