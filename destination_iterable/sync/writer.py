"""One write run: builds the client, list handles, sinks and pipeline that the Airbyte layer feeds."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from destination_iterable.config import IterableConfig, require_consent
from destination_iterable.errors import ConfigError, TransientError
from destination_iterable.iterable.client import IterableClient
from destination_iterable.iterable.lists import ListDirectory, ListHandle, render_list_name
from destination_iterable.iterable.rate import AdaptiveRateController
from destination_iterable.members.subscriber import SubscriberBuilder
from destination_iterable.sync.pipeline import Interrupted, Journal, Pipeline, stopped_error
from destination_iterable.sync.report import ListReport
from destination_iterable.sync.sink import StreamSink, StreamSpec

logger = logging.getLogger("airbyte")

STOP_GRACE_SECONDS = 20.0
MAX_IN_FLIGHT = 32
METRICS_FILE_ENV = "DESTINATION_ITERABLE_METRICS_FILE"  # benchmarks: where to dump the controller's timeline


def build_client(config: IterableConfig, stop: threading.Event, term: threading.Event | None = None) -> IterableClient:
    """The one client (and rate controller) of a run."""
    controller = AdaptiveRateController(max_rps=config.max_requests_per_second, max_in_flight=MAX_IN_FLIGHT)
    return IterableClient(config.base_url, config.api_key, controller=controller,
                          retry_max_seconds=config.retry_max_seconds, timeout_seconds=config.request_timeout_seconds,
                          stop=stop, term=term, pool_size=MAX_IN_FLIGHT,
                          slow_endpoint_wait=config.slow_endpoint_wait_seconds)


def _mode_label(spec: StreamSpec) -> str:
    if spec.mirrors:
        return "mirror"
    if spec.mode == "update":
        return "update"
    return "remove" if spec.mode == "soft_delete" else "add"


JOURNAL_MARK = " (Airbyte mirror journal, generation "


def journal_name(list_name: str, spec: StreamSpec) -> str:
    """Name of the mirror journal list of one generation of one list."""
    return f"{list_name}{JOURNAL_MARK}{spec.generation_id or spec.minimum_generation_id})"


def build_journal(directory: ListDirectory, client: IterableClient, spec: StreamSpec, target: ListHandle,
                  builder: SubscriberBuilder, stop: threading.Event) -> Journal:
    """Find (resumed attempt) or create this generation's journal; delete journals of older generations."""
    name = journal_name(target.name, spec)
    for stale in directory.names_starting_with(target.name + JOURNAL_MARK):
        if stale.get("name") != name:
            logger.info(f"Deleting the leftover mirror journal '{stale['name']}' (id {stale['id']}) of an earlier "
                        "generation.")
            client.delete_list(int(stale["id"]))
            directory.forget(int(stale["id"]))
    handle = directory.resolve(name, f"Temporary list of Airbyte destination-iterable: members written in this "
                                     f"generation of stream '{spec.name}', so a resumed attempt can mirror exactly. "
                                     "Deleted when the stream completes.", stream=spec.name)
    if not handle.created:
        logger.info(f"Stream '{spec.name}': found mirror journal {handle.label}; this attempt resumes an earlier one.")
    report = ListReport(stream=spec.name, list_name=name, list_id=handle.list_id, created=handle.created)
    sink = StreamSink(spec, handle, report, builder, client=client, dry_run=False, update_existing_users_only=False,
                      stop=stop)
    return Journal(sink=sink, resumed=not handle.created)


def activation_builder(identifier: str) -> SubscriberBuilder:
    """A data-activation stream's rows: `identifier` ("email" or "userId") is the member, every other top-level
    field goes to dataFields (Airbyte's `_airbyte_*`/`_ab_cdc_*` and Iterable's system fields never)."""
    if identifier == "email":
        return SubscriberBuilder("email", None, ("*",))
    return SubscriberBuilder(None, "userId", ("*",))


