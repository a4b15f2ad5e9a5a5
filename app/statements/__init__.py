"""Member associations' statements: positions, endorsements and progress reports, in their own name."""
