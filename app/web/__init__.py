"""Pages for people: the /verify page, where anyone can check a document they hold."""
