"""Run the explorer with werkzeug's threaded WSGI server, in the foreground (`cnnlab serve`) or in a
background thread (tests, benchmarks, notebooks)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import CnnlabError
from ..models import Classifier
from .app import create_app, is_loopback
from .engine import Explorer


@dataclass
class RunningServer:
    """A server started by `start_server`: its URL, and `stop()` to shut it down."""

    url: str
    explorer: Explorer
    _server: object
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()


def _make(model: Classifier | nn.Module, host: str, port: int, max_upload_mb: float):
    from werkzeug.serving import make_server
    explorer = Explorer(model)
    app = create_app(explorer, max_upload_mb=max_upload_mb, check_host=is_loopback(host))
    why = _cannot_bind(host, port)
    if why is None:
        try:
            server = make_server(host, port, app, threaded=True)
        except (OSError, SystemExit) as e:  # werkzeug exits on a busy port; we say so in one sentence
            why = getattr(e, "strerror", None) or "address in use"
    if why is not None:
        raise CnnlabError(f"Cannot listen on {host}:{port} ({why}); choose another --port (0 picks a free one).")
    explorer.warm_up()
    shown = f"[{host}]" if ":" in host else host
    return explorer, server, f"http://{shown}:{server.server_port}/"


def _cannot_bind(host: str, port: int) -> str | None:
    """Why (host, port) cannot be listened on, or None when it can (checked before werkzeug tries)."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return f"unknown host: {e.strerror}"
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            return e.strerror or str(e)
    return None


def start_server(model: Classifier | nn.Module, host: str = "127.0.0.1", port: int = 0,
                 max_upload_mb: float = 16, quiet: bool = True) -> RunningServer:
    """Serve the explorer from a daemon thread; port 0 picks a free port (see `.url`).
    `quiet` silences werkzeug's one-line-per-request log (errors are still logged)."""
    if quiet:
        import logging
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    explorer, server, url = _make(model, host, port, max_upload_mb)
    thread = threading.Thread(target=server.serve_forever, name="cnnlab-serve", daemon=True)
    thread.start()
    return RunningServer(url, explorer, server, thread)


def serve(model: Classifier | nn.Module, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 16,
          announce: Callable[[str], None] = print) -> None:
    """Serve the explorer in the foreground until Ctrl+C."""
    _, server, url = _make(model, host, port, max_upload_mb)
    announce(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
