"""The bulk fast path of `IterableClient` (`bulk_session.BulkSession`): same requests, answers, errors and settings as
plain `requests`, over real sockets.

* against the sandbox: bulk calls take the fast path (the wire path once a connection is open), land, and
  stay correct from many threads and mixed with ordinary calls;
* the bytes on the wire: plain requests, the urlopen path and the wire path send identical requests;
* a scripted HTTP/1.1 server answers in the ways http.client has to cope with (chunked, 100 Continue,
  Connection: close, HTTP/1.0, gzip, folded headers, truncated bodies, timeouts, malformed heads,
  redirects, cookies): the fast path returns or raises exactly what plain requests does;
* environment settings: HTTP_PROXY/NO_PROXY and the CA bundle variables (REQUESTS_CA_BUNDLE,
  CURL_CA_BUNDLE, SSL_CERT_FILE) give the bulk path the same outcome as plain requests, through a TLS relay
  in front of the sandbox; certificate verification stays on.
"""

from __future__ import annotations

import gzip
import http.client
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from requests.adapters import HTTPAdapter

from destination_iterable import client as client_module
from destination_iterable.bulk_session import BulkSession
from destination_iterable.client import IterableClient
from destination_iterable.errors import ConfigError
from destination_iterable.rows import EncodedRows
from integration_tests.conftest import TEST_API_KEY

SUBSCRIBE = "/api/lists/subscribe"
UNSUBSCRIBE = "/api/lists/unsubscribe"
PAYLOAD = orjson.dumps({"listId": 1, "subscribers": [{"email": f"p{n}@example.com", "dataFields": {"n": n}}
                                                      for n in range(200)]})
OK_BODY = b'{"successCount":1,"failCount":0}'


# ------------------------------------------------------------------------------------------ spies
class PathSpy:
    """Counts which way bulk POSTs went: the wire path, urlopen (new connections), or plain requests."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.wire = self.urlopen = self.ordinary = 0
        real_exchange, real_urlopen = BulkSession._exchange, BulkSession._urlopen
        real_request = requests.Session.request
        spy = self

        def exchange(*args: Any, **kwargs: Any) -> Any:
            spy.wire += 1
            return real_exchange(*args, **kwargs)

        def urlopen(*args: Any, **kwargs: Any) -> Any:
            spy.urlopen += 1
            return real_urlopen(*args, **kwargs)

        def request(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if method == "POST" and url.endswith((SUBSCRIBE, UNSUBSCRIBE)):
                spy.ordinary += 1
            return real_request(self, method, url, *args, **kwargs)

        monkeypatch.setattr(BulkSession, "_exchange", staticmethod(exchange))
        monkeypatch.setattr(BulkSession, "_urlopen", staticmethod(urlopen))
        monkeypatch.setattr(requests.Session, "request", request)


def members(n: int, tag: str) -> list[dict[str, Any]]:
    return [{"email": f"{tag}.{i}@example.com", "dataFields": {"first_name": "Zoë", "plan": "pro", "i": i}}
            for i in range(n)]


# ------------------------------------------------------------------------------------------ against the sandbox
def test_bulk_calls_take_the_wire_path_and_land_in_the_sandbox(sandbox, monkeypatch):
    """8 threads x 6 subscribes and an unsubscribe each, with list reads in between on the same pool: every
    member lands, nothing goes through plain requests, and only new connections go through urlopen."""
    spy = PathSpy(monkeypatch)
    client = IterableClient(sandbox.url, TEST_API_KEY, timeout_seconds=10)
    list_id = client.create_list("fastpath", "")
    errors: list[BaseException] = []

    def sender(t: int) -> None:
        try:
            for batch in range(6):
                rows = members(50, f"t{t}b{batch}")
                assert client.subscribe(list_id, rows, stream="s").success_count == 50
                client.list_lists()
            removals = [{"email": row["email"]} for row in members(50, f"t{t}b0")]
            assert client.unsubscribe(list_id, removals, stream="s").success_count == 50
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    expected = {f"t{t}b{b}.{i}@example.com" for t in range(8) for b in range(1, 6) for i in range(50)}
    assert sandbox.client.member_emails(list_id) == expected
    assert spy.ordinary == 0
    assert spy.wire + spy.urlopen == 8 * 7
    assert spy.urlopen <= 8 and spy.wire >= 8 * 7 - 8, (spy.urlopen, spy.wire)  # create_list opened one
    assert client.stats["requests"] >= 8 * 7 and client.stats["errors"] == 0
    client.close()


def test_bulk_calls_work_again_after_close(sandbox, monkeypatch):
    """As with plain requests, a closed client's session opens a new pool when used again."""
    spy = PathSpy(monkeypatch)
    client = IterableClient(sandbox.url, TEST_API_KEY, timeout_seconds=10)
    list_id = client.create_list("reopen", "")
    client.subscribe(list_id, members(3, "a"))
    client.close()
    client.subscribe(list_id, members(3, "b"))
    client.subscribe(list_id, members(3, "c"))
    assert len(sandbox.client.member_emails(list_id)) == 9
    assert (spy.ordinary, spy.urlopen, spy.wire) == (0, 1, 2)  # only the new pool's first connection: urlopen


