"""`BulkSession`: the subscribe/unsubscribe POSTs of `IterableClient` without requests' per-call work.

Split from client.py so that module keeps Iterable's API (retries, rate control, typed errors) and this one
the HTTP fast path (measured: 1.27 -> 0.44 ms of CPU per 1,000-row request, `bench/sender_cpu.py`). Every
path here raises what requests raises for the same failure; integration_tests/test_client_fastpath.py
compares them with plain requests.
"""

from __future__ import annotations

import errno
import io
import re
import ssl
import threading
from collections.abc import Iterable
from http.client import HTTPMessage
from types import SimpleNamespace
from typing import Any, NamedTuple

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import ChunkedEncodingError, ContentDecodingError
from requests.models import REDIRECT_STATI
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPResponse as Urllib3Response
from urllib3._collections import HTTPHeaderDict  # urllib3 1.26 does not export it at the top
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import InvalidHeader as Urllib3InvalidHeader
from urllib3.exceptions import ProxyError as Urllib3ProxyError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.util import Timeout as Urllib3Timeout

_URLLIB3_MAJOR = int(urllib3.__version__.split(".")[0])
# what urllib3's HTTPConnection.getresponse does to folded header values (newer urllib3 versions only)
_NORMALIZE_HEADER_VALUE = getattr(urllib3.connection, "_normalize_header_value", lambda value: value)


class _Route(NamedTuple):
    """Everything `requests` works out per call for one bulk URL, worked out once."""

    pool: Any  # the adapter's urllib3 connection pool (TLS settings and proxy applied)
    target: str  # what the pool is asked for: the path, or the full URL through a plain-http proxy
    headers: dict[str, str]  # the session's headers (and netrc auth, if any), as `prepare_request` makes them
    retries: Any  # the adapter's urllib3 Retry (no retries)
    prepared: requests.PreparedRequest  # for cookie extraction only
    head: bytes | None  # request line and headers for the wire path, with %d for the Content-Length


class _Closed(Exception):
    """The server closed the connection (EOF) in the middle of an answer."""


class _Malformed(Exception):
    """An answer that is not HTTP/1.x as http.client reads it."""


# email.feedparser.headerRE: a header line (or an envelope line, or a continuation); the first line that is
# none of these ends the headers as http.client parses them (the rest of the block is ignored)
_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")


