"""The shared vocabulary of topic tags that recommendations carry.

Third-party apps filter recommendations by these tags (``?tag=standards``), so the set is small,
stable and lowercase kebab-case. A tag is added here, deliberately, before content may use it;
removing or renaming one breaks clients' filters.
"""

TOPIC_TAGS: tuple[str, ...] = (
    "accountability",
    "cooperation",
    "ethics",
    "explainability",
    "governance",
    "infrastructure",
    "innovation",
    "open-source",
    "provenance",
    "regulation",
    "research",
    "risk",
    "safety",
    "scale-ups",
    "security",
    "skills",
    "sme",
    "standards",
    "startups",
    "supply-chain",
    "sustainability",
    "trade",
    "transparency",
)
"""Every tag a recommendation may carry, in alphabetical order."""
