"""The transparency log: an RFC 9162 Merkle tree stored as C2SP tlog-tiles, with signed checkpoints."""
