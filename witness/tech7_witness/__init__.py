"""A C2SP tlog-witness: it cosigns a log's checkpoints when they extend the last one it cosigned."""
