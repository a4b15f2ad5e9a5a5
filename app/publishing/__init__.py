"""Publishing: mutable drafts become immutable, canonical, numbered versions."""
