"""The baseline for ``bench/read.py``: a bare Flask app that serves one fixed representation.

It answers ``GET <path>`` with the exact bytes and headers the registry served for a version URL,
and ``If-None-Match`` with a 304 carrying the registry's 304 headers; nothing else (no database, no
flask-smorest, no CORS extension, no hooks). ``bench/read.py`` writes the spec and runs this under
the registry's own gunicorn settings::

    BENCH_BARE_SPEC=spec.json gunicorn -c gunicorn.conf.py 'bench.bare_app:create_app()'

The spec is JSON: ``{"path": "/v1/...", "body_file": "...", "etag": "\\"...\\"",
"headers_200": [[name, value], ...], "headers_304": [[name, value], ...]}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask import Flask, Response, request


def create_app(spec_path: str | None = None) -> Flask:
    """Build the bare app from the spec file named by ``spec_path`` or ``$BENCH_BARE_SPEC``."""
    spec = json.loads(Path(spec_path or os.environ["BENCH_BARE_SPEC"]).read_text())
    body = Path(spec["body_file"]).read_bytes()
    etag = spec["etag"]
    opaque = etag.removeprefix("W/")
    headers_200 = [tuple(pair) for pair in spec["headers_200"]]
    headers_304 = [tuple(pair) for pair in spec["headers_304"]]

    app = Flask(__name__)

    @app.get(spec["path"])
    def representation() -> Response:
        header = request.headers.get("If-None-Match")
        if header and (header.strip() == "*" or any(
                tag.strip().removeprefix("W/") == opaque for tag in header.split(","))):
            return Response(status=304, headers=headers_304)
        return Response(body, headers=headers_200)

    return app
