"""HTTP plumbing shared by every domain: the project's Api and Blueprint, problem+json errors,
conditional requests, pagination, permissions, the activity trail, and the views
(:mod:`app.http.views`). Views import the framework from here, never from
``flask_smorest`` directly, so framework fixes live in one place."""
