"""Fetching from a registry for ``tech7-audit``: one origin only, with urllib and nothing else.

:class:`Fetcher` GETs the URLs of the origin the auditor named and refuses any other, redirects
included. The helpers below fetch what the commands of :mod:`tech7_audit.cli` check: the trust
anchors an upload is judged by, every version of a document with its manifest and receipt, and
the log's C2SP entry bundles and tiles.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from email.message import Message
from typing import Any

import click
from tech7_tlog.tiles import TILE_WIDTH, entries_path, parse_entry_bundle, tile_path

from tech7_audit.history import HistoryVersion
from tech7_audit.verification import LOG, VerificationFailure, read_receipt

#: The exit status of a check or a download that failed.
FAILED = 1

_TIMEOUT = 30
_MAX_DOWNLOAD = 64 * 1024 * 1024


class FetchError(click.ClickException):
    """A download failed: the server is unreachable, answered an error, or sent us elsewhere."""

    exit_code = FAILED


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only within the origin the user named."""

    def __init__(self, origin: tuple[str, str]):
        self.origin = origin

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if _origin(newurl) != self.origin:
            fp.close()
            raise FetchError(f"{req.full_url} redirects to another host ({newurl}); refusing")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc


class Fetcher:
    """GETs URLs of one origin (scheme, host and port) with urllib, and nothing else."""

    def __init__(self, url: str):
        scheme, netloc = _origin(url)
        if scheme not in ("http", "https") or not netloc:
            raise click.BadParameter(f"{url} is not an http(s) URL", param_hint="URL")
        self.origin = (scheme, netloc)
        self.base = f"{scheme}://{netloc}"
        self._opener = urllib.request.build_opener(_SameHostRedirects(self.origin))

    def url(self, reference: str, relative_to: str | None = None) -> str:
        """``reference`` resolved against ``relative_to`` (or the origin), refused if elsewhere."""
        absolute = urllib.parse.urljoin(relative_to or self.base + "/", reference)
        if _origin(absolute) != self.origin:
            raise FetchError(f"{absolute} is not on {self.base}; refusing to fetch it")
        return absolute

    def get(self, reference: str, relative_to: str | None = None) -> tuple[bytes, Message]:
        """The body and headers of a 200 answer; :class:`FetchError` for anything else."""
        url = self.url(reference, relative_to)
        try:
            with self._opener.open(urllib.request.Request(url), timeout=_TIMEOUT) as response:
                body = response.read(_MAX_DOWNLOAD + 1)
                headers = response.headers
        except urllib.error.HTTPError as error:
            raise FetchError(f"GET {url} answered {error.code}: {_problem_detail(error)}") \
                from None
        except (urllib.error.URLError, OSError) as error:
            raise FetchError(f"GET {url} failed: {error}") from None
        if len(body) > _MAX_DOWNLOAD:
            raise FetchError(f"GET {url}: the answer is larger than {_MAX_DOWNLOAD} bytes")
        return body, headers

    def get_json(self, reference: str) -> Any:
        body, _ = self.get(reference)
        try:
            return json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise FetchError(f"GET {self.url(reference)} did not answer JSON") from None


def _problem_detail(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read(65536)).get("detail", error.reason))
    except (ValueError, AttributeError, OSError):
        return str(error.reason)


def link_targets(headers: Message) -> dict[str, str]:
    """``rel`` → target of an RFC 8288 ``Link`` header."""
    links = {}
    for value in headers.get_all("Link") or []:
        for part in value.split(","):
            target, _, params = part.strip().partition(";")
            target = target.strip()
            if not (target.startswith("<") and target.endswith(">")):
                continue
            for param in params.split(";"):
                name, _, rel = param.strip().partition("=")
                if name.strip().lower() == "rel":
                    for each in rel.strip().strip('"').split():
                        links[each] = target[1:-1]
    return links


def trust_anchors(fetcher: Fetcher, association: str | None) -> bytes:
    """The registry's anchors, plus the approved CAs of ``association``: an association that
    signs with its own key is vouched for by its own CA (README, "Own-key publishing")."""
    anchors, _ = fetcher.get("/v1/trust/anchors.pem")
    if association:
        listed = fetcher.get_json(f"/v1/associations/{urllib.parse.quote(association)}/ca")
        for ca in listed.get("items", []) if isinstance(listed, dict) else []:
            if isinstance(ca, dict) and ca.get("status") == "approved" \
                    and isinstance(ca.get("pem"), str):
                anchors += ca["pem"].encode("ascii")
    return anchors


def all_entries(fetcher: Fetcher, tree_size: int) -> list[bytes]:
    """Every entry of the tree, from its C2SP entry bundles."""
    leaves: list[bytes] = []
    for index in range(-(-tree_size // TILE_WIDTH)):
        width = min(TILE_WIDTH, tree_size - index * TILE_WIDTH)
        body, _ = fetcher.get("/v1/log/" + entries_path(index, width))
        try:
            bundle = parse_entry_bundle(body)
        except ValueError as error:
            raise VerificationFailure(LOG, f"entry bundle {index} is malformed: {error}") \
                from None
        if len(bundle) != width:
            raise VerificationFailure(LOG, f"entry bundle {index} holds {len(bundle)} entries, "
                                           f"not {width}")
        leaves.extend(bundle)
    return leaves


def tile_reader(fetcher: Fetcher) -> Callable[[int, int, int], bytes]:
    """``tile(level, index, width)`` for :func:`~tech7_audit.monitor.check_log`, over HTTP."""

    def tile(level: int, index: int, width: int) -> bytes:
        return fetcher.get("/v1/log/" + tile_path(level, index, width))[0]

    return tile


def fetch_versions(fetcher: Fetcher, url: str) -> tuple[str, list[HistoryVersion], str | None]:
    """The document at ``url`` (or at the version ``url`` names): its URL, every version newest
    first with its manifest and receipt, and the association its receipts name (if any)."""
    document_url = fetcher.url(url).rstrip("/")
    parts = document_url.rsplit("/versions/", 1)
    if len(parts) == 2 and parts[1].isdigit():
        document_url = parts[0]
    listed = fetcher.get_json(f"{document_url}/versions")
    try:
        numbers = sorted((int(item["version"]) for item in listed["items"]), reverse=True)
    except (KeyError, TypeError, ValueError):
        raise FetchError(f"GET {document_url}/versions did not list versions") from None
    versions = []
    association = None
    for number in numbers:
        base = f"{document_url}/versions/{number}"
        receipt = fetcher.get(f"{base}/receipt")[0]
        versions.append(HistoryVersion(number, fetcher.get(base)[0],
                                       fetcher.get(f"{base}/manifest")[0], receipt))
        if association is None:
            # A bad receipt is named by audit_history; it just names no association here.
            with contextlib.suppress(VerificationFailure):
                association = read_receipt(receipt).record.get("association")
    return document_url, versions, association
