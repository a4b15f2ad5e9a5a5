"""RFC 9162 Merkle proofs and the C2SP transparency-log formats, with no framework underneath."""
