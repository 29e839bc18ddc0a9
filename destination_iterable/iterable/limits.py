"""Iterable's request limits and the batching bounds derived from them: the one place they live."""

MAX_BATCH_ROWS = 1000  # members per subscribe/unsubscribe request (Iterable's documented maximum)
MAX_BODY_BYTES = 4 * 1024 * 1024  # request body size Iterable accepts
BATCH_BYTES_LIMIT = 3_500_000  # a batch is cut when its input lines reach this, leaving room under 4 MB
ROW_BYTES_LIMIT = 3_500_000  # a single member row larger than this cannot be sent at all
DEFAULT_BATCH_MAX_AGE_SECONDS = 10.0  # a partial batch is sent once its oldest record is this old
