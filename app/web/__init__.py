"""Pages for people: the audit page where anyone can check a document they hold."""
