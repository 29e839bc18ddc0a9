"""Typed errors shared by every layer. The Airbyte glue maps them to TRACE failure types."""

from __future__ import annotations


class IterableDestinationError(Exception):
    """Base class. `message` is safe to show a user: it never holds the API key or a full email."""

    def __init__(self, message: str, *, stream: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.stream = stream


class ConfigError(IterableDestinationError):
    """The user must change the configuration, the catalog, the key or the Iterable project."""


class TransientError(IterableDestinationError):
    """Iterable could not be reached or kept refusing within the retry budget; a later attempt may work."""


class ApiError(IterableDestinationError):
    """An answer from Iterable that is not a success, classified by the client."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 stream: str | None = None) -> None:
        super().__init__(message, stream=stream)
        self.status = status
        self.code = code


class AuthError(ApiError):
    """401/403: the key is unknown, disabled, or lacks the privilege for this call."""


class InvalidListIdError(ApiError):
    """`error.lists.invalidListId(...)`: the list does not exist (yet, or any more)."""


class BatchTooLargeError(ApiError):
    """400 `BatchTooLarge` or 413: split the batch and retry the halves."""


class BadRequestError(ApiError):
    """400 `BadParams`/`BadJsonBody` and other 4xx that retrying will not fix."""


class RetryBudgetExceeded(TransientError):
    """Retryable failures (429, 5xx, dropped connections, timeouts) lasted longer than the budget."""

    def __init__(self, message: str, *, problem: str = "", stream: str | None = None) -> None:
        super().__init__(message, stream=stream)
        self.problem = problem
