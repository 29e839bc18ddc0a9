"""Helpers to run the real connector CLI (`python main.py ...`) as a subprocess and read its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_config(sandbox: Any, **overrides: Any) -> dict[str, Any]:
    """A config pointing at a sandbox, with consent on and quick timings for tests."""
    config = {
        "api_key": sandbox.api_key,
        "api_base_url": sandbox.url,
        "privacy_consent": True,
        "email_field": "email",
        "retry_max_seconds": 30,
        "batch_max_age_seconds": 2,
        "progress_interval_seconds": 1,
    }
    config.update(overrides)
    return config


def stream_entry(name: str, *, mode: str = "append", properties: dict | None = None, namespace: str | None = None,
                 generation_id: int | None = None, minimum_generation_id: int | None = None,
                 primary_key: list | None = None) -> dict[str, Any]:
    """One configured stream."""
    schema: dict[str, Any] = {"type": "object"}
    if properties is not None:
        schema["properties"] = properties
    stream: dict[str, Any] = {"name": name, "json_schema": schema,
                              "supported_sync_modes": ["full_refresh", "incremental"]}
    if namespace is not None:
        stream["namespace"] = namespace
    entry: dict[str, Any] = {"stream": stream, "sync_mode": "full_refresh", "destination_sync_mode": mode}
    if generation_id is not None:
        entry["generation_id"] = generation_id
    if minimum_generation_id is not None:
        entry["minimum_generation_id"] = minimum_generation_id
    if primary_key is not None:
        entry["primary_key"] = primary_key
    return entry


def make_catalog(*streams: str | dict[str, Any], mode: str = "append") -> dict[str, Any]:
    """A configured catalog from stream names or stream_entry() dicts."""
    return {"streams": [s if isinstance(s, dict) else stream_entry(s, mode=mode) for s in streams]}


def record(stream: str, data: Any, namespace: str | None = None) -> dict[str, Any]:
    """A RECORD message."""
    rec: dict[str, Any] = {"stream": stream, "data": data, "emitted_at": 1700000000000}
    if namespace is not None:
        rec["namespace"] = namespace
    return {"type": "RECORD", "record": rec}


def stream_state(stream: str, value: Any, state_id: int | None = None, namespace: str | None = None) -> dict[str, Any]:
    """A STREAM STATE message, optionally with the platform's `id`."""
    desc: dict[str, Any] = {"name": stream}
    if namespace is not None:
        desc["namespace"] = namespace
    state: dict[str, Any] = {"type": "STREAM", "stream": {"stream_descriptor": desc, "stream_state": {"cursor": value}}}
    if state_id is not None:
        state["id"] = state_id
    return {"type": "STATE", "state": state}


def global_state(value: Any, state_id: int | None = None) -> dict[str, Any]:
    """A GLOBAL STATE message."""
    state: dict[str, Any] = {"type": "GLOBAL", "global": {"shared_state": {"lsn": value}, "stream_states": []}}
    if state_id is not None:
        state["id"] = state_id
    return {"type": "STATE", "state": state}


def stream_status(stream: str, status: str = "COMPLETE", namespace: str | None = None) -> dict[str, Any]:
    """A TRACE STREAM_STATUS message, as the platform sends when the destination supports refreshes."""
    desc: dict[str, Any] = {"name": stream}
    if namespace is not None:
        desc["namespace"] = namespace
    return {"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 1700000000000.0,
                                       "stream_status": {"stream_descriptor": desc, "status": status}}}


def to_lines(messages: list[Any]) -> bytes:
    """Messages (dicts, or raw str/bytes lines) as stdin bytes."""
    out = []
    for message in messages:
        if isinstance(message, bytes):
            out.append(message)
        elif isinstance(message, str):
            out.append(message.encode())
        else:
            out.append(json.dumps(message).encode())
    return b"\n".join(out) + (b"\n" if out else b"")


@dataclass
class RunResult:
    """What one CLI run printed."""

    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def states(self) -> list[dict[str, Any]]:
        """Echoed STATE messages, in order."""
        return [m for m in self.messages if m.get("type") == "STATE"]

    @property
    def logs(self) -> list[str]:
        """LOG message texts."""
        return [m["log"]["message"] for m in self.messages if m.get("type") == "LOG"]

    @property
    def errors(self) -> list[dict[str, Any]]:
        """TRACE ERROR payloads."""
        return [m["trace"]["error"] for m in self.messages if m.get("type") == "TRACE" and m["trace"].get("error")]

    @property
    def connection_status(self) -> dict[str, Any] | None:
        """The CONNECTION_STATUS payload of a check."""
        found = [m["connectionStatus"] for m in self.messages if m.get("type") == "CONNECTION_STATUS"]
        return found[0] if found else None

    @property
    def peak_rss_mb(self) -> float | None:
        """Peak RSS of the connector process, when run with measure_rss=True."""
        for line in self.stderr.splitlines():
            if line.startswith("PEAK_RSS_KB="):
                return int(line.split("=", 1)[1]) / 1024
        return None

    @property
    def summary(self) -> dict[str, Any] | None:
        """The machine-readable SYNC_SUMMARY payload."""
        for text in reversed(self.logs):
            if text.startswith("SYNC_SUMMARY "):
                return json.loads(text[len("SYNC_SUMMARY "):])
        return None

    def list_summary(self, stream: str) -> dict[str, Any]:
        """The summary entry of one stream."""
        assert self.summary is not None, self.stdout[-3000:]
        return next(entry for entry in self.summary["lists"] if entry["stream"] == stream)


# Peak RSS of the connector itself: VmHWM of its own address space. (ru_maxrss is not used because Linux
# carries the parent's high-water mark over fork+exec, so a big test process would be counted.)
RSS_PROBE = ("import atexit, runpy, sys\n"
             "def _peak():\n"
             "    for line in open('/proc/self/status'):\n"
             "        if line.startswith('VmHWM:'):\n"
             "            sys.stderr.write('PEAK_RSS_KB=%s\\n' % line.split()[1])\n"
             "atexit.register(_peak)\n"
             "sys.argv = sys.argv[1:]\n"
             "runpy.run_path(sys.argv[0], run_name='__main__')")


def run_cli(command: str, config: dict | None = None, catalog: dict | None = None, messages: Any = None,
            env: dict[str, str] | None = None, timeout: float = 120, extra_args: list[str] | None = None,
            measure_rss: bool = False) -> RunResult:
    """Run `python main.py <command>` like the platform does and parse its stdout."""
    with tempfile.TemporaryDirectory() as tmp:
        prefix = [sys.executable, "-c", RSS_PROBE] if measure_rss else [sys.executable]
        args = [*prefix, str(REPO_ROOT / "main.py"), command]
        if config is not None:
            path = Path(tmp) / "config.json"
            path.write_text(json.dumps(config))
            args += ["--config", str(path)]
        if catalog is not None:
            path = Path(tmp) / "catalog.json"
            path.write_text(json.dumps(catalog))
            args += ["--catalog", str(path)]
        args += extra_args or []
        stdin = messages if isinstance(messages, bytes) else to_lines(messages or [])
        proc = subprocess.run(args, input=stdin, capture_output=True, timeout=timeout, cwd=REPO_ROOT,
                              env={**os.environ, **(env or {})})
    return parse_output(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def parse_output(returncode: int, stdout: str, stderr: str) -> RunResult:
    """Parse protocol lines; anything else is kept only in `stdout`."""
    messages = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                messages.append(json.loads(line))
            except ValueError:
                pass
    return RunResult(returncode, stdout, stderr, messages)
