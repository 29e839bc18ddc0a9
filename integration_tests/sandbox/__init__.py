"""A local HTTP sandbox that behaves like Iterable's list API, with its limits and faults."""

from .client import SandboxClient
from .server import SandboxServer

__all__ = ["SandboxClient", "SandboxServer"]
