"""The README's usage examples, run in order against a real ``tech7-registry serve``.

The marker: an HTML comment line ``<!-- runnable -->`` right before a ```` ```sh ```` (or
```` ```bash ````) fence marks that block to run; no other block ever runs, so install, test,
``serve`` and deployment commands stay unmarked. The marked blocks run in README order in one
``bash`` with ``set -euo pipefail``, so a variable one block sets (``TOKEN``) serves the next; in
a scratch folder that links ``examples/``, with ``HOME`` there too, the registry's data folder
in ``TECH7_DATA_DIR`` for the CLI, and ``localhost:8000`` standing for the test server. Every
``curl`` is recorded: its status must be the three-digit number its command's comment starts
with (``# 201, a draft``), or without one, below 400. Any other command must exit 0. A block
that needs something a fresh registry lacks makes it first, as a reader would.

On PostgreSQL (``TEST_DATABASE_URL``) the server and the CLI share a fresh database there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.processes import Server, create_postgres_database, drop_postgres_database, postgres_server_url

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- runnable -->"
_FENCE = re.compile(r"```(?:sh|bash)\s*")
#: ``curl`` as a command word (not inside ``tech7-audit`` or a file name).
_CURL = re.compile(r"(?<![\w./-])curl(?=\s)")
_EXPECTED = re.compile(r"#\s*([1-5][0-9]{2})\b")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
#: Runs before the blocks: records every curl's final status (the last status line of its
#: header dump: a 100 Continue comes first) and the command it ran.
_PRELUDE = r"""
set -euo pipefail
curl() {
  local headers status rc=0
  headers=$(mktemp "$T7_CURL_DIR/headers.XXXXXX")
  command curl -D "$headers" "$@" || rc=$?
  status=$(sed -n 's/^HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$headers" | tail -n 1)
  local ran="$*"
  printf '%s %s\n' "${status:-none}" "${ran//$'\n'/ }" >> "$T7_CURL_DIR/statuses"
  return $rc
}
"""




def runnable_blocks(readme: str) -> list[tuple[int, str]]:
    """(line number of its first command, text) of every marked block, in order."""
    lines = readme.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        if number + 1 >= len(lines) or not _FENCE.fullmatch(lines[number + 1]):
            raise AssertionError(f"README.md line {number + 1}: {MARKER} must stand right "
                                 "before a ```sh or ```bash fence")
        end = next(index for index in range(number + 2, len(lines))
                   if lines[index].startswith("```"))
        blocks.append((number + 3, "\n".join(lines[number + 2:end])))
    return blocks


def commands(block: str) -> list[tuple[str, str]]:
    """(code, comment) of each command of ``block``: lines ending in ``\\`` and newlines inside
    quotes are joined, heredoc bodies are skipped, and the comment is what follows an unquoted
    ``#`` that starts a word."""
    found: list[tuple[str, str]] = []
    code, comment, quote, heredoc = "", "", None, None
    for line in block.splitlines():
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        for position, char in enumerate(line):
            if quote is not None:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "#" and (not code or code[-1].isspace()):
                comment = line[position:]
                break
            code += char
        if quote is not None:
            code += "\n"
            continue
        if code.endswith("\\"):
            code = code[:-1]
            continue
        here = _HEREDOC.search(code)
        heredoc = here[2] if here else None
        if code.strip():
            found.append((code, comment))
        code, comment = "", ""
    return found


def expected_statuses(block: str) -> list[int | None]:
    """For each curl ``block`` runs, in order: the status its comment names, or None."""
    expected: list[int | None] = []
    for code, comment in commands(block):
        curls = len(_CURL.findall(code))
        named = _EXPECTED.match(comment)
        # A comment names the status of a command's only curl.
        expected += [int(named[1]) if named and curls == 1 else None] * curls
    return expected


def test_the_parser_reads_commands_comments_and_statuses():
    block = ("A=x  # not a status\n"
             "ETAG=$(curl -s -X POST $A -d '{\"a\": \"# no comment\",\n"
             "   \"b\": 1}' \\\n"
             "     -H 'If-Match: *')    # 201, a draft\n"
             "cat > f.json <<'EOF'\n"
             "curl inside a heredoc\n"
             "EOF\n"
             "curl -s \"$A?x=1\" > out.json && curl -s $A/manifest  # 200\n"
             "tech7-audit fetch http://x/curl/1\n")
    assert [comment for _, comment in commands(block)] == [
        "# not a status", "# 201, a draft", "", "# 200", ""]
    assert expected_statuses(block) == [201, None, None]
    with pytest.raises(AssertionError, match="must stand right before"):
        runnable_blocks(f"{MARKER}\n\n```sh\ntrue\n```\n")
    assert runnable_blocks(f"x\n{MARKER}\n```sh\ntrue\n```\n```sh\nfalse\n```\n") == [
        (4, "true")]


@pytest.fixture
def fresh_registry(tmp_path):
    """A real ``tech7-registry serve`` of a fresh install: a new data folder (keys made at
    start), default settings; on PostgreSQL, a new database."""
    data = tmp_path / "data"
    env = {name: value for name, value in os.environ.items() if not name.startswith("TECH7_")}
    env["TECH7_DATA_DIR"] = str(data)
    database = None
    if os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"):
        database = create_postgres_database(postgres_server_url(),
                                                    f"tech7_readme_{uuid.uuid4().hex[:8]}")
        env["TECH7_DATABASE_URL"] = database
    # One worker: each runs the start-up signing self-check, and one serves these requests.
    server = Server(database or "", data / "keys", tmp_path, workers=1)
    server.env = dict(env)
    try:
        server.start()
        yield server, env
    finally:
        server.stop()
        if database:
            drop_postgres_database(database)


def test_readme_usage_examples_run_on_a_fresh_install(fresh_registry, tmp_path):
    server, env = fresh_registry
    blocks = runnable_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 8, "the usage examples are marked"
    scratch, home, recorded = tmp_path / "scratch", tmp_path / "home", tmp_path / "curl"
    for folder in (scratch, home, recorded):
        folder.mkdir()
    (scratch / "examples").symlink_to(ROOT / "examples")
    address = server.base.removeprefix("http://")
    script = [_PRELUDE]
    for line, block in blocks:
        script.append(f"echo '== {line}' >> \"$T7_CURL_DIR/statuses\"\n"
                      f"printf '\\n== README.md line {line}\\n' >&2\n"
                      + block.replace("localhost:8000", address) + "\n")
    # Bounded: about 30 s of work on an idle machine, mostly the CLI's start-ups and signing.
    run = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=scratch, capture_output=True, text=True,
        timeout=300, env={**env, "HOME": str(home), "T7_CURL_DIR": str(recorded),
                          "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"})
    output = f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"

    statuses: dict[int, list[tuple[str, str]]] = {}
    current = None
    for entry in (recorded / "statuses").read_text().splitlines():
        if entry.startswith("== "):
            current = statuses.setdefault(int(entry[3:]), [])
        else:
            status, command = entry.split(" ", 1)
            current.append((status, command))
    for line, block in blocks:
        got = statuses.get(line)
        assert got is not None, f"README.md line {line}: the block did not run\n{output}"
        expected = expected_statuses(block)
        assert len(got) == len(expected), (f"README.md line {line}: {len(expected)} curl "
                                           f"commands, {len(got)} ran\n{output}")
        for (status, command), wanted in zip(got, expected, strict=True):
            ok = status == str(wanted) if wanted else status.isdigit() and int(status) < 400
            assert ok, (f"README.md line {line}: `curl {command}` answered {status}, "
                        f"expected {wanted or 'a success'}\n{output}")
    assert run.returncode == 0, f"the README's examples failed\n{output}"
    # Own-key publishing left its private keys owner-only, outside any repository.
    for key in ("ca.key", "signer.key"):
        assert (home / "bitkom-own-key" / key).stat().st_mode & 0o077 == 0, key