def test_the_fast_path_can_be_switched_off_and_then_plain_requests_is_used(sandbox, monkeypatch):
    """Cookies held by the session (or response hooks) send bulk calls the ordinary way."""
    spy = PathSpy(monkeypatch)
    client = IterableClient(sandbox.url, TEST_API_KEY, timeout_seconds=10)
    list_id = client.create_list("ordinary", "")
    client.session.cookies.set("lb", "1")
    client.subscribe(list_id, members(2, "x"))
    client.session.cookies.clear()
    client.session.hooks["response"].append(lambda r, *a, **k: r)
    client.subscribe(list_id, members(2, "y"))
    assert spy.ordinary == 2 and spy.wire == spy.urlopen == 0
    assert len(sandbox.client.member_emails(list_id)) == 4


def test_rows_encoded_ahead_are_sent_as_the_same_bytes_and_land(sandbox, scripted):
    """A body built from encoded rows is byte for byte the one built from the row dicts (subscribe with
    updateExistingUsersOnly, unsubscribe), and the sandbox applies it."""
    server = scripted(lambda conn, index, path: ([answer()], False))
    client = IterableClient(server.url, TEST_API_KEY, timeout_seconds=5)
    rows = members(30, "enc")
    removals = [{"email": row["email"]} for row in rows[:10]]
    client.subscribe(7, rows, update_existing_users_only=True)
    client.subscribe(7, EncodedRows(rows), update_existing_users_only=True)
    client.unsubscribe(7, removals)
    client.unsubscribe(7, EncodedRows(removals))
    bodies = [body for _, _, _, body in server.requests]
    assert bodies[0] == bodies[1] and bodies[2] == bodies[3] and bodies[0] != bodies[2]
    assert orjson.loads(bodies[1]) == {"listId": 7, "subscribers": rows, "updateExistingUsersOnly": True}

    client = IterableClient(sandbox.url, TEST_API_KEY, timeout_seconds=5)
    list_id = client.create_list("encoded", "")
    assert client.subscribe(list_id, EncodedRows(rows)).success_count == 30
    assert client.unsubscribe(list_id, EncodedRows(removals)).success_count == 10
    assert sandbox.client.member_emails(list_id) == {row["email"] for row in rows[10:]}
    with pytest.raises(client_module.BatchTooLargeError):
        client.subscribe(list_id, EncodedRows(members(1001, "many")))


# ------------------------------------------------------------------------------------------ scripted server
Part = bytes | float  # bytes to send, or seconds to wait
Script = Callable[[int, int, str], tuple[list[Part], bool]]  # (connection, request on it, path) -> (parts, close)


