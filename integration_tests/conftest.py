"""Pytest fixtures for the Iterable sandbox: ``sandbox`` and ``sandbox_factory``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integration_tests.sandbox import SandboxServer

TEST_API_KEY = "test-full-key-0123456789abcdef"
TEST_READ_ONLY_KEY = "test-readonly-key-0123456789ab"
NO_LIMITS = {"subscribe_rps": 0, "lists_read_rps": 0, "list_write_rps": 0, "get_users_per_minute": 0,
             "size_per_minute": 0}


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A fresh sandbox on a free loopback port: test keys, no rate limits, no faults."""
    server = SandboxServer(api_key=TEST_API_KEY, read_only_key=TEST_READ_ONLY_KEY, port=0, **NO_LIMITS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    """Start extra sandboxes with ``SandboxServer`` kwargs (keys default to the test keys)."""
    servers: list[SandboxServer] = []

    def start(**kwargs: Any) -> SandboxServer:
        kwargs.setdefault("api_key", TEST_API_KEY)
        kwargs.setdefault("read_only_key", TEST_READ_ONLY_KEY)
        server = SandboxServer(**kwargs).start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
