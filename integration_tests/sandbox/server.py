"""HTTP layer: a threaded HTTP/1.1 keep-alive server and the ``SandboxServer`` object."""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from .admin import Admin
from .api import Api
from .client import SandboxClient
from .config import Config
from .faults import Faults
from .ratelimit import RateLimiter
from .state import Project
from .stats import Stats
from .validation import EmailValidator, load_tlds
from .wire import Reply, Request, iterable_error

DRAIN_LIMIT = 64 * 1024 * 1024  # bodies up to this size are read and discarded before a 413
READ_PIECE = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "iterable-sandbox/1.0"
    sys_version = ""
    wbufsize = 64 * 1024  # headers and body leave in one write
    timeout = 300
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; the sandbox reports through /_sandbox/stats."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_GET  # noqa: N815

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        path, _, query = self.path.partition("?")
        try:
            body, too_large = self._read_body(sandbox.config.max_body_bytes)
        except ValueError:
            self.close_connection = True
            self._send(iterable_error(400, "Malformed Content-Length or chunked body", "BadParams"))
            return
        req = Request(self.command, path, dict(parse_qsl(query, keep_blank_values=True)),
                      self.headers.get("Api-Key") or self.headers.get("Api_Key"), body, too_large,
                      self.client_address[0])
        if path == "/api" or path.startswith("/api/"):
            reply = self._api(sandbox, req)
        elif path == "/_sandbox" or path.startswith("/_sandbox/"):
            reply = _guard(sandbox.admin.handle, req)
        else:
            reply = iterable_error(404, "Not found", "NotFound")
        self._send(reply)

    def _api(self, sandbox: SandboxServer, req: Request) -> Reply:
        sandbox.stats.begin()
        template = f"{req.method} {req.path}"
        try:
            # Latency: the request's trip (before the limiter sees it arrive), then, after it is handled,
            # processing and the answer's trip back. No lock is held while sleeping: one thread per connection.
            before, after = sandbox.faults.latency()
            sandbox.faults.sleep(before)
            sandbox.faults.sleep(sandbox.faults.pause_left())  # a pause holds the request before the limiter ...
            template, reply = sandbox.api.handle(req)
            sandbox.faults.sleep(after)
            sandbox.faults.sleep(sandbox.faults.pause_left())  # ... and the answer
        except Exception:  # a sandbox bug: say so on stderr, answer 500 rather than hang up
            traceback.print_exc(file=sys.stderr)
            reply = iterable_error(500, "Internal sandbox error", "GenericError")
        finally:
            sandbox.stats.end()
        sandbox.stats.record(template, "dropped" if reply.drop else reply.status)
        return reply

    def _read_body(self, limit: int) -> tuple[bytes, bool]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length <= limit:
            return self.rfile.read(length), False
        if length > DRAIN_LIMIT:
            self.close_connection = True
            return b"", True
        while length > 0:
            piece = self.rfile.read(min(length, READ_PIECE))
            if not piece:
                break
            length -= len(piece)
        return b"", True

    def _read_chunked(self, limit: int) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"x", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                break
            total += size
            if total > DRAIN_LIMIT:
                raise ValueError("chunked body too large")
            data = self.rfile.read(size)
            self.rfile.readline(65537)
            if total <= limit:
                parts.append(data)
        return (b"", True) if total > limit else (b"".join(parts), False)

    def _send(self, reply: Reply) -> None:
        if reply.drop:
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        if reply.chunks is not None and self.command != "HEAD":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in reply.chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)


def _guard(handler: Any, req: Request) -> Reply:
    try:
        return handler(req)
    except Exception:
        traceback.print_exc(file=sys.stderr)
        return iterable_error(500, "Internal sandbox error", "GenericError")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup HTTPServer does."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up mid-answer; print anything else (a sandbox bug)."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Hang up every open keep-alive connection."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class SandboxServer:
    """A local Iterable look-alike: ``SandboxServer(api_key=..., **knobs).start()``; ``.url``; ``.stop()``."""

    def __init__(self, api_key: str, read_only_key: str | None = None, subscribe_rps: float = 0,
                 port: int = 0, host: str = "127.0.0.1", **knobs: Any) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.api_key = api_key
        self.read_only_key = read_only_key
        self.host = host
        self.port = port
        self.config = Config(subscribe_rps=subscribe_rps, **knobs)
        self.project = Project()
        self.stats = Stats()
        self.limiter = RateLimiter(self.config)
        self.faults = Faults(self.config)
        self.validator = EmailValidator(load_tlds())
        self.api = Api(self)
        self.admin = Admin(self)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._client: SandboxClient | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (after ``start()``)."""
        if self._url is None:
            raise RuntimeError("the sandbox is not started")
        return self._url

    @property
    def client(self) -> SandboxClient:
        """A ``SandboxClient`` for this server's inspection endpoints."""
        if self._client is None:
            self._client = SandboxClient(self.url)
        return self._client

    def start(self) -> SandboxServer:
        """Bind and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("the sandbox is already started")
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_port
        self._url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and hang up open connections (safe to call twice)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._client is not None:
            self._client.close()
            self._client = None

    def set_config(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs at run time; returns the whole new config."""
        return self.config.update(knobs)

    def reset(self) -> None:
        """Forget lists, users, stats, timeline and rate buckets; keep keys and knobs."""
        self.project.reset()
        self.stats.reset()
        self.limiter.reset()
        self.faults.reseed()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
