"""The witnesses the suite runs: three real ``tech7-witness serve`` processes (fixtures in conftest.py)."""

WITNESS_NAMES = ("assoc-a", "assoc-b", "assoc-c")
"""Their names in the test policy, whose quorum is 2 of them."""
