"""tech7-registry: the TECH7 declaration as versioned, signed, logged JSON resources.

This package file imports nothing, so that a part used on its own (the ``tech7-audit`` command
above all) loads only what it needs. The server is composed in :mod:`app.composition`.
"""
