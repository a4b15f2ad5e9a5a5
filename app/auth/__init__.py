"""Bearer tokens: issuing (hashed), authenticating, listing and revoking them. What a token's
principal may do is :mod:`app.access`'s policy."""
