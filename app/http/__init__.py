"""HTTP plumbing shared by every domain: the project's Api and Blueprint, problem+json errors,
conditional requests and pagination. Views import the framework from here, never from
``flask_smorest`` directly, so framework fixes live in one place."""