class ScriptedServer:
    """An HTTP/1.1 server on raw sockets: reads each request (Content-Length bodies), records it, and answers
    as `script` says, per connection and per request on that connection."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[tuple[int, int, bytes, bytes]] = []  # (connection, request, head, body)
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._open.append(conn)
            number = self.connections
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buf, index = b"", 0
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    buf += conn.recv(65536)
                body, buf = buf[:length], buf[length:]
                self.requests.append((number, index, head, body))
                path = head.split(b" ")[1].decode()
                parts, close = self.script(number, index, path)
                for part in parts:
                    if isinstance(part, float):
                        time.sleep(part)
                    else:
                        conn.sendall(part)
                index += 1
                if close:
                    return
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self._sock.close()
        for conn in self._open:
            try:
                conn.close()
            except OSError:
                pass


def answer(status: str = "200 OK", body: bytes = OK_BODY, headers: str = "Content-Type: application/json",
           length: bool = True) -> bytes:
    head = f"HTTP/1.1 {status}\r\n{headers}\r\n" + (f"Content-Length: {len(body)}\r\n" if length else "")
    return head.encode("latin-1") + b"\r\n" + body


def chunked(*pieces: bytes, ext: bool = False, trailer: bool = False) -> bytes:
    out = b""
    for piece in pieces:
        out += f"{len(piece):x}{';ext=1' if ext else ''}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n" + (b"X-Trailer: 1\r\n" if trailer else b"") + b"\r\n"


GZIPPED = gzip.compress(OK_BODY)
SCENARIOS: dict[str, tuple[list[Part], bool]] = {
    "content_length": ([answer()], False),
    "chunked_with_extensions_and_trailer": ([b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                             b"Transfer-Encoding: chunked\r\n\r\n",
                                             chunked(OK_BODY[:10], OK_BODY[10:], ext=True, trailer=True)], False),
    "trickled_byte_by_byte": ([part for byte in answer() for part in (bytes([byte]), 0.001)], False),
    "continue_100_first": ([b"HTTP/1.1 100 Continue\r\n\r\n", answer()], False),
    "connection_close": ([answer(headers="Content-Type: application/json\r\nConnection: close")], True),
    "http10_read_until_close": ([b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + OK_BODY], True),
    "http11_no_length_until_close": ([answer(length=False)], True),
    "gzip_body": ([answer(body=GZIPPED, headers="Content-Type: application/json\r\nContent-Encoding: gzip")],
                  False),
    "odd_but_valid_headers": ([answer(headers="From envelope\r\nContent-Type: application/json\r\nX-A: 1\r\n"
                                              "X-A: 2\r\nX-Folded: one\r\n  two\r\n\tthree\r\nX-Spaced:   v   \r\n"
                                              ":no-name\r\nX-Empty:\r\nX-Latin: caf\xe9\r\nx-a: 3")], False),
    "a_non_header_line_ends_the_headers": ([answer(headers="Content-Type: application/json\r\nContent-Length: 33"
                                                           "\r\nNo colon here\r\nX-After: 1", length=False)], False),
    "connection_header_variants": ([answer(headers="Connection: Keep-Alive, Upgrade\r\nKeep-Alive: timeout=5")],
                                   False),
    "bare_newlines": ([b"HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: "
                       + str(len(OK_BODY)).encode() + b"\n\n" + OK_BODY], False),
    "status_429_text": ([answer("429 Too Many Requests", b"Rate limit exceeded.", "Content-Type: text/plain")],
                        False),
    "status_503_html_charset": ([answer("503 Service Unavailable", "<html>nö</html>".encode(),
                                        "Content-Type: text/html; charset=utf-8")], False),
    "status_204_no_body": ([b"HTTP/1.1 204 No Content\r\n\r\n"], False),
    "no_reason_phrase": ([b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}"], False),
    "answer_then_close_without_connection_close": ([answer()], True),
    "bad_status_line": ([b"HTTPS/1.1 200 OK\r\n\r\n"], True),
    "http2_status_line": ([b"HTTP/2 200\r\nContent-Length: 2\r\n\r\n{}"], True),
    "closed_without_answer": ([], True),
    "closed_in_head": ([b"HTTP/1.1 200 OK\r\nContent-Le"], True),
    "truncated_body": ([b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"successCount\":1"], True),
    "bad_chunk_size": ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"], True),
    "chunked_cut_off": ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n{\"success"], True),
    "bad_gzip": ([answer(body=b"not gzip at all", headers="Content-Encoding: gzip")], False),
    "slow_head": ([1.2, answer()], True),
    "slow_body": ([b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"suc", 1.2, b"x" * 35], True),
    "too_many_headers": ([b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(120))
                          + b"Content-Length: 2\r\n\r\n{}"], True),
    "overlong_header_line": ([b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\nContent-Length: 2\r\n\r\n{}"],
                             True),
}


def plain_session() -> requests.Session:
    """A plain requests session set up like IterableClient's (headers, adapter, no retries)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({"Api-Key": TEST_API_KEY, "Content-Type": "application/json",
                            "User-Agent": f"airbyte-destination-iterable/{client_module.__version__}"})
    return session


