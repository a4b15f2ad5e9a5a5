"""``tech7-registry`` is the project's own command: its version, and only its commands."""

from __future__ import annotations

import json
import os
import stat
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


def _run_from(folder: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    """``tech7-registry ARGS`` run in ``folder`` with ``home`` as the user's home and no
    ``TECH7_*`` setting, as a newcomer would."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TECH7_", "XDG_"))}
    env["HOME"] = str(home)
    command = Path(sys.executable).with_name("tech7-registry")
    return subprocess.run([str(command), *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def _tree(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def test_a_command_that_needs_a_registry_finds_none_and_writes_nothing(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    for args in (["tokens", "create", "--operator"], ["tokens", "list"], ["tokens", "revoke", "1"],
                 ["export", "--out", "x.json", "--format", "json"], ["backup", "x.backup"],
                 ["keys", "rotate", "registry"],
                 ["keys", "revoke", "registry", "--reason", "superseded"]):
        run = _run_from(elsewhere, home, *args)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        (line,) = run.stderr.splitlines()
        assert line.startswith("Error: no registry at ") and "tech7-registry serve" in line, line
        assert _tree(home) == [] and _tree(elsewhere) == [], args


def test_every_command_finds_the_same_registry_from_any_folder(tmp_path):
    home, first, second = tmp_path / "home", tmp_path / "first", tmp_path / "second"
    for folder in (home, first, second):
        folder.mkdir()
    made = _run_from(first, home, "migrate")
    assert made.returncode == 0, made.stderr
    data = home / ".local" / "share" / "tech7-registry"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "registry.db").stat().st_mode) == 0o600
    created = _run_from(second, home, "tokens", "create", "--operator")
    assert created.returncode == 0, created.stderr
    listed = _run_from(first, home, "tokens", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 1
    assert _tree(first) == [] and _tree(second) == []
