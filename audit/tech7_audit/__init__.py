"""Auditing: the checks that prove a document is what the registry published (verify API and
the offline ``tech7-audit`` command)."""