def post(session: requests.Session, url: str, timeout: tuple[float, float] = (2.0, 0.5)) -> requests.Response:
    """The call `IterableClient._attempt` makes."""
    return session.request("POST", url, data=PAYLOAD, params=None, timeout=timeout, stream=False)


def outcome(session: requests.Session, url: str) -> tuple[Any, ...]:
    """What a second request on a kept-alive connection gives: the answer's parts, or the exception's type."""
    first = post(session, url)
    assert first.status_code == 200 and first.content == OK_BODY
    try:
        resp = post(session, url)
    except requests.RequestException as exc:
        for text in (str(exc), repr(exc)):
            assert TEST_API_KEY not in text
        return ("raised", type(exc))
    headers = {k.lower(): v for k, v in resp.headers.items()}
    return ("answered", resp.status_code, resp.reason, resp.content, resp.text, resp.encoding, headers,
            resp.url.replace(url, "<url>"), resp.ok)


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_answers_and_errors_are_the_same_as_plain_requests(scripted, monkeypatch, name):
    """Each scenario is the answer to the second request of a kept-alive connection (so the fast path uses
    its wire path); plain requests and the fast path must give the same answer or raise the same type."""
    parts, close = SCENARIOS[name]
    results = []
    for fast in (False, True):
        server = scripted(lambda conn, index, path: (parts, close) if index == 1 else ([answer()], False))
        spy = PathSpy(monkeypatch)
        url = server.url + SUBSCRIBE
        session = BulkSession([url]) if fast else plain_session()
        if fast:
            template = plain_session()
            session.headers, session.adapters = template.headers, template.adapters
        results.append(outcome(session, url))
        if fast:
            assert spy.ordinary == 0 and spy.urlopen == 1 and spy.wire == 1, (spy.ordinary, spy.urlopen, spy.wire)
            heads = [head for _, _, head, _ in server.requests]
            assert len(heads) == 2 and heads[0] == heads[1], heads
        session.close()
        monkeypatch.undo()
    assert results[1] == results[0]


def test_a_closed_connection_is_not_reused_and_a_kept_one_is(scripted):
    """After `Connection: close` (or an error) the next request opens a new connection; otherwise one
    connection serves every request."""
    def script(conn: int, index: int, path: str) -> tuple[list[Part], bool]:
        if conn == 0 and index == 1:
            return [answer(headers="Connection: close")], False  # said close, but keeps the socket open
        return [answer()], False

    server = scripted(script)
    client = IterableClient(server.url, TEST_API_KEY, timeout_seconds=5)
    for _ in range(5):
        assert client.subscribe(1, members(1, "k")).success_count == 1
    assert server.connections == 2
    assert [(c, i) for c, i, _, _ in server.requests] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]


def test_the_three_ways_send_identical_bytes(scripted, monkeypatch):
    """Plain requests, the urlopen path (a new connection) and the wire path write the same request."""
    server = scripted(lambda conn, index, path: ([answer()], False))
    url = server.url + SUBSCRIBE
    plain = plain_session()
    post(plain, url)
    spy = PathSpy(monkeypatch)
    client = IterableClient(server.url, TEST_API_KEY, timeout_seconds=5)
    client.session.request("POST", url, data=PAYLOAD, params=None, timeout=client.timeout, stream=False)
    client.session.request("POST", url, data=PAYLOAD, params=None, timeout=client.timeout, stream=False)
    assert (spy.urlopen, spy.wire, spy.ordinary) == (1, 1, 0)
    (_, _, plain_head, plain_body), (_, _, open_head, open_body), (_, _, wire_head, wire_body) = server.requests
    assert plain_head == open_head == wire_head, (plain_head, open_head, wire_head)
    assert plain_body == open_body == wire_body == PAYLOAD
    assert b"Api-Key: " + TEST_API_KEY.encode() in wire_head and b"Host: 127.0.0.1:" in wire_head


