"""tech7-registry: the TECH7 declaration as versioned, signed, logged JSON resources."""
