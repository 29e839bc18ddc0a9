"""The request head of `bulk_session.BulkSession`'s wire path is byte for byte what urllib3 writes on the same pool's
connections (hosts with and without the scheme's default port, IPv6, a trailing dot), and headers http.client
would refuse or encode differently keep the bulk calls on urllib3. (Answers and errors are compared with plain
requests over real sockets in integration_tests/test_client_fastpath.py.)"""

from __future__ import annotations

import pytest
import urllib3

from destination_iterable.bulk_session import _wire_head

TARGET = "/api/lists/subscribe"
HEADERS = {"User-Agent": "airbyte-destination-iterable/0.1.0", "Accept-Encoding": "gzip, deflate",
           "Accept": "*/*", "Connection": "keep-alive", "Api-Key": "k-123%d", "Content-Type": "application/json"}


class CaptureSocket:
    """Stands in for a connected socket: keeps what is sent."""

    def __init__(self) -> None:
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        self.sent += bytes(data)

    def settimeout(self, timeout: float | None) -> None:
        """Accepted and ignored."""

    def close(self) -> None:
        """Nothing to close."""


def urllib3_head(pool: urllib3.HTTPConnectionPool, body: bytes) -> bytes:
    """What urllib3's connection writes for this request, up to the body."""
    conn = pool._new_conn()
    sock = CaptureSocket()
    conn.sock = sock
    conn.request("POST", TARGET, body=body, headers={**HEADERS, "Content-Length": str(len(body))})
    assert sock.sent.endswith(body)
    return sock.sent[: len(sock.sent) - len(body)]


@pytest.mark.parametrize("scheme,host,port", [
    ("http", "127.0.0.1", 8080), ("http", "localhost", 80), ("http", "::1", 8080), ("http", "127.0.0.1", None),
    ("https", "api.iterable.com", 443), ("https", "api.eu.iterable.com", 8443), ("https", "proxy.example.com.", 443),
    ("https", "::1", 443),
])
def test_the_wire_head_is_what_urllib3_writes(scheme, host, port):
    pool = urllib3.connection_from_url(f"{scheme}://{'[' + host + ']' if ':' in host else host}"
                                       f"{':' + str(port) if port else ''}")
    for size in (0, 7, 270_000):
        head = _wire_head(pool, TARGET, HEADERS)
        assert head is not None
        assert head % size == urllib3_head(pool, b"x" * size)


@pytest.mark.parametrize("headers", [
    {**HEADERS, "Api-Key": "bad\r\nInjected: 1"},
    {**HEADERS, "Api-Key": "bad\nvalue"},
    {**HEADERS, "Bad:Name": "v"},
    {**HEADERS, " Leading": "v"},
    {**HEADERS, "Api-Key": "naïve-ключ"},
])
def test_headers_http_client_would_refuse_or_encode_differently_are_left_to_urllib3(headers):
    assert _wire_head(urllib3.connection_from_url("https://api.iterable.com"), TARGET, headers) is None


def test_a_target_with_spaces_is_left_to_urllib3():
    assert _wire_head(urllib3.connection_from_url("https://api.iterable.com"), "/api/a b", HEADERS) is None
