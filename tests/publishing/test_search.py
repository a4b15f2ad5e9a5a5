"""What collection queries filter on, derived from a version's document."""

from __future__ import annotations

from app.publishing.search import RECOMMENDATION, TAG, document_words, facets, fold, labels, words


def test_fold_drops_case_and_accents():
    assert fold("Éléphant ÇA Straße ﬁne") == "elephant ca strasse fine"


def test_words_are_runs_of_letters_and_digits():
    assert words("KI-Verordnung 2025, l'état_de (AI)!") == [
        "ki", "verordnung", "2025", "l", "etat", "de", "ai"]
    assert words("…!?") == []


def test_document_words_are_the_distinct_words_of_every_string_value():
    document = {"title": "Café café", "text": ["Numérique"], "version": 3,
                "addresses": [{"slug": "sme-participation", "version": 1}]}
    assert document_words(document) == "cafe numerique sme participation"


def test_facets_and_labels():
    document = {"association": "bitkom", "statement_type": "position", "withdrawn": True,
                "priority": 2, "tags": ["sme", "ai"],
                "addresses": [{"slug": "key-risks", "version": 1}]}
    assert facets(document) | {"words": ""} == {
        "association": "bitkom", "statement_type": "position", "withdrawn": True,
        "priority": 2, "words": ""}
    assert labels(document) == {(TAG, "sme"), (TAG, "ai"), (RECOMMENDATION, "key-risks")}
    assert facets({"priority": True})["priority"] is None