class _Wire:
    """Reads one HTTP/1.x answer to a POST from a connected socket, as http.client (and urllib3) read it.

    Without their per-call objects and email parser, but with their rules: `HTTPResponse._read_status`
    and `begin` (status line, 100 Continue skipped, HTTP/1.0 vs 1.1, line and header-count limits),
    `parse_headers` (email.feedparser's header rules: first value of a name for framing, folded lines,
    the first non-header line ends the headers), the framing (chunked, Content-Length, read until close,
    no body for 1xx/204/304) and `_check_close`. An EOF ends a line as `readline` does.
    """

    MAX_LINE = 65536  # http.client._MAXLINE
    MAX_HEADERS = 100  # http.client._MAXHEADERS (the blank line counts)
    __slots__ = ("sock", "buf")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = b""

    def line(self) -> bytes:
        """The next line with its line end; at EOF what is left (b"" once everything was read)."""
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line, self.buf = self.buf[:end + 1], self.buf[end + 1:]
                break
            if len(self.buf) > self.MAX_LINE:
                raise _Malformed("line too long")
            data = self.sock.recv(65536)
            if not data:
                line, self.buf = self.buf, b""
                break
            self.buf += data
        if len(line) > self.MAX_LINE:
            raise _Malformed("line too long")
        return line

    def exact(self, size: int) -> bytes:
        """Exactly `size` bytes (an EOF before is an incomplete read)."""
        while len(self.buf) < size:
            data = self.sock.recv(65536)
            if not data:
                raise _Closed("incomplete read")
            self.buf += data
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def until_close(self) -> bytes:
        """Everything until the server closes the connection."""
        parts = [self.buf]
        self.buf = b""
        while data := self.sock.recv(65536):
            parts.append(data)
        return b"".join(parts)

    def head(self) -> tuple[int, int, str, HTTPHeaderDict]:
        """(version 10/11, status, reason, headers) of the final answer (100 Continue answers skipped)."""
        while True:
            raw = self.line()
            if not raw:
                raise _Closed("remote end closed connection without response")
            parts = raw.decode("iso-8859-1").split(None, 2)
            version = parts[0] if len(parts) >= 2 else ""
            if not version.startswith("HTTP/"):
                raise _Malformed("bad status line")
            try:
                status = int(parts[1])
            except ValueError:
                raise _Malformed("bad status line") from None
            if not 100 <= status <= 999:
                raise _Malformed("bad status line")
            if version in ("HTTP/1.0", "HTTP/0.9"):
                number = 10
            elif version.startswith("HTTP/1."):
                number = 11
            else:
                raise _Malformed("unknown protocol")
            lines = self.header_lines()
            if status != 100:
                return number, status, parts[2].strip() if len(parts) > 2 else "", _parse_headers(lines)

    def header_lines(self) -> list[str]:
        """The lines of a header block, without the blank line that ends it."""
        lines: list[str] = []
        while True:
            line = self.line()
            if len(lines) + 1 > self.MAX_HEADERS:
                raise _Malformed("got more than 100 headers")
            if line in (b"\r\n", b"\n", b""):
                return lines
            lines.append(line.decode("iso-8859-1"))

    def body(self, status: int, headers: HTTPHeaderDict) -> tuple[bytes, bool]:
        """(body, whether the framing lets the connection be reused) of an answer to a POST."""
        encoding = _first(headers, "transfer-encoding")
        chunked = bool(encoding) and encoding.lower() == "chunked"  # type: ignore[union-attr]
        length: int | None = None
        text = _first(headers, "content-length")
        if text and not chunked:
            try:
                length = int(text)
            except ValueError:
                length = None
            if length is not None and length < 0:
                length = None
        if status in (204, 304) or 100 <= status < 200:
            return b"", True
        if chunked:
            return self.chunked()
        if length is None:
            return self.until_close(), False
        return self.exact(length), True

    def chunked(self) -> tuple[bytes, bool]:
        parts = []
        while True:
            size_line = self.line().split(b";", 1)[0]
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _Malformed("invalid chunk length") from None
            if size < 0:
                raise _Malformed("invalid chunk length")
            if size == 0:
                break
            parts.append(self.exact(size))
            self.exact(2)  # the chunk's line end
        while True:  # trailers
            line = self.line()
            if not line:
                return b"".join(parts), False
            if line in (b"\r\n", b"\n"):
                return b"".join(parts), True


def _parse_headers(lines: list[str]) -> HTTPHeaderDict:
    """`http.client.parse_headers` (email.feedparser with the compat32 policy) → urllib3's header dict."""
    headers = HTTPHeaderDict()
    source: list[str] = []

    def flush() -> None:
        name, value = source[0].split(":", 1)
        value = (value.lstrip(" \t") + "".join(source[1:])).rstrip("\r\n")
        headers.add(name, _NORMALIZE_HEADER_VALUE(value) if "\r\n" in value else value)

    for line in lines:
        if not _HEADER_LINE.match(line):
            break
        if line[0] in " \t":
            if source:
                source.append(line)
            continue
        if source:
            flush()
            source = []
        if line.startswith("From ") or line.find(":") == 0:
            continue
        source = [line]
    if source:
        flush()
    return headers


def _first(headers: HTTPHeaderDict, name: str) -> str | None:
    """The first value of a header, as `email.message.Message.get` gives it to http.client."""
    values = headers.getlist(name)
    return values[0] if values else None


def _keep_alive(version: int, headers: HTTPHeaderDict) -> bool:
    """http.client's `_check_close`, inverted."""
    connection = (_first(headers, "connection") or "").lower()
    if version == 11:
        return "close" not in connection
    if _first(headers, "keep-alive") or "keep-alive" in connection:
        return True
    return "keep-alive" in (_first(headers, "proxy-connection") or "").lower()


# http.client's checks of what it writes (putrequest's _validate_path, putheader's name and value checks)
_BAD_TARGET = re.compile("[\x00-\x20\x7f]")
_LEGAL_HEADER_NAME = re.compile(r"[^:\s][^:\r\n]*")
_ILLEGAL_HEADER_VALUE = re.compile(r"\n(?![ \t])|\r(?![ \t\n])")


