"""The offline auditor loads none of the server's frameworks (issue: an auditor checks a file
without Flask, SQLAlchemy, gunicorn or psycopg, and ``tech7-audit --help`` answers at once)."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_FRAMEWORKS = {"flask", "flask_smorest", "flask_limiter", "flask_cors", "marshmallow",
                     "sqlalchemy", "alembic", "gunicorn", "psycopg", "werkzeug"}


def _top_level_modules_after(statement: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded once ``statement`` has run."""
    probe = f"{statement}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               check=True, timeout=60)
    return set(json.loads(completed.stdout))


def test_importing_the_auditor_loads_no_server_framework():
    loaded = _top_level_modules_after("import tech7_audit.cli")
    assert {"tech7_audit", "c2pa"} <= loaded  # the probe did load the auditor
    # A distribution of its own (audit/): not even the registry's package comes with it.
    assert loaded & (SERVER_FRAMEWORKS | {"app"}) == set()


def test_the_server_does_load_them():
    # The same probe on the composition root: what the auditor test rules out is really there.
    loaded = _top_level_modules_after("import app.composition")
    assert {"flask", "sqlalchemy"} <= loaded
