"""Run the app under uvicorn: in the foreground for `radassist serve`, or in a thread for tests and benchmarks."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from radassist.server.app import create_app
from radassist.server.settings import ServerSettings
from radassist.server.tasks import ServerTask


def uvicorn_config(settings: ServerSettings, host: str, port: int, log_level: str = "info",
                   tasks: dict[str, ServerTask] | None = None) -> uvicorn.Config:
    # one process: the job queue and its workers live in it, so uvicorn's --workers would split them
    return uvicorn.Config(create_app(settings, tasks), host=host, port=port, log_level=log_level, access_log=False,
                          timeout_graceful_shutdown=10)


def serve(settings: ServerSettings, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until interrupted (Ctrl+C stops the workers and removes the job folders)."""
    uvicorn.Server(uvicorn_config(settings, host, port)).run()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class ServerThread:
    """A real server on a loopback port in a background thread; ``with ServerThread(settings) as url: ...``."""

    def __init__(self, settings: ServerSettings, host: str = "127.0.0.1", port: int | None = None,
                 startup_timeout_s: float = 30.0, tasks: dict[str, ServerTask] | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(uvicorn_config(settings, self.host, self.port, log_level="warning",
                                                    tasks=tasks))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
        self._thread = threading.Thread(target=self.server.run, name="radassist-server", daemon=True)
        self._timeout = startup_timeout_s

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def app(self):  # noqa: ANN201 -- the FastAPI app, for tests that look at its queue
        return self.server.config.app

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the RadAssist server did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.should_exit = True
        self._thread.join(30)
