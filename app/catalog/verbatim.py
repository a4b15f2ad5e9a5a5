"""Check that structured content still carries every sentence of its source text, word for word.

The declaration is published as structured JSON (``content/tech7-declaration.json``) built by hand
from a plain-text extraction of the original document. The rule for that file is "verbatim": only
whitespace and line-break hyphenation may change, footnote markers are split off the words they
were glued to, and nothing may be dropped or reworded. :func:`missing_sentences` is the check that
enforces this rule, in tests and for anyone editing the content.

What is compared, and why
-------------------------
Both texts are reduced to a *normal form* before comparison:

* footnote references are removed: the served form ``TECH7[1]`` / ``TECH7[^1]`` / ``TECH7¹`` and the
  source form, where the extraction glued the number onto the word (``TECH71``,
  ``recommendations2``). Footnote numbers are taken from the source's footnote block (a paragraph
  whose every line reads ``<number> <text>``); only those numbers are stripped, and only at the end
  of a word that starts with a letter. The same stripping is applied to both texts, so it can never
  make them differ;
* then only letters and digits are kept, case preserved. This drops whitespace (line wrapping, double
  spaces, tabs, non-breaking spaces), hyphens and dashes (so ``un-\\nrealised`` equals
  ``unrealised`` and ``public-\\nprivate`` equals ``public-private``), and punctuation and quotation
  marks, which the structure legitimately changes (an inline heading ``Key Risks - Create`` becomes
  a title and a text).

A dropped sentence, a changed, added-in-the-middle or removed word, or a changed letter (case
included) still changes the normal form, so it is reported.

What counts as a sentence of the source
---------------------------------------
The source is split into paragraphs at blank lines; a leading list number (``2. Global ...``) is
removed from a paragraph, because the structure carries it as a number. Each paragraph is split
into sentences after ``.``, ``!`` or ``?`` followed by whitespace; an unterminated tail (the
document's last sentence has no full stop) is a sentence too. A paragraph with no ``.``, ``!`` or
``?`` at all that does not end with ``:`` is a heading or a label (``KEY PRIORITIES``, the member
list): structure rather than prose, so it is not checked here. Check such titles separately.
Each footnote line's text is checked as a sentence of its own.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["missing_sentences", "normalise", "source_sentences"]

_FOOTNOTE_LINE = re.compile(r"^\s*(\d{1,3})\s+(?=[^\d\s.])(.+?)\s*$")
_LIST_NUMBER = re.compile(r"^\s*\d+\.\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SERVED_MARKER = re.compile(r"\[\^?\d+\]|[\u00b9\u00b2\u00b3\u2070-\u2079]+")


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def _footnotes(paragraph: str) -> list[tuple[int, str]] | None:
    """The ``(number, text)`` lines of a footnote block, or ``None`` if the paragraph is not one."""
    matches = [_FOOTNOTE_LINE.match(line) for line in paragraph.splitlines() if line.strip()]
    if not matches or not all(matches):
        return None
    return [(int(m.group(1)), m.group(2)) for m in matches if m is not None]


def _footnote_numbers(source_text: str) -> frozenset[int]:
    numbers: set[int] = set()
    for paragraph in _paragraphs(source_text):
        numbers.update(n for n, _ in _footnotes(paragraph) or ())
    return frozenset(numbers)


def _strip_glued_markers(text: str, numbers: frozenset[int]) -> str:
    if not numbers:
        return text
    # Longest numbers first so "12" is not read as "1" + "2"; the lazy prefix keeps "TECH7" whole.
    alternatives = "|".join(str(n) for n in sorted(numbers, key=lambda n: (-len(str(n)), n)))
    return re.sub(rf"\b([^\W\d_]\w*?)(?:{alternatives})\b", r"\1", text)


def normalise(text: str, footnote_numbers: frozenset[int] = frozenset()) -> str:
    """Reduce ``text`` to the form compared by :func:`missing_sentences` (see the module docstring)."""
    text = unicodedata.normalize("NFC", text)
    text = _SERVED_MARKER.sub("", text)
    text = _strip_glued_markers(text, footnote_numbers)
    return "".join(ch for ch in text if ch.isalnum())


def source_sentences(source_text: str) -> list[str]:
    """The sentences of ``source_text`` that must survive, whitespace-collapsed, in document order."""
    sentences: list[str] = []
    for paragraph in _paragraphs(source_text):
        footnotes = _footnotes(paragraph)
        if footnotes is not None:
            sentences.extend(text for _, text in footnotes)
            continue
        paragraph = " ".join(_LIST_NUMBER.sub("", paragraph, count=1).split())
        if not re.search(r"[.!?]", paragraph) and not paragraph.endswith(":"):
            continue  # a heading or a label: structure, checked elsewhere
        sentences.extend(s for s in _SENTENCE_END.split(paragraph) if s)
    return sentences


def missing_sentences(source_text: str, served_text: str) -> list[str]:
    """Return the sentences of ``source_text`` that ``served_text`` does not contain, in source order.

    ``served_text`` is typically every string of the structured content joined with spaces, in
    document order. A sentence is "contained" when its normal form is a substring of the normal form
    of ``served_text``; the normal form ignores whitespace, hyphenation, punctuation and footnote
    markers but not words or letters. An empty list means nothing was dropped or reworded.
    """
    numbers = _footnote_numbers(source_text)
    served = normalise(served_text, numbers)
    missing = []
    for sentence in source_sentences(source_text):
        wanted = normalise(sentence, numbers)
        if wanted and wanted not in served:
            missing.append(sentence)
    return missing
