"""The shipped declaration content file: verbatim against the seed text, and structurally sound."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.catalog.tags import TOPIC_TAGS
from app.catalog.verbatim import missing_sentences, source_sentences

CONTENT = Path(__file__).resolve().parents[2] / "app/catalog/content/tech7-declaration.json"
# The declaration's text as received, shipped beside the structured file made from it.
SEED = Path(__file__).resolve().parents[2] / "app/catalog/content/tech7-declaration.source.txt"

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
RECOMMENDATIONS_HEADING = "OUR RECOMMENDATIONS TO POLICYMAKERS"

PRIORITY_TITLES = [
    "Responsible and Human centered AI development and deployment",
    "Global cooperation and alignment",
    "Risk Assessment and management",
    "Inclusive innovation and economic growth",
    "Safety, security, and supply chain resilience",
    "Public trust, fairness and explainability",
    "International standards",
]
PRIORITY_HEADINGS = [
    "Responsible and Human centered AI development and deployment.",
    "Global cooperation and alignment",
    "Risk assessment and management",
    "Inclusive innovation and sustainable economic growth",
    "Safety, security, and supply chain resilience",
    "Public trust, fairness and explainability",
    "International standards",
]
HEADED_TITLES = [
    "Establish clear ethical guidelines and technical standards",
    "Ensuring an innovation-friendly, future-proof approach to regulation",
    "Leverage existing organisations like the OECD",
    "Define Stakeholder Roles and Responsibilities",
    "Define and Prioritise Key Risks",
    "Promote sustainable innovation through Research and Development (R&D) funding",
    "Foster digital literacy and workforce reskilling",
    "Support SME and startups participation in AI innovation",
    "Stimulate advancement in industrial and business AI use cases via innovation-friendly "
    "regulation and international collaboration.",
    "Align national AI governance frameworks with international standards.",
    "Uphold industry-led international standardization.",
]
ASSOCIATIONS = [
    ("technation", "TECHNATION", "Canada"),
    ("numeum", "Numeum", "France"),
    ("afnum", "AFNUM", "France"),
    ("bitkom", "Bitkom", "Germany"),
    ("anitec-assinform", "Anitec-Assinform", "Italy"),
    ("jeita", "JEITA", "Japan"),
    ("generative-ai-japan", "Generative AI Japan", "Japan"),
    ("techuk", "techUK", "United Kingdom"),
    ("iti", "ITI", "United States"),
    ("digitaleurope", "DIGITALEUROPE", "Europe"),
]


def load_content() -> dict:
    return json.loads(CONTENT.read_text(encoding="utf-8"))


def strings(value) -> Iterator[str]:
    """Every string in a JSON value, in document order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def recommendations_text(content: dict) -> str:
    """Priorities' and recommendations' titles and texts, joined in document order."""
    parts: list[str] = []
    for priority in content["priorities"]:
        parts += [priority["title"], priority["heading"], *priority["text"]]
    for recommendation in content["recommendations"]:
        parts += [recommendation["title"], *recommendation["text"]]
    return " ".join(parts)


def whole_text(content: dict) -> str:
    return " ".join(strings(content))


@pytest.fixture
def content() -> dict:
    return load_content()


@pytest.fixture
def seed() -> str:
    return SEED.read_text(encoding="utf-8")


@pytest.fixture
def recommendations_section(seed: str) -> str:
    start = seed.index(RECOMMENDATIONS_HEADING)
    return seed[start:]


def recommendation(content: dict, slug: str) -> dict:
    return next(r for r in content["recommendations"] if r["slug"] == slug)


# --- verbatim -------------------------------------------------------------------------------------


def test_every_recommendations_section_sentence_is_in_priorities_and_recommendations(
    content, recommendations_section
):
    assert source_sentences(recommendations_section), "the section was not split into sentences"
    assert missing_sentences(recommendations_section, recommendations_text(content)) == []


def test_every_sentence_of_the_source_is_in_the_content_file(content, seed):
    assert len(source_sentences(seed)) >= 90
    assert missing_sentences(seed, whole_text(content)) == []


def test_the_check_catches_a_dropped_sentence(content, seed, recommendations_section):
    mutated = copy.deepcopy(content)
    priority = mutated["priorities"][1]
    priority["text"][0] = priority["text"][0].replace("International collaboration is essential. ", "")

    expected = ["International collaboration is essential."]
    assert missing_sentences(recommendations_section, recommendations_text(mutated)) == expected
    assert missing_sentences(seed, whole_text(mutated)) == expected


def test_the_check_catches_a_dropped_bullet(content, recommendations_section):
    mutated = copy.deepcopy(content)
    del recommendation(mutated, "accountability-frameworks")["text"][1]

    assert missing_sentences(recommendations_section, recommendations_text(mutated)) == [
        "Establishing clear guidelines for compliance while avoiding overly prescriptive rules "
        "that could stifle development."
    ]


def test_the_check_catches_a_changed_word(content, seed, recommendations_section):
    mutated = copy.deepcopy(content)
    text = recommendation(mutated, "industrial-ai-use-cases")["text"]
    text[0] = text[0].replace("the crucial role", "the critical role")

    for source, served in [
        (recommendations_section, recommendations_text(mutated)),
        (seed, whole_text(mutated)),
    ]:
        missing = missing_sentences(source, served)
        assert len(missing) == 1
        assert missing[0].startswith("The G7 should further recognise the crucial role")


def test_the_check_catches_a_fixed_typo(content, seed):
    mutated = copy.deepcopy(content)
    text = recommendation(mutated, "scale-up-innovators")["text"]
    text[0] = text[0].replace("for f successful", "for successful")

    assert len(missing_sentences(seed, whole_text(mutated))) == 1


