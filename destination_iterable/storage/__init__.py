"""Object storage for rejected records (Airbyte's ``object_storage_config``, S3 only). See docs/data-activation.md."""

from destination_iterable.storage.rejected import (
    RejectedRecordStore,
    S3StorageConfig,
    StorageError,
    parse_storage_config,
)

__all__ = ["RejectedRecordStore", "S3StorageConfig", "StorageError", "parse_storage_config"]
