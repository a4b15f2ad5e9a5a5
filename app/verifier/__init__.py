"""The registry's verifier behind ``POST /v1/verify``: the auditor's checks (:mod:`tech7_audit.verification`), plus
what only the registry knows, its database's log and its trust list."""
