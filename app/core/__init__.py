"""The core every layer above stands on: time, files, errors, canonical JSON, entity tags, the
strict marshmallow fields, and the database with its one writer lock
(:meth:`~app.core.db.Database.registry_transaction`). It imports nothing else of the registry."""
