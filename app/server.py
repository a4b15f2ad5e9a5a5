"""Running the application under gunicorn from the ``serve`` command.

The app is built in each worker after the fork (``preload_app`` is off): c2pa signers, database
pools and other native handles made before a fork are not valid in the child process.
"""

from __future__ import annotations

from gunicorn.app.base import Application

from app.core.config import PROJECT_ROOT

GUNICORN_CONFIG = PROJECT_ROOT / "gunicorn.conf.py"


class RegistryServer(Application):
    """A gunicorn application whose workers each call :func:`app.composition.create_app`."""

    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        self.load_config_from_file(str(GUNICORN_CONFIG))
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def init(self, parser, opts, args):  # the command line is ours, not gunicorn's
        return None

    def load(self):
        from app.composition import create_app  # noqa: PLC0415 - runs in the worker, after the fork

        return create_app()


def run(*, host: str, port: int, workers: int) -> None:
    """Serve until interrupted."""
    RegistryServer({"bind": f"{host}:{port}", "workers": workers}).run()
