"""``tech7-registry`` is the project's own command: its version, and only its commands."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from click.testing import CliRunner

from app.cli import registry

COMMANDS = {"backup", "export", "keys", "migrate", "restore", "seed", "serve", "tokens"}


def test_version_is_the_projects_own():
    command = Path(sys.executable).with_name("tech7-registry")
    printed = subprocess.run([str(command), "--version"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    assert printed == f"tech7-registry {version('tech7-registry')}\n"
    assert "Flask" not in printed


def test_help_lists_the_registrys_commands_and_nothing_of_flasks():
    result = CliRunner().invoke(registry, ["--help"], prog_name="tech7-registry")
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:\n", 1)[1].splitlines()
    assert {line.split()[0] for line in listed if line.strip()} == COMMANDS
    for flask_only in ("--app", "--env-file", "--debug", "limiter", "openapi", "routes", "shell"):
        assert flask_only not in result.output, flask_only