def _wire_head(pool: Any, target: str, headers: dict[str, str]) -> bytes | None:
    """The request line and headers urllib3 would send on `pool`'s connections (None: not for the wire path).

    As `http.client.HTTPConnection.putrequest`/`putheader` write them: `Host` first (no port for the
    scheme's default port, IPv6 in brackets), then the given headers in order, then Content-Length (a
    %d placeholder). Anything http.client would refuse or encode differently is left to urllib3.
    """
    try:
        host = str(pool.host).rstrip(".")
        host.encode("ascii")
        default_port = pool.ConnectionCls.default_port
    except (AttributeError, UnicodeError):
        return None
    if ":" in host:
        host = f"[{host}]"
    if pool.port not in (None, default_port):
        host = f"{host}:{pool.port}"
    if _BAD_TARGET.search(target):
        return None
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if not name.isascii() or not _LEGAL_HEADER_NAME.fullmatch(name) or _ILLEGAL_HEADER_VALUE.search(value):
            return None
        lines.append(f"{name}: {value}")
    try:
        head = "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        return None
    return head.replace(b"%", b"%%") + b"\r\nContent-Length: %d\r\n\r\n"


class BulkSession(requests.Session):
    """A `requests.Session` whose plain bytes POSTs to the bulk URLs skip requests' per-call machinery.

    For every other call, and whenever the session is not in its plain state (cookies held, response
    hooks, a custom adapter) it is an ordinary Session. On the fast path, what requests would do per call
    is done once per URL, the first time it is used, with requests' own functions: `prepare_request`
    (session headers, netrc auth), `merge_environment_settings(url, {}, ...)` (proxies from
    HTTP(S)_PROXY/NO_PROXY, the CA bundle from REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE) and the adapter's
    `get_connection_with_tls_context`/`cert_verify`/`request_url` (the same urllib3 pool, verified TLS
    with the same CA bundle, the same proxy).

    Each call then takes a connection from that pool. A connection the pool has already opened (so TLS
    was set up and verified by urllib3) is used on the *wire path*: the request is written in one
    `sendall` and the answer read as http.client reads it (`_Wire`), without urllib3's and http.client's
    per-call objects. A new connection (and any proxied pool) goes through the pool's `urlopen` with
    `HTTPAdapter.send`'s arguments, which connects and verifies. Either way the errors are the ones
    requests raises for the same failure (SSLError, ConnectTimeout, ReadTimeout, ConnectionError,
    ChunkedEncodingError, ...), and the connection goes back to the pool (closed after an error). A
    redirect answer is sent again the ordinary way, so requests follows it as before; a Set-Cookie
    answer is stored in the session's jar, after which calls take the ordinary path. Thread-safe like
    requests' own pools.
    """

    FAST_KWARGS = frozenset({"data", "params", "timeout", "stream"})
    WIRE = True  # False: every bulk call goes through urlopen

    def __init__(self, fast_urls: Iterable[str] = ()) -> None:
        super().__init__()
        self.fast_urls = frozenset(fast_urls)
        self._routes: dict[str, _Route] = {}
        self._routes_lock = threading.Lock()
        self._timeouts: dict[Any, Urllib3Timeout] = {}

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """`requests.Session.request`, with the fast path for plain bytes POSTs to the bulk URLs."""
        if url in self.fast_urls and method == "POST" and not args and self.FAST_KWARGS.issuperset(kwargs):
            data = kwargs.get("data")
            if type(data) is bytes and not kwargs.get("params") and not kwargs.get("stream"):
                resp = self._post(url, data, kwargs.get("timeout"))
                if resp is not None:
                    return resp
        return super().request(method, url, *args, **kwargs)

    def close(self) -> None:
        """Close the bulk routes' pools too (urllib3 2 only forgets pools on clear), then the adapters."""
        with self._routes_lock:
            routes, self._routes = list(self._routes.values()), {}
        for route in routes:
            route.pool.close()
        super().close()

    def _route_for(self, url: str) -> _Route | None:
        """The route of a bulk URL (None: take the ordinary path, which also raises what requests raises)."""
        route = self._routes.get(url)
        if route is not None and route.pool.pool is not None:  # a pool closed by close() is replaced
            return route
        with self._routes_lock:
            try:
                prepared = self.prepare_request(requests.Request("POST", url, data=b"{}"))
                settings = self.merge_environment_settings(prepared.url, {}, None, None, None)
                adapter = self.get_adapter(prepared.url)
                if type(adapter) is not HTTPAdapter:
                    return None
                verify, cert, proxies = settings["verify"], settings["cert"], settings["proxies"]
                pool = adapter.get_connection_with_tls_context(prepared, verify, proxies=proxies, cert=cert)
                adapter.cert_verify(pool, prepared.url, verify, cert)
                target = adapter.request_url(prepared, proxies)
            except Exception:  # noqa: BLE001 - the ordinary path raises it again, as before
                return None
            headers = {str(k): str(v) for k, v in prepared.headers.items() if k.lower() != "content-length"}
            wire = self.WIRE and _URLLIB3_MAJOR >= 2 and getattr(pool, "proxy", None) is None and \
                hasattr(pool, "_get_conn") and hasattr(pool, "_put_conn")
            route = _Route(pool, target, headers, adapter.max_retries, prepared,
                           _wire_head(pool, target, headers) if wire else None)
            self._routes[url] = route
            return route

    def _timeout(self, timeout: Any) -> Urllib3Timeout:
        resolved = self._timeouts.get(timeout)
        if resolved is None:
            if isinstance(timeout, tuple):
                connect, read = timeout
                resolved = Urllib3Timeout(connect=connect, read=read)
            else:
                resolved = Urllib3Timeout(connect=timeout, read=timeout)
            self._timeouts[timeout] = resolved
        return resolved

    def _post(self, url: str, data: bytes, timeout: Any) -> requests.Response | None:
        """POST as `Session.send` + `HTTPAdapter.send` would (None: not here, take the ordinary path)."""
        if self.hooks["response"] or self.cookies:
            return None
        route = self._route_for(url)
        if route is None:
            return None
        timeout_obj = self._timeout(timeout)
        conn = self._open_connection(route) if route.head is not None else None
        if conn is not None:
            status, reason, headers, content = self._exchange(route, conn, data, timeout_obj)
            raw = None
        else:
            raw = self._urlopen(route, data, timeout_obj)
            content = self._read(raw)
            status, reason, headers = raw.status, raw.reason, raw.headers
        if status in REDIRECT_STATI and "location" in headers:
            return None  # not applied by the server: sent again the ordinary way, which follows it
        # HTTPAdapter.build_response
        resp = requests.Response()
        resp.status_code = status
        resp.headers = CaseInsensitiveDict(headers)
        resp.encoding = get_encoding_from_headers(resp.headers)
        resp.raw = raw
        resp.reason = reason
        resp.url = route.prepared.url
        resp._content = content  # noqa: SLF001 - what Response.content stores
        resp._content_consumed = True  # noqa: SLF001
        if "set-cookie" in headers:
            source = raw if raw is not None else _cookie_source(headers)
            extract_cookies_to_jar(resp.cookies, route.prepared, source)
            extract_cookies_to_jar(self.cookies, route.prepared, source)
        return resp

    # ------------------------------------------------------------ through urlopen (new connections, proxies)
    @staticmethod
    def _urlopen(route: _Route, data: bytes, timeout: Urllib3Timeout) -> Any:
        """`HTTPAdapter.send`: the same urlopen arguments and the same exception mapping."""
        headers = route.headers.copy()
        headers["Content-Length"] = str(len(data))
        try:
            return route.pool.urlopen(method="POST", url=route.target, body=data, headers=headers, redirect=False,
                                      assert_same_host=False, preload_content=False, decode_content=False,
                                      retries=route.retries, timeout=timeout, chunked=False)
        except (ProtocolError, OSError) as err:
            raise requests.ConnectionError(err) from None
        except MaxRetryError as exc:
            reason = exc.reason
            if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
                raise requests.ConnectTimeout(exc) from None
            if isinstance(reason, ResponseError):
                raise requests.exceptions.RetryError(exc) from None
            if isinstance(reason, Urllib3ProxyError):
                raise requests.exceptions.ProxyError(exc) from None
            if isinstance(reason, Urllib3SSLError):
                raise requests.exceptions.SSLError(exc) from None
            raise requests.ConnectionError(exc) from None
        except ClosedPoolError as exc:
            raise requests.ConnectionError(exc) from None
        except Urllib3ProxyError as exc:
            raise requests.exceptions.ProxyError(exc) from None
        except (Urllib3SSLError, Urllib3HTTPError) as exc:
            if isinstance(exc, Urllib3SSLError):
                raise requests.exceptions.SSLError(exc) from None
            if isinstance(exc, ReadTimeoutError):
                raise requests.ReadTimeout(exc) from None
            if isinstance(exc, Urllib3InvalidHeader):
                raise requests.exceptions.InvalidHeader(exc) from None
            raise

    @staticmethod
    def _read(raw: Any) -> bytes:
        """`Response.content` as `Session.send` reads it: the same exception mapping."""
        try:
            return raw.read(decode_content=True) or b""
        except ProtocolError as exc:
            raise ChunkedEncodingError(exc) from None
        except DecodeError as exc:
            raise ContentDecodingError(exc) from None
        except ReadTimeoutError as exc:
            raise requests.ConnectionError(exc) from None
        except Urllib3SSLError as exc:
            raise requests.exceptions.SSLError(exc) from None

    # ------------------------------------------------------------ the wire path (open pooled connections)
    @staticmethod
    def _open_connection(route: _Route) -> Any:
        """A pooled connection that urllib3 has opened (and checked for a drop), or None."""
        pool = route.pool
        try:
            conn = pool._get_conn()  # noqa: SLF001 - what urlopen does first
        except Exception:  # noqa: BLE001 - e.g. a closed pool: urlopen raises what requests would
            return None
        if getattr(conn, "sock", None) is None:
            pool._put_conn(conn)  # noqa: SLF001 - urlopen takes it again and connects it
            return None
        return conn

    @staticmethod
    def _exchange(route: _Route, conn: Any, data: bytes,
                  timeout: Urllib3Timeout) -> tuple[int, str, HTTPHeaderDict, bytes]:
        """One request on an open connection; raises what requests raises for the same failure.

        As urllib3's `_make_request` and the read in `Response.content`: a broken pipe or reset while
        sending is ignored (the server may have answered and closed, e.g. 413); a timeout before the
        answer's head is a ReadTimeout, during its body a ConnectionError; a TLS error is an SSLError;
        a dropped connection or a malformed head is a ConnectionError; a broken body is a
        ChunkedEncodingError. The connection goes back to the pool, closed unless the answer keeps it
        alive and was read exactly.
        """
        pool, sock = route.pool, conn.sock
        reusable = False
        try:
            read_timeout = timeout.read_timeout
            if sock.gettimeout() != read_timeout:
                sock.settimeout(read_timeout)
            try:
                sock.sendall((route.head % len(data)) + data)  # type: ignore[operator]
            except BrokenPipeError:
                pass
            except ssl.SSLError as exc:
                raise requests.exceptions.SSLError(exc) from None
            except OSError as exc:
                if exc.errno not in (errno.EPROTOTYPE, errno.ECONNRESET):
                    raise requests.ConnectionError(exc) from None
            wire = _Wire(sock)
            try:
                version, status, reason, headers = wire.head()
            except TimeoutError as exc:
                raise requests.ReadTimeout(exc) from None
            except ssl.SSLError as exc:
                raise requests.exceptions.SSLError(exc) from None
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise requests.ReadTimeout(exc) from None
                raise requests.ConnectionError(exc) from None
            except (_Closed, _Malformed) as exc:
                raise requests.ConnectionError(f"Connection aborted: {exc!r}") from None
            try:
                content, keep = wire.body(status, headers)
            except TimeoutError as exc:
                raise requests.ConnectionError(exc) from None
            except ssl.SSLError as exc:
                if "read operation timed out" in str(exc):
                    raise requests.ConnectionError(exc) from None
                raise requests.exceptions.SSLError(exc) from None
            except (OSError, _Closed, _Malformed) as exc:
                raise ChunkedEncodingError(f"Connection broken: {exc!r}") from None
            reusable = keep and _keep_alive(version, headers) and not wire.buf
            encoding = headers.get("content-encoding")
            if encoding and encoding.lower() != "identity" and content:
                content = _decode(content, headers, status)
            return status, reason, headers, content
        finally:
            if not reusable:
                conn.close()
            pool._put_conn(conn)  # noqa: SLF001 - as the response's release does


def _decode(content: bytes, headers: HTTPHeaderDict, status: int) -> bytes:
    """Undo a Content-Encoding with urllib3's own decoders (as `read(decode_content=True)` does)."""
    try:
        return Urllib3Response(body=io.BytesIO(content), headers=headers, status=status, preload_content=False,
                               decode_content=True).read() or b""
    except DecodeError as exc:
        raise ContentDecodingError(exc) from None


def _cookie_source(headers: HTTPHeaderDict) -> Any:
    """What `extract_cookies_to_jar` reads from a urllib3 response: its http.client message."""
    message = HTTPMessage()
    for name in ("Set-Cookie", "Set-Cookie2"):
        for value in headers.getlist(name):
            message[name] = value
    return SimpleNamespace(_original_response=SimpleNamespace(msg=message))
