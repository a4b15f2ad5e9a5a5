"""Who may do what: bearer tokens, their scopes, and the ownership rules services apply."""
