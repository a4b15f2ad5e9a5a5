"""Exports: signed JSON, CSV and PDF snapshots of published versions, each with its own manifest."""
