"""Runs one write: builds the client, list handles, sinks and pipeline, then feeds input chunks through."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator

from destination_iterable.client import IterableClient
from destination_iterable.config import IterableConfig, require_consent
from destination_iterable.errors import ConfigError
from destination_iterable.lists import ListDirectory, ListHandle, render_list_name
from destination_iterable.messages import dispatch
from destination_iterable.pipeline import Interrupted, Journal, Pipeline, stopped_error
from destination_iterable.rate import AdaptiveRateController
from destination_iterable.report import ListReport
from destination_iterable.sink import StreamSink, StreamSpec
from destination_iterable.subscriber import SubscriberBuilder

logger = logging.getLogger("airbyte")

GC_YOUNG_THRESHOLD = 50_000  # allocations between young-generation collections during a write (default 700)
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


def build_sinks(config: IterableConfig, specs: list[StreamSpec], client: IterableClient,
                stop: threading.Event, journals: dict | None = None) -> list[StreamSink]:
    """Resolve every stream's list (reuse or create) and make its sink."""
    try:
        builder = SubscriberBuilder(config.email_field or None, config.user_id_field, config.data_fields)
    except ValueError as exc:
        raise ConfigError(f"Setting 'data_fields' is not usable: {exc}") from None
    directory = ListDirectory(client, dry_run=config.dry_run)
    names: dict[str, StreamSpec] = {}
    sinks = []
    for spec in specs:
        name = render_list_name(config.list_name_template, spec.name, spec.namespace)
        other = names.get(name)
        if other is not None and (spec.mirrors or other.mirrors):
            raise ConfigError(f"Streams '{other.name}' and '{spec.name}' both map to the list '{name}' and one of "
                              "them mirrors, which would remove the other's members. Give them different list "
                              "names with 'list_name_template' (e.g. include {stream}).", stream=spec.name)
        names[name] = spec
        description = (f"Managed by Airbyte destination-iterable: members of the Airbyte stream '{spec.name}'"
                       + (f" (namespace '{spec.namespace}')" if spec.namespace else "") + ".")
        handle = directory.resolve(name, description, stream=spec.name)
        report = ListReport(stream=spec.name, list_name=name, list_id=handle.list_id, created=handle.created,
                            mode=_mode_label(spec), dry_run=config.dry_run)
        if config.dry_run:
            action = "would be CREATED" if handle.created else f"is reused (id {handle.list_id})"
            logger.info(f"Dry run: stream '{spec.name}' -> list '{name}' {action}, mode {report.mode}.")
        sinks.append(StreamSink(spec, handle, report, builder, client=client, dry_run=config.dry_run,
                                update_existing_users_only=config.update_existing_users_only, stop=stop))
        if spec.mirrors and not config.dry_run and journals is not None:
            journals[spec.key] = build_journal(directory, client, spec, handle, builder, stop)
    return sinks


def write_messages(config: IterableConfig, specs: list[StreamSpec], chunks: Iterable[list[bytes]],
                   term: threading.Event | None = None) -> Iterator[dict]:
    """Write all input; yields each STATE message once it may be echoed."""
    require_consent(config)
    term = term or threading.Event()
    stop = threading.Event()
    client = build_client(config, stop, term)
    out: list[dict] = []
    journals: dict = {}
    sinks = build_sinks(config, specs, client, stop, journals)
    pipeline = Pipeline(sinks, client=client, emit=out.append, stop=stop, term=term, dry_run=config.dry_run,
                        max_age=config.batch_max_age_seconds, progress_interval=config.progress_interval_seconds,
                        mirror_max_removal_percent=config.mirror_max_removal_percent,
                        prefer_user_id=bool(config.user_id_field) and not config.email_field, journals=journals)
    if config.dry_run:
        logger.info("Dry run: nothing will be written to Iterable and no state will be echoed.")
    thresholds = _relax_gc()
    try:
        for chunk in chunks:
            if chunk:
                dispatch(chunk, pipeline.on_record, pipeline.on_state, pipeline.on_stream_status,
                         pipeline.input_problem)
            pipeline.poll(time.monotonic())
            yield from _drain(out)
            if term.is_set():
                raise Interrupted
            if pipeline.failure is not None:
                pipeline.abort(STOP_GRACE_SECONDS)
                yield from _drain(out)
                raise pipeline.failure
        try:
            pipeline.finish()
        except Exception:
            yield from _drain(out)  # states acknowledged before a failure are still echoed
            raise
        yield from _drain(out)
        pipeline.conclude()
    except Interrupted:
        logger.warning("SIGTERM received: stopped reading; finishing the requests in flight.")
        pipeline.abort(STOP_GRACE_SECONDS)
        yield from _drain(out)
        raise stopped_error() from None
    finally:
        gc.set_threshold(*thresholds)
        pipeline.close()
        client.close()
        _dump_metrics(client)


def _relax_gc() -> tuple[int, ...]:
    """Raise the young-generation GC threshold for the write; returns the thresholds to restore.

    The cyclic collector is only needed for the rare reference cycle (the connector's own data has none:
    rows are plain dicts of strings and numbers). With the default threshold (700 allocations) a
    young-generation collection ran every few hundred rows, on the main thread and on the sender threads
    alike, and each walked every object allocated since the last one: ~1.3 s of CPU per million records
    when batches are in flight. Every 50,000 allocations it costs ~0.1 s per million. Memory held by
    cycles is freed later, never lost.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
    return thresholds


def _dump_metrics(client: IterableClient) -> None:
    """Write the rate controller's timeline and request counts for benchmarks (only when asked to)."""
    path = os.environ.get(METRICS_FILE_ENV)
    if not path:
        return
    import orjson

    payload = {"timeline": list(client.controller.timeline), "snapshot": client.controller.snapshot(),
               "client": dict(client.stats)}
    with open(path, "wb") as handle:
        handle.write(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY))


def _drain(out: list[dict]) -> Iterator[dict]:
    while out:
        yield out.pop(0)
