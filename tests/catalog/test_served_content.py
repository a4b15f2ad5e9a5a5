"""The served content is the declaration, complete and verbatim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.catalog.verbatim import missing_sentences

SEED = (Path(__file__).resolve().parents[2] / "app" / "catalog" / "content"
        / "tech7-declaration.source.txt")
HEADING = "OUR RECOMMENDATIONS TO POLICYMAKERS"


def _served_text(client) -> str:
    documents = [client.get("/v1/declaration").json]
    for collection in ("priorities", "recommendations", "associations"):
        documents += client.get(f"/v1/{collection}", query_string={"per_page": 100}).json["items"]
    return "\n".join(_strings(documents))


_METADATA = {"kind", "slug", "published_at", "tags", "references"}


def _strings(value):
    """Every string in a document, headings before the text they head (served JSON is canonical,
    so its keys are sorted and "title" would otherwise follow "text")."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        first = [k for k in ("title", "heading") if k in value]
        for key in first + [k for k in value if k not in first and k not in _METADATA]:
            yield from _strings(value[key])
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.fixture(scope="module")
def seed_text():
    return SEED.read_text(encoding="utf-8")


def test_every_recommendation_sentence_is_served(client, seed_text):
    section = seed_text[seed_text.index(HEADING):]
    assert missing_sentences(section, _served_text(client)) == []


def test_the_whole_text_is_served(client, seed_text):
    assert missing_sentences(seed_text, _served_text(client)) == []


def test_the_check_notices_a_dropped_sentence(client, seed_text):
    served = _served_text(client).replace("Proactive approaches to risk assessments are important", "")
    section = seed_text[seed_text.index(HEADING):]
    assert missing_sentences(section, served)


def test_headed_recommendations_keep_their_exact_titles(client):
    titles = {i["title"] for i in client.get("/v1/recommendations",
                                             query_string={"per_page": 100}).json["items"]}
    assert {"Establish clear ethical guidelines and technical standards",
            "Leverage existing organisations like the OECD",
            "Uphold industry-led international standardization."} <= titles
    members = client.get("/v1/associations", query_string={"per_page": 100}).json["items"]
    assert [m["name"] for m in members] == [
        "TECHNATION", "Numeum", "AFNUM", "Bitkom", "Anitec-Assinform", "JEITA",
        "Generative AI Japan", "techUK", "ITI", "DIGITALEUROPE"]
    references = {r["id"] for r in client.get("/v1/declaration").json["references"]}
    assert {"hiroshima-ai-process", "oecd-ai-principles", "iso-iec-jtc1", "3gpp", "c2pa",
            "wto-tbt"} <= references
    assert json.dumps(references, default=list)