def test_a_redirect_is_followed_as_plain_requests_follows_it(scripted, monkeypatch):
    """A 307 is not applied by the server: the fast path sends the request again the ordinary way, and
    requests follows the redirect (same final answer; the new location gets the same body)."""
    moved = SUBSCRIBE + "2"

    def script(conn: int, index: int, path: str) -> tuple[list[Part], bool]:
        if path == SUBSCRIBE and index >= 1:
            return [answer("307 Temporary Redirect", b"", f"Location: {moved}")], False
        return [answer()], False

    results = []
    for fast in (False, True):
        server = scripted(script)
        url = server.url + SUBSCRIBE
        session: requests.Session = BulkSession([url]) if fast else plain_session()
        if fast:
            template = plain_session()
            session.headers, session.adapters = template.headers, template.adapters
        results.append(outcome(session, url))
        redirected = [body for _, _, head, body in server.requests if head.split(b" ")[1] == moved.encode()]
        assert redirected == [PAYLOAD]
        session.close()
    assert results[0] == results[1] and results[0][1] == 200


def test_cookies_are_kept_as_plain_requests_keeps_them(scripted, monkeypatch):
    """A Set-Cookie answer on the wire path lands in the session's jar, and the next request carries it
    (through the ordinary path), as with plain requests."""
    def script(conn: int, index: int, path: str) -> tuple[list[Part], bool]:
        if index == 1:
            return [answer(headers="Content-Type: application/json\r\nSet-Cookie: lb=abc; Path=/\r\n"
                                   "Set-Cookie: other=1; Path=/")], False
        return [answer()], False

    heads = []
    for fast in (False, True):
        server = scripted(script)
        url = server.url + SUBSCRIBE
        session: requests.Session = BulkSession([url]) if fast else plain_session()
        if fast:
            template = plain_session()
            session.headers, session.adapters = template.headers, template.adapters
        outcome(session, url)
        post(session, url)
        assert session.cookies.get_dict() == {"lb": "abc", "other": "1"}
        heads.append(server.requests[-1][2].replace(server.url.split("//")[1].encode(), b"<host>"))
        session.close()
    assert b"Cookie: lb=abc; other=1\r\n" in heads[1] and heads[0] == heads[1]


def test_an_answer_sent_before_the_body_was_read_is_returned(scripted):
    """The server answers 413 as soon as it has the head, then reads the rest: the client gets the 413
    (BatchTooLargeError), on the wire path too."""
    def script(conn: int, index: int, path: str) -> tuple[list[Part], bool]:
        if index == 1:
            return [answer("413 Payload Too Large", b"<html>too large</html>", "Content-Type: text/html")], False
        return [answer()], False

    server = scripted(script)
    client = IterableClient(server.url, TEST_API_KEY, timeout_seconds=5)
    client.subscribe(1, members(1, "a"))
    with pytest.raises(client_module.BatchTooLargeError):
        client.subscribe(1, members(1000, "b"))


# ------------------------------------------------------------------------------------------ environment settings
class ForwardProxy:
    """A plain-http forward proxy (absolute-URI requests) on loopback; counts what it forwarded."""

    def __init__(self) -> None:
        self.forwarded: list[tuple[str, str]] = []
        outer = self

        def script(conn: int, index: int, path: str) -> tuple[list[Part], bool]:
            head, body = outer.server.requests[-1][2], outer.server.requests[-1][3]
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ")
            outer.forwarded.append((method, target))
            url = http.client.urlsplit(target)
            upstream = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.lower() not in ("proxy-connection", "proxy-authorization", "connection", "host"):
                    headers[name] = value.strip()
            upstream.request(method, url.path + (f"?{url.query}" if url.query else ""), body=body, headers=headers)
            resp = upstream.getresponse()
            data = resp.read()
            upstream.close()
            status = f"{resp.status} {resp.reason}"
            ctype = resp.getheader("Content-Type") or "application/json"
            return [answer(status, data, f"Content-Type: {ctype}")], False

        self.server = ScriptedServer(script)
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()


