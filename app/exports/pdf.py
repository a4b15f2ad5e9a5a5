"""The PDF of an export: the exported documents as a readable text, and how to verify it.

The PDF is laid out from the exported versions alone, in a fixed order — the declaration, its key
priorities, each priority followed by its recommendations, the member associations, any other
documents — then an index of every version with its SHA-256, and a final section, "How to verify
this document". Given the same versions and the same export time it is the same bytes: fpdf2
derives the file identifier from the content, and the creation date is the export time.

Text is set in DejaVu Sans (Debian's ``fonts-dejavu-core``) when it is installed, so typographic
quotes and accented names print as written; without it, fpdf2's core fonts are used and the text
is reduced to Latin-1, with typographic punctuation replaced by its ASCII look-alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from app.publishing.service import PublishedVersion

DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
_DEJAVU_FILES = {("sans", ""): "DejaVuSans.ttf", ("sans", "B"): "DejaVuSans-Bold.ttf",
                 ("mono", ""): "DejaVuSansMono.ttf"}
_CORE_FAMILIES = {"sans": "helvetica", "mono": "courier"}

# What the Latin-1 core fonts cannot print, and the nearest thing they can.
_LATIN1_LOOKALIKES = str.maketrans({"‘": "'", "’": "'", "‚": ",", "“": '"', "”": '"',
                                    "„": '"', "–": "-", "—": "-", "‑": "-", "…": "...",
                                    "•": "-", "\u00a0": " ", "\u202f": " "})

_ORDER = ("declaration", "priority", "recommendation", "association")

# fpdf2 subsets the TrueType fonts with fontTools, which logs every step of every subset at INFO
# (about forty records per PDF); its warnings still get through.
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)


def render_export_pdf(*, title: str, scope: str, exported_at: datetime, export_path: str,
                      versions: Sequence[PublishedVersion], registry_url: str,
                      font_dir: Path = DEJAVU_DIR) -> bytes:
    """Lay out ``versions`` as the PDF of the export at ``export_path``.

    ``title`` heads the first page and ``scope`` says in words what was exported.
    ``registry_url`` is the registry's public base URL: the "How to verify" section names every
    URL under it, since a reader holding only the file has no other way to know where the
    registry is. The PDF is unsigned: the caller embeds the C2PA manifest.
    """
    pdf = _ExportPdf(font_dir, footer=f"tech7-registry export {export_path.rsplit('/', 1)[-1]}")
    pdf.set_title(pdf.clean(title))
    pdf.set_subject(pdf.clean(scope))
    pdf.set_author("tech7-registry")
    pdf.set_creator("tech7-registry")
    pdf.set_lang("en")
    pdf.set_creation_date(exported_at)
    pdf.add_page()

    pdf.heading(title, size=18)
    pdf.note(f"{scope}. Signed export {registry_url.rstrip('/')}{export_path}, made on "
             f"{exported_at.strftime('%d %B %Y at %H:%M:%S UTC')}: {len(versions)} published "
             f"document version{'s' if len(versions) != 1 else ''}, each listed with its number "
             f"and SHA-256 digest.")

    by_kind: dict[str, list[PublishedVersion]] = {}
    for version in versions:
        by_kind.setdefault(version.kind, []).append(version)
    for declaration in by_kind.get("declaration", []):
        _declaration(pdf, declaration)
    _priorities(pdf, by_kind.get("priority", []), by_kind.get("recommendation", []))
    _associations(pdf, by_kind.get("association", []))
    for kind in sorted(set(by_kind) - set(_ORDER)):
        for version in by_kind[kind]:
            _generic(pdf, version)
    _index(pdf, versions)
    _how_to_verify(pdf, registry_url.rstrip("/"), export_path, versions)
    return bytes(pdf.output())


class _ExportPdf(FPDF):
    """An A4 page with the export's name and the page number in the footer."""

    def __init__(self, font_dir: Path, *, footer: str):
        super().__init__(format="A4")
        self._footer = footer
        self.set_margins(20, 18, 20)
        self.set_auto_page_break(True, margin=18)
        fonts = {key: font_dir / name for key, name in _DEJAVU_FILES.items()}
        self._unicode_fonts = all(path.is_file() for path in fonts.values())
        if self._unicode_fonts:
            for (family, style), path in fonts.items():
                self.add_font(family, style, str(path))
        self._families = ({"sans": "sans", "mono": "mono"} if self._unicode_fonts
                          else _CORE_FAMILIES)

    def clean(self, text: str) -> str:
        """``text`` as the current fonts can print it."""
        if self._unicode_fonts:
            return text
        return text.translate(_LATIN1_LOOKALIKES).encode("latin-1", "replace").decode("latin-1")

    def use(self, family: str, style: str = "", size: float = 10) -> None:
        """Switch to ``family`` ("sans" or "mono") in ``style`` ("" or "B") at ``size`` pt."""
        self.set_font(self._families[family], style, size)

    def footer(self) -> None:
        """Called by fpdf2 at the foot of every page."""
        self.set_y(-12)
        self.use("sans", size=8)
        self.set_text_color(110)
        self.cell(0, 5, self.clean(f"{self._footer} · page {self.page_no()}/{{nb}}"),
                  align="C")
        self.set_text_color(0)

    def heading(self, text: str, *, size: float = 14, level: int | None = None) -> None:
        """A bold heading; with ``level``, also an entry of the PDF's outline (bookmarks)."""
        if level is not None:
            self.start_section(self.clean(text), level=level)
        self.use("sans", "B", size)
        self.multi_cell(0, size * 0.5, self.clean(text), align="L",
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)

    def paragraph(self, text: str, *, size: float = 10, style: str = "") -> None:
        """A paragraph of running text, wrapped to the page width."""
        self.use("sans", style, size)
        self.multi_cell(0, size * 0.5, self.clean(text), align="L",
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)

    def note(self, text: str) -> None:
        """A paragraph in small grey type."""
        self.set_text_color(80)
        self.paragraph(text, size=9)
        self.set_text_color(0)

    def digest_line(self, version: PublishedVersion) -> None:
        """The version's URL, number and SHA-256, in small type under its text."""
        self.set_text_color(90)
        self.use("sans", size=7.5)
        self.multi_cell(0, 3.8, self.clean(f"{version.path} · version {version.number}"),
                        align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.use("mono", size=7.5)
        self.multi_cell(0, 3.8, f"sha256 {version.sha256}", align="L",
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0)
        self.ln(3)


def _paragraphs(value: Any) -> list[str]:
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _withdrawal(pdf: _ExportPdf, document: Mapping[str, Any]) -> None:
    if document.get("withdrawn"):
        reason = document.get("withdrawal_reason")
        pdf.paragraph("Withdrawn" + (f": {reason}" if reason else "."), style="B")


def _declaration(pdf: _ExportPdf, version: PublishedVersion) -> None:
    document = version.document()
    pdf.heading("The declaration", level=0)
    _withdrawal(pdf, document)
    for text in _paragraphs(document.get("preamble")):
        pdf.paragraph(text)
    for section in [*document.get("sections", []), document.get("call_to_action")]:
        if isinstance(section, Mapping):
            pdf.heading(section.get("heading", ""), size=12)
            for text in _paragraphs(section.get("paragraphs")):
                pdf.paragraph(text)
    for footnote in document.get("footnotes", []):
        pdf.note(f"[{footnote.get('number')}] {footnote.get('text', '')}")
    pdf.digest_line(version)


def _priorities(pdf: _ExportPdf, priorities: list[PublishedVersion],
                recommendations: list[PublishedVersion]) -> None:
    """The key priorities as a list, then each priority with the recommendations under it."""
    if not priorities and not recommendations:
        return
    documents = {id(v): v.document() for v in [*priorities, *recommendations]}
    if len(priorities) > 1:
        pdf.heading("Key priorities", level=0)
        for version in priorities:
            document = documents[id(version)]
            pdf.paragraph(f"{document.get('number', version.slug)}. {document.get('title', '')}")
        pdf.ln(2)
    pdf.heading("Recommendations to policymakers", level=0)
    by_priority: dict[int, list[PublishedVersion]] = {}
    for version in recommendations:
        by_priority.setdefault(documents[id(version)].get("priority", 0), []).append(version)
    listed: list[tuple[int, PublishedVersion | None]] = [
        (documents[id(v)].get("number", 0), v) for v in priorities]
    listed += [(number, None) for number in sorted(set(by_priority) - {n for n, _ in listed})]
    for number, priority in listed:
        if priority is not None:
            document = documents[id(priority)]
            pdf.heading(f"{number}. {document.get('heading') or document.get('title', '')}",
                        size=13, level=1)
            _withdrawal(pdf, document)
            for text in _paragraphs(document.get("text")):
                pdf.paragraph(text)
            pdf.digest_line(priority)
        else:
            pdf.heading(f"Priority {number}", size=13, level=1)
        for recommendation in by_priority.get(number, []):
            document = documents[id(recommendation)]
            pdf.heading(document.get("title", recommendation.slug), size=11, level=2)
            _withdrawal(pdf, document)
            for text in _paragraphs(document.get("text")):
                pdf.paragraph(text)
            pdf.digest_line(recommendation)


def _associations(pdf: _ExportPdf, associations: list[PublishedVersion]) -> None:
    if not associations:
        return
    pdf.heading("Member associations", level=0)
    for version in associations:
        document = version.document()
        pdf.paragraph(f"{document.get('name', version.slug)} ({document.get('country', '')})",
                      style="B")
        _withdrawal(pdf, document)
        pdf.digest_line(version)


def _generic(pdf: _ExportPdf, version: PublishedVersion) -> None:
    """Any other kind (an association's statement): its title and its text."""
    document = version.document()
    pdf.heading(str(document.get("title") or document.get("name") or version.slug), size=12,
                level=0)
    _withdrawal(pdf, document)
    for text in _paragraphs(document.get("text")):
        pdf.paragraph(text)
    pdf.digest_line(version)


def _index(pdf: _ExportPdf, versions: Sequence[PublishedVersion]) -> None:
    pdf.add_page()
    pdf.heading("Documents in this export", level=0)
    pdf.note("Each document below is a published version, served by the registry as its exact "
             "RFC 8785 canonical JSON bytes; the digest is the SHA-256 of those bytes.")
    for version in versions:
        pdf.use("sans", size=8.5)
        pdf.multi_cell(0, 4.2, pdf.clean(version.path), align="L",
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.use("mono", size=7.5)
        pdf.multi_cell(0, 4, f"  {version.sha256}", align="L",
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(0.8)
    pdf.ln(3)


def _how_to_verify(pdf: _ExportPdf, registry: str, export_path: str,
                   versions: Sequence[PublishedVersion]) -> None:
    example = registry + (versions[0].path if versions else "/v1/…/versions/N")
    export_url = registry + export_path
    pdf.heading("How to verify this document", level=0)
    for text in (
        "This PDF carries a C2PA content-credentials manifest embedded in the file itself. The "
        "tech7-registry signed it with its registry certificate and had the signature "
        "timestamped (RFC 3161), so it stays verifiable after the certificate expires. The "
        "manifest's hard binding covers every byte of the file outside the manifest: changing "
        "any of them makes the manifest read Invalid.",
        "1. Trust anchors. Fetch the registry's trust anchors from the registry that issued "
        "this file and configure them as the only trust anchors of a C2PA verifier; the "
        f"embedded manifest must then read Trusted, with a trusted timestamp. {registry}/v1/trust "
        "lists them per kind (anchors_by_kind): the roots of the signing certificates "
        "(trust_kind \"manifest\") and of the timestamp authority (trust_kind \"tsa\"), here "
        "the same root. c2pa-rs 0.91.3 and later releases take them as trust.anchors entries, "
        f"one per trust_kind; {registry}/v1/trust/c2pa-settings.json is those settings, ready "
        "to load, and newer releases need that form to trust the timestamp. Older releases "
        f"take the single bundle {registry}/v1/trust/anchors.pem as trust.trust_anchors.",
        f"2. Ingredients. The manifest lists each of the {len(versions)} documents above as a "
        "componentOf ingredient, with that version's own signed manifest. Each version can also "
        f"be fetched and checked on its own: its bytes at its URL (e.g. {example}), its C2PA "
        f"sidecar manifest at {example}/manifest.",
        "3. Transparency log. Every published version is an entry in the registry's RFC 9162 "
        f"transparency log; {example}/receipt (and likewise for every version) is its "
        "self-contained receipt: the logged record, an inclusion proof and a signed checkpoint. "
        f"This export is logged too, under the subject {export_path}, and {export_url}/receipt "
        "is its receipt. Or compute the SHA-256 of this file and look it up at "
        f"{registry}/v1/log/entries?sha256=<digest>; the entry records the manifest's label "
        "and digest and the signing certificate.",
        "4. Offline, end to end. The tech7-audit tool performs all of these checks without "
        "trusting the registry's servers: the manifest reads Trusted against the anchors, the "
        "signer is the registry, the file's digest matches the logged record, the record is "
        "included in a checkpoint signed by the log's key, and that checkpoint is consistent "
        f"with the last one the auditor saw. \"tech7-audit fetch {export_url}\" downloads "
        "this file, its receipt and the trust files, and prints the \"tech7-audit verify\" "
        "command to run on them.",
    ):
        pdf.paragraph(text)
