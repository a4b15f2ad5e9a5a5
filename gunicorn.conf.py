"""gunicorn settings for tech7-registry (``tech7-registry serve`` loads this file).

Sync workers: they gave steadier p99 latency than gthread for this service, and c2pa releases the
GIL while signing, so a worker per core is the unit of throughput.
"""

worker_class = "sync"
preload_app = False  # each worker builds its own app: native handles do not survive a fork
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = "info"