def test_the_check_catches_a_dropped_footnote(content, seed):
    mutated = copy.deepcopy(content)
    del mutated["declaration"]["footnotes"][0]
    mutated["declaration"]["references"] = []

    assert missing_sentences(seed, whole_text(mutated)) == ["TECHNATION Kick-off Declaration"]


def test_missing_sentences_ignores_layout_and_footnote_markers():
    source = (
        "HEADING\n\nThe presidency of the TECH71 (X) will lead. We made recommen-\n"
        "dations2 and public-\nprivate deals.\n\n1 First note\n2 Second note\n"
    )
    served = (
        "The presidency of the TECH7[1] (X) will lead. We made recommendations[2] and "
        "public-private deals. First note Second note"
    )
    assert missing_sentences(source, served) == []
    assert missing_sentences(source, served.replace("will lead", "shall lead")) == [
        "The presidency of the TECH71 (X) will lead."
    ]
    assert missing_sentences(source, served.replace("Second note", "")) == ["Second note"]


# --- structure ------------------------------------------------------------------------------------


def test_file_is_formatted_for_review():
    raw = CONTENT.read_text(encoding="utf-8")
    assert raw == json.dumps(json.loads(raw), ensure_ascii=False, indent=2) + "\n"


def test_key_order(content):
    assert list(content) == ["declaration", "priorities", "recommendations", "associations"]
    assert list(content["declaration"]) == [
        "slug", "title", "summit", "members_intro", "preamble", "sections",
        "call_to_action", "footnotes", "references",
    ]
    for priority in content["priorities"]:
        assert list(priority) == ["number", "title", "heading", "text"]
    for rec in content["recommendations"]:
        assert list(rec) == ["slug", "priority", "title", "headed", "text", "tags", "references"]
    for association in content["associations"]:
        assert list(association) == ["slug", "name", "country"]


def test_seven_priorities_in_order_with_exact_titles(content):
    priorities = content["priorities"]
    assert [p["number"] for p in priorities] == [1, 2, 3, 4, 5, 6, 7]
    assert [p["title"] for p in priorities] == PRIORITY_TITLES
    assert [p["heading"] for p in priorities] == PRIORITY_HEADINGS


def test_headed_recommendations_keep_their_exact_titles(content):
    headed = [r["title"] for r in content["recommendations"] if r["headed"]]
    assert headed == HEADED_TITLES


def test_titles_and_paragraphs_are_trimmed_single_spaced_strings(content):
    for text in strings(content):
        assert text == text.strip()
        assert "  " not in text and "\n" not in text and "\t" not in text


def test_footnote_markers_are_separated_from_words(content):
    declaration = content["declaration"]
    assert [f["number"] for f in declaration["footnotes"]] == [1, 2]
    assert declaration["footnotes"][0]["text"] == "TECHNATION Kick-off Declaration"
    text = whole_text(content)
    assert "TECH7[1] (TECHNATION)" in text and "recommendations[2]." in text
    assert "TECH71" not in text and "recommendations2" not in text
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
    assert markers == {f["number"] for f in declaration["footnotes"]}


def test_ten_associations(content):
    assert [(a["slug"], a["name"], a["country"]) for a in content["associations"]] == ASSOCIATIONS


def test_slugs_are_unique_and_kebab_case(content):
    for kind in ("recommendations", "associations"):
        slugs = [item["slug"] for item in content[kind]]
        assert len(slugs) == len(set(slugs)), kind
        assert all(SLUG.fullmatch(slug) for slug in slugs), slugs
    ids = [ref["id"] for ref in content["declaration"]["references"]]
    assert len(ids) == len(set(ids))
    assert all(SLUG.fullmatch(i) for i in ids), ids
    assert SLUG.fullmatch(content["declaration"]["slug"])


def test_recommendations_belong_to_a_priority_in_document_order(content):
    numbers = [r["priority"] for r in content["recommendations"]]
    assert all(1 <= n <= 7 for n in numbers)
    assert numbers == sorted(numbers)
    assert {1, 2, 3, 4, 5, 6, 7} == set(numbers)
    for rec in content["recommendations"]:
        assert isinstance(rec["headed"], bool)
        assert rec["text"] and all(isinstance(p, str) and p for p in rec["text"])


def test_tags_come_from_the_shared_vocabulary(content):
    assert len(TOPIC_TAGS) == len(set(TOPIC_TAGS))
    assert all(SLUG.fullmatch(tag) for tag in TOPIC_TAGS)
    for rec in content["recommendations"]:
        tags = rec["tags"]
        assert 2 <= len(tags) <= 5, rec["slug"]
        assert len(tags) == len(set(tags)), rec["slug"]
        assert set(tags) <= set(TOPIC_TAGS), (rec["slug"], set(tags) - set(TOPIC_TAGS))


@pytest.mark.parametrize(
    ("slug", "tag"),
    [
        ("sme-participation", "sme"),
        ("ethical-guidelines-and-standards", "standards"),
        ("align-with-international-standards", "standards"),
        ("industry-led-standardization", "standards"),
        ("explainability-and-provenance", "provenance"),
        ("industry-led-standardization", "provenance"),
        ("digital-literacy-reskilling", "skills"),
        ("accountability-frameworks", "security"),
    ],
)
def test_topic_tags_apps_rely_on(content, slug, tag):
    assert tag in recommendation(content, slug)["tags"]


def test_recommendation_references_exist(content):
    known = {ref["id"] for ref in content["declaration"]["references"]}
    for rec in content["recommendations"]:
        assert set(rec["references"]) <= known, rec["slug"]
    assert "c2pa" in recommendation(content, "industry-led-standardization")["references"]