@pytest.mark.parametrize("bypass", [False, True])
def test_environment_proxies_are_honoured(sandbox, monkeypatch, bypass):
    """HTTP_PROXY sends the bulk calls through the proxy; NO_PROXY for the host sends them directly."""
    proxy = ForwardProxy()
    try:
        admin = IterableClient(sandbox.url, TEST_API_KEY)
        list_id = admin.create_list("proxied", "")
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
                     "NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        if bypass:
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        spy = PathSpy(monkeypatch)
        client = IterableClient(sandbox.url, TEST_API_KEY, timeout_seconds=10)
        for n in range(3):
            assert client.subscribe(list_id, members(5, f"p{n}")).success_count == 5
        subscribes = [f for f in proxy.forwarded if f[1].endswith(SUBSCRIBE)]
        assert subscribes == ([] if bypass else [("POST", sandbox.url + SUBSCRIBE)] * 3)
        assert len(sandbox.client.member_emails(list_id)) == 15
        assert spy.ordinary == 0
        if bypass:
            assert (spy.urlopen, spy.wire) == (1, 2)  # direct: the wire path once a connection is open
        else:
            assert (spy.urlopen, spy.wire) == (3, 0)  # through a proxy: always urlopen
    finally:
        proxy.close()


class TlsRelay:
    """TLS on loopback (a self-signed certificate for 127.0.0.1) relayed to the sandbox's plain port."""

    def __init__(self, upstream_port: int, cert: Path, key: Path) -> None:
        self.upstream_port = upstream_port
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._sock = context.wrap_socket(socket.create_server(("127.0.0.1", 0)), server_side=True)
        self.url = f"https://127.0.0.1:{self._sock.getsockname()[1]}"
        self.handshakes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except ssl.SSLError:
                continue  # the client refused the certificate
            except OSError:
                return
            self.handshakes += 1
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._sock.close()


@pytest.fixture(scope="module")
def certificate() -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                        "-out", str(cert)], check=True, capture_output=True, timeout=60)
        yield cert, key


@pytest.mark.parametrize("env", ["none", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "empty_bundles"])
def test_ca_bundle_settings_give_the_same_outcome_as_plain_requests(sandbox, certificate, monkeypatch, env):
    """Over TLS (a relay with a certificate certifi does not trust, in front of the sandbox): with the CA
    bundle variables requests honours, the bulk calls verify against that bundle and work (on the wire
    path after the first); without them (or with variables requests ignores) they fail as plain requests
    fails, as a ConfigError, and nothing reaches the sandbox. Verification is never switched off."""
    cert, key = certificate
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "HTTPS_PROXY", "https_proxy",
                 "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    if env == "empty_bundles":
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
        monkeypatch.setenv("CURL_CA_BUNDLE", "")
    elif env != "none":
        monkeypatch.setenv(env, str(cert))
    admin = IterableClient(sandbox.url, TEST_API_KEY)
    list_id = admin.create_list("tls", "")
    relay = TlsRelay(sandbox.port, cert, key)
    try:
        body = orjson.dumps({"listId": list_id, "subscribers": members(2, "plain")})
        try:
            plain_ok = plain_session().post(relay.url + SUBSCRIBE, data=body, timeout=(5, 10)).status_code == 200
        except requests.exceptions.SSLError:
            plain_ok = False
        assert plain_ok == (env in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")) or env == "SSL_CERT_FILE"
        before = sandbox.client.member_emails(list_id)
        spy = PathSpy(monkeypatch)
        client = IterableClient(relay.url, TEST_API_KEY, timeout_seconds=10, retry_max_seconds=2)
        assert client.session.verify is True
        if plain_ok:
            for n in range(3):
                assert client.subscribe(list_id, members(4, f"tls{n}")).success_count == 4
            assert spy.ordinary == 0 and (spy.urlopen, spy.wire) == (1, 2)
            assert len(sandbox.client.member_emails(list_id) - before) == 12
        else:
            with pytest.raises(ConfigError, match="certificate"):
                client.subscribe(list_id, members(4, "refused"))
            assert sandbox.client.member_emails(list_id) == before
        client.close()
    finally:
        relay.close()
