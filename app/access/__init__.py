"""Who is asking and what they may do: the principal of a request, the scopes a token may hold,
and the one policy every service applies (:mod:`app.access.policy`).

It sits below every service, so that publishing, statements and exports each receive the
principal and ask the same rules; the bearer tokens themselves are :mod:`app.auth`'s.
"""
