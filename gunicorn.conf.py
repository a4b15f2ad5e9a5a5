"""gunicorn settings for tech7-registry (``tech7-registry serve`` loads this file).

gthread workers, 8 threads each: a sync worker serves one connection at a time, so a few clients
sending a body slowly held every worker and the service stopped answering (and gunicorn killed
the workers for missing their heartbeat). With threads, a slow client holds one thread, and the
application bounds how long that lasts: a body must arrive within ``BODY_TIMEOUT`` seconds
(:mod:`app.http.body_deadline`); gunicorn itself waits for a new connection's first bytes without
a thread, drains an unread body within a bounded time, and closes idle kept-alive connections
after ``keepalive`` seconds. It has no deadline on reading the request head, so put a buffering
proxy in front in production (README, "Production deployment"). A worker per core remains the
unit of throughput: c2pa releases the GIL while signing, the threads mostly wait on sockets.

Logs: one JSON object per line on stderr (:mod:`app.ops.logging`). gunicorn's access log is off:
the application writes the access line itself, with the request ID and the principal, also for
versions the WSGI fast path serves. gunicorn's own messages (worker boots, timeouts) use the same
JSON formatter through ``logconfig_dict``; the root handler it installs in the master is
inherited by the workers, which therefore add none of their own.
"""

worker_class = "gthread"
threads = 8
preload_app = False  # each worker builds its own app: native handles do not survive a fork
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = "info"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "app.ops.logging.JsonFormatter"}},
    "filters": {"request_id": {"()": "app.ops.logging.RequestIdFilter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                            "filters": ["request_id"], "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    # gunicorn.error keeps the level of gunicorn's loglevel setting (no "level" here).
    "loggers": {"gunicorn.error": {"handlers": [], "propagate": True},
                "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False}},
}
# gunicorn refuses, in plain text before the application sees them, a request line over
# limit_request_line bytes (414), a header field line over limit_request_field_size bytes or more
# than limit_request_fields fields (431). These are gunicorn's defaults, written out because the
# application's own limits (MAX_URL_BYTES, MAX_HEADER_BYTES in app/core/config.py) stay below them, so
# that a request between the two gets the application's problem+json answer.
limit_request_line = 4094
limit_request_field_size = 8190
limit_request_fields = 100
# gunicorn's control socket lives at one path per user ($HOME/.gunicorn), which two registries on
# one host would share; nothing here uses it.
control_socket_disable = True