def build_sinks(config: IterableConfig, specs: list[StreamSpec], client: IterableClient,
                stop: threading.Event, journals: dict | None = None) -> list[StreamSink]:
    """Resolve every stream's list (reuse or create) and make its sink."""
    try:
        builder = SubscriberBuilder(config.email_field or None, config.user_id_field, config.data_fields)
    except ValueError as exc:
        raise ConfigError(f"Setting 'data_fields' is not usable: {exc}") from None
    directory = ListDirectory(client, dry_run=config.dry_run)
    names: dict[str, StreamSpec] = {}
    wanted: dict[str, tuple[str, str]] = {}
    list_names = [spec.list_name or render_list_name(config.list_name_template, spec.name, spec.namespace)
                  for spec in specs]
    for spec, name in zip(specs, list_names, strict=True):
        other = names.get(name)
        if other is not None and (spec.mirrors or other.mirrors):
            raise ConfigError(f"Streams '{other.name}' and '{spec.name}' both map to the list '{name}' and one of "
                              "them mirrors, which would remove the other's members. Give them different list "
                              "names with 'list_name_template' (e.g. include {stream}).", stream=spec.name)
        names[name] = spec
        description = (f"Managed by Airbyte destination-iterable: members of the Airbyte stream '{spec.name}'"
                       + (f" (namespace '{spec.namespace}')" if spec.namespace else "") + ".")
        wanted.setdefault(name, (description, spec.name))
    handles = directory.resolve_all(wanted)
    sinks = []
    activation_builders: dict[str, SubscriberBuilder] = {}
    for spec, name in zip(specs, list_names, strict=True):
        handle = handles[name]
        report = ListReport(stream=spec.name, list_name=name, list_id=handle.list_id, created=handle.created,
                            mode=_mode_label(spec), dry_run=config.dry_run)
        if config.dry_run:
            action = "would be CREATED" if handle.created else f"is reused (id {handle.list_id})"
            logger.info(f"Dry run: stream '{spec.name}' -> list '{name}' {action}, mode {report.mode}.")
        stream_builder = builder
        if spec.identifier is not None:  # data activation: the matching key identifies, every other field is data
            if spec.identifier not in activation_builders:
                activation_builders[spec.identifier] = activation_builder(spec.identifier)
            stream_builder = activation_builders[spec.identifier]
        sinks.append(StreamSink(spec, handle, report, stream_builder, client=client, dry_run=config.dry_run,
                                update_existing_users_only=config.update_existing_users_only or spec.mode == "update",
                                stop=stop))
        if spec.mirrors and not config.dry_run and journals is not None:
            journals[spec.key] = build_journal(directory, client, spec, handle, stream_builder, stop)
    return sinks


class SyncWriter:
    """One write run: the client, the lists, the sinks and the pipeline; fed by the Airbyte layer.

    `emit(token, delivered, rejected)` is called for each checkpoint once every record before it is acknowledged
    (and the rejected records it counts are in the store, when there is one).
    The caller feeds records, checkpoints and stream statuses to `pipeline`, calls `poll` regularly, then
    `finish` and `conclude` at the end of input, and `close` always.
    """

    def __init__(self, config: IterableConfig, specs: list[StreamSpec], emit: Callable[[Any, int, int], None],
                 term: threading.Event | None = None, store: Any = None) -> None:
        require_consent(config)
        self.store = None if config.dry_run else store  # a dry run writes nothing, rejected records included
        self.term = term or threading.Event()
        self.stop = threading.Event()
        self.client = build_client(config, self.stop, self.term)
        journals: dict = {}
        try:
            sinks = build_sinks(config, specs, self.client, self.stop, journals)
        except BaseException:
            self.client.close()
            raise
        self.pipeline = Pipeline(sinks, client=self.client, emit=emit, stop=self.stop, term=self.term,
                                 dry_run=config.dry_run, max_age=config.batch_max_age_seconds,
                                 progress_interval=config.progress_interval_seconds,
                                 mirror_max_removal_percent=config.mirror_max_removal_percent,
                                 prefer_user_id=bool(config.user_id_field) and not config.email_field,
                                 journals=journals, store=self.store)
        if config.dry_run:
            logger.info("Dry run: nothing will be written to Iterable and no state will be echoed.")

    def poll(self) -> None:
        """Collect finished batches, flush old buffers, echo ready checkpoints; raise a failure or SIGTERM.

        After a failure the requests in flight get a grace period, and what they acknowledged is echoed
        before the failure is raised.
        """
        self.pipeline.poll(time.monotonic())
        if self.term.is_set():
            raise Interrupted
        if self.pipeline.failure is not None:
            self.pipeline.abort(STOP_GRACE_SECONDS)
            raise self.pipeline.failure

    def finish(self) -> None:
        """End of input: flush everything, mirror completed streams, echo the remaining checkpoints."""
        self.pipeline.finish()

    def conclude(self) -> None:
        """Log the summary, fail for any stream that could not finish."""
        self.pipeline.conclude()

    def interrupted(self) -> TransientError:
        """After SIGTERM: finish or abandon the requests in flight; returns the error to raise."""
        logger.warning("SIGTERM received: stopped reading; finishing the requests in flight.")
        self.pipeline.abort(STOP_GRACE_SECONDS)
        return stopped_error()

    def close(self) -> None:
        """Stop the senders and the client (idempotent)."""
        self.pipeline.close()
        self.client.close()
        if self.store is not None and not self.store.closed:  # after a failure: keep what can still be kept
            try:
                self.store.close()
            except Exception as exc:  # noqa: BLE001 - the sync's own failure is what is reported
                logger.warning(f"Rejected records buffered at the failure were not stored ({type(exc).__name__}).")
        _dump_metrics(self.client)


def _dump_metrics(client: IterableClient) -> None:
    """Write the rate controller's timeline and request counts for benchmarks (only when asked to)."""
    path = os.environ.get(METRICS_FILE_ENV)
    if not path:
        return
    import orjson

    controller = client.controller
    payload = {"timeline": list(controller.timeline), "snapshot": controller.snapshot(), "client": dict(client.stats),
               "paced": [controller.first_sent, controller.last_answered]}
    with open(path, "wb") as handle:
        handle.write(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY))
