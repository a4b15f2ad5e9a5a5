"""The registry's PKI: certificate authorities, signing certificates, the timestamp authority and the log key."""
