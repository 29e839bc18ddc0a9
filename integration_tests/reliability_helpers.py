"""Helpers for the reliability and security tests (issue #6, docs/reliability.md).

* `CliProcess` / `run_cli`: the connector's CLI as a live process (feed stdin piece by piece, wait for echoed
  STATEs, send signals); started by `start_connector`, which forks it from a pre-imported "zygote" (about
  0.3 s instead of 2-3 s per run) unless RELIABILITY_SPAWN=1 asks for a fresh `python main.py` each time;
* `FaultProxy` / `Rule`: an HTTP proxy in front of the sandbox for answers the sandbox cannot produce on
  demand (a 400 BadParams, a 403, a list deleted right before a write, an answer lost after a list was
  created, ...);
* `build_sync` / `SyncInput`: synthetic inputs with STATE ids and the expected final membership;
* `bad_input_run`: the shared run of the per-record bad-input cases;
* `SelfSignedHttps`: an HTTPS server with a self-signed certificate (TLS tests);
* assertions: exact membership, states in order, no traceback.

Nothing here changes the connector, the sandbox or the harness.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from integration_tests.harness import (
    REPO_ROOT,
    RunResult,
    make_catalog,
    make_config,
    parse_output,
    record,
    stream_state,
    to_lines,
)

DELETED_AT = "2024-01-01T00:00:00Z"


# ----------------------------------------------------------------------------------------------- CLI driving
class CliProcess:
    """`python main.py write` as a live subprocess: feed stdin piece by piece, watch STATEs, signal it.

    The platform keeps the connector's stdin open while the source produces; this class does the same,
    so a test can wait for an echoed STATE, change a sandbox knob, then send more input.
    """

    def __init__(self, config: dict[str, Any] | None, catalog: dict[str, Any] | None, command: str = "write",
                 env: dict[str, str] | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        tmp = Path(self._tmp.name)
        args = [command]
        if config is not None:
            (tmp / "config.json").write_text(json.dumps(config))
            args += ["--config", str(tmp / "config.json")]
        if catalog is not None:
            (tmp / "catalog.json").write_text(json.dumps(catalog))
            args += ["--catalog", str(tmp / "catalog.json")]
        self.started = time.monotonic()
        self.proc = start_connector(args, env)
        self._lines: list[str] = []
        self._err: list[bytes] = []
        self._cond = threading.Condition()
        self._states = 0
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()
        self.ended_at: float | None = None

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            with self._cond:
                self._lines.append(line)
                if line.startswith("{") and '"STATE"' in line:
                    try:
                        self._states += json.loads(line).get("type") == "STATE"
                    except ValueError:
                        pass
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._err.append(raw)

    # ------------------------------------------------------------------ input
    def send(self, messages: list[Any]) -> None:
        """Write messages (dicts or raw lines) to the connector's stdin."""
        if not messages:
            return
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(to_lines(messages))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the connector stopped reading (it failed or was stopped): that is what some tests expect

    def send_raw(self, data: bytes) -> None:
        """Write raw bytes to the connector's stdin."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def close_stdin(self) -> None:
        """End of input."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass

    # ------------------------------------------------------------------ output
    def wait_for_states(self, count: int, timeout: float = 20.0) -> bool:
        """Block until at least `count` STATEs were echoed (False on timeout or exit)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._states < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return self._states >= count
                self._cond.wait(min(left, 0.1))
        return True

    def snapshot(self) -> RunResult:
        """What the connector printed so far (returncode -999 while it runs)."""
        with self._cond:
            out = "".join(self._lines)
        code = self.proc.poll()
        return parse_output(-999 if code is None else code, out, b"".join(self._err).decode("utf-8", "replace"))

    # ------------------------------------------------------------------ ending
    def signal(self, sig: int) -> float:
        """Send a signal; returns the monotonic time it was sent."""
        self.proc.send_signal(sig)
        return time.monotonic()

    def kill(self) -> None:
        """SIGKILL, as when the platform's pod disappears."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def wait(self, timeout: float = 60.0) -> tuple[RunResult, bool]:
        """Wait for the exit; returns (result, timed_out). A process still running at the deadline is killed."""
        timed_out = False
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill()
            self.proc.wait(timeout=10)
        self.close_stdin()
        self.ended_at = time.monotonic()
        for reader in self._readers:
            reader.join(timeout=5)
        result = self.snapshot()
        self._tmp.cleanup()
        return result, timed_out

    def finish(self, timeout: float = 60.0) -> RunResult:
        """Close stdin and wait; a run that does not end in time fails the test."""
        self.close_stdin()
        result, timed_out = self.wait(timeout)
        assert not timed_out, f"the connector did not finish within {timeout} s:\n{result.stdout[-3000:]}"
        return result


def run_bounded(config: dict[str, Any], catalog: dict[str, Any], messages: list[Any],
                deadline: float) -> tuple[RunResult, float, bool]:
    """Run a write with all input at once; -> (result, seconds, timed_out). Kills it at the deadline."""
    cli = CliProcess(config, catalog)
    cli.send(messages)
    cli.close_stdin()
    result, timed_out = cli.wait(deadline)
    return result, (cli.ended_at or time.monotonic()) - cli.started, timed_out


# ----------------------------------------------------------------------------------------------- inputs
@dataclass
class SyncInput:
    """A synthetic sync: messages in order, the expected membership per list, and the state ids."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    expected: dict[str, set[str]] = field(default_factory=dict)
    state_ids: list[int] = field(default_factory=list)

    def after_state(self, state_id: int | None) -> list[dict[str, Any]]:
        """The input the platform replays after the last checkpoint: everything after that STATE."""
        if state_id is None:
            return list(self.messages)
        for index, message in enumerate(self.messages):
            if message.get("type") == "STATE" and message["state"].get("id") == state_id:
                return self.messages[index + 1:]
        raise AssertionError(f"state id {state_id} is not in the input")


def email(stream: str, n: int, tag: str = "") -> str:
    """A deterministic valid email for member n of a stream."""
    return f"{stream}.{tag}{n}@example.com".lower()


def build_sync(counts: dict[str, int], *, state_every: int = 100, tag: str = "",
               removes: dict[str, list[str]] | None = None, initial: dict[str, set[str]] | None = None,
               first_state_id: int = 1) -> SyncInput:
    """Records for each stream, interleaved round-robin, with a STREAM state (with a platform `id`) after
    every `state_every` records of a stream and one at each stream's end. `removes` are CDC deletes
    (`_ab_cdc_deleted_at` set) sent after the stream's adds; `initial` is each list's membership before.
    """
    out = SyncInput()
    removes = removes or {}
    queues: dict[str, list[dict[str, Any]]] = {}
    for stream, count in counts.items():
        rows = [{"email": email(stream, n, tag), "n": n} for n in range(count)]
        rows += [{"email": e, "_ab_cdc_deleted_at": DELETED_AT} for e in removes.get(stream, [])]
        queues[stream] = rows
        members = set((initial or {}).get(stream, set()))
        members |= {email(stream, n, tag) for n in range(count)}
        members -= {e.lower() for e in removes.get(stream, [])}
        out.expected[stream] = members
    next_id = first_state_id
    sent = dict.fromkeys(counts, 0)
    while any(queues.values()):
        for stream, rows in queues.items():
            if not rows:
                continue
            out.messages.append(record(stream, rows.pop(0)))
            sent[stream] += 1
            if sent[stream] % state_every == 0 or not rows:
                out.messages.append(stream_state(stream, sent[stream], state_id=next_id))
                out.state_ids.append(next_id)
                next_id += 1
    return out


# ----------------------------------------------------------------------------------------------- assertions
def state_ids(result: RunResult) -> list[Any]:
    """Platform ids of the echoed states, in order."""
    return [message["state"].get("id") for message in result.states]


def assert_no_traceback(result: RunResult) -> None:
    """No Python traceback anywhere in what the connector printed."""
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text[text.find("Traceback") - 200:][:3000]


def list_ids_by_name(client: Any) -> dict[str, list[int]]:
    """Every list name -> its ids (more than one id is a duplicate list)."""
    out: dict[str, list[int]] = {}
    for item in client.lists():
        out.setdefault(item["name"], []).append(item["id"])
    return out


def assert_exact_membership(client: Any, expected: dict[str, set[str]]) -> None:
    """Each list exists exactly once and holds exactly the expected emails: nothing lost, nothing extra."""
    by_name = list_ids_by_name(client)
    for name, emails in expected.items():
        ids = by_name.get(name, [])
        assert len(ids) == 1, f"list {name!r}: expected exactly one list, found ids {ids}"
        actual = client.member_emails(ids[0])
        lost, extra = emails - actual, actual - emails
        assert not lost and not extra, (f"list {name!r}: {len(lost)} lost (e.g. {sorted(lost)[:3]}), "
                                        f"{len(extra)} extra (e.g. {sorted(extra)[:3]})")


def error_of(result: RunResult) -> dict[str, Any]:
    """The one TRACE error of a failed run."""
    assert result.errors, f"no TRACE error; rc={result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    return result.errors[-1]


# ----------------------------------------------------------------------------------------------- fault proxy
@dataclass
class Rule:
    """What the proxy does to matching requests.

    action: "respond" (answer `status`/`body` without forwarding), "drop" (hang up without forwarding),
    "forward_then_drop" (the upstream applies it; the answer is lost), "forward_then_delay" (answer after
    `delay` s, e.g. longer than the client's read timeout), "hook" (call `hook()` then forward).
    `skip` matching requests pass untouched first; then `times` are affected (None = all).
    """

    method: str
    path: str
    action: str
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    times: int | None = 1
    skip: int = 0
    hook: Callable[[], None] | None = None
    prefix: bool = False  # match paths starting with `path` (default: the exact path)
    seen: int = 0
    hits: int = 0

    def take(self, method: str, path: str) -> bool:
        """Count a matching request; True when this one is to be affected."""
        if method != self.method or not (path == self.path or (self.prefix and path.startswith(self.path))):
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.hits >= self.times):
            return False
        self.hits += 1
        return True


class FaultProxy:
    """An HTTP/1.1 proxy on loopback in front of a sandbox that applies `Rule`s; logs every request."""

    def __init__(self, upstream: str, rules: Iterable[Rule] = ()) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules = list(rules)
        self.log: list[tuple[str, str, str]] = []
        self.times: list[float] = []  # monotonic arrival time of each logged request
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:  # noqa: N802
                proxy._handle(self)

            do_POST = do_DELETE = do_PUT = do_GET  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, method: str, path: str) -> int:
        """Requests seen for a method and exact path."""
        with self._lock:
            return sum(1 for m, p, _ in self.log if m == method and p == path)

    def first_time(self, action: str) -> float | None:
        """Monotonic time of the first request a rule with this action was applied to."""
        with self._lock:
            return next((t for (_, _, a), t in zip(self.log, self.times, strict=True) if a == action), None)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path.split("?", 1)[0]
        with self._lock:
            rule = next((r for r in self.rules if r.take(handler.command, path)), None)
            self.log.append((handler.command, path, rule.action if rule else "forward"))
            self.times.append(time.monotonic())
            self.bodies.append(body)
        if rule is not None and rule.action == "respond":
            self._reply(handler, rule.status, rule.body, rule.content_type)
            return
        if rule is not None and rule.action == "drop":
            handler.close_connection = True
            return
        if rule is not None and rule.action == "hook" and rule.hook is not None:
            rule.hook()
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("api-key", "content-type")}
        try:
            resp = self._session().request(handler.command, self.upstream + handler.path, data=body,
                                           headers=headers, timeout=120)
        except requests.RequestException:
            handler.close_connection = True
            return
        if rule is not None and rule.action == "forward_then_drop":
            handler.close_connection = True
            return
        if rule is not None and rule.action == "forward_then_delay":
            time.sleep(rule.delay)
        self._reply(handler, resp.status_code, resp.content, resp.headers.get("Content-Type", "application/json"))

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            handler.close_connection = True


def proxied_config(sandbox: Any, proxy: FaultProxy, **overrides: Any) -> dict[str, Any]:
    """make_config() for a sandbox, but sending the connector through the proxy."""
    config = make_config(sandbox, **overrides)
    config["api_base_url"] = proxy.url
    return config


def iterable_error_body(msg: str, code: str, params: Any = None) -> bytes:
    """An IterableApiResponse error body."""
    return json.dumps({"msg": msg, "code": code, "params": params}).encode()


# ----------------------------------------------------------------------------------------------- bad input
# One CLI run carries every per-record bad-input case, one stream per case, so the 20+ cases of
# test_bad_input.py (and the masking checks of test_security.py) cost one connector start, not twenty.
BAD_INPUT_CONFIG = {"email_field": "email", "user_id_field": "uid", "data_fields": ["*"]}
FORGOTTEN_EMAIL = "forgotten.person@example.com"
LONG_EMAIL = "long." + "x" * 242 + "@" + "d" * 40 + ".example.com"  # 300 characters
FIVE_MB = 5 * 1024 * 1024


def bad_input_messages() -> list[Any]:
    """The mixed input of the shared bad-input run (stream names start with `b_`)."""
    def rec(stream: str, data: Any) -> dict[str, Any]:
        return record(stream, data)

    def ok(stream: str, count: int = 2) -> list[dict[str, Any]]:
        return [rec(stream, {"email": email(stream, n)}) for n in range(count)]

    return [
        # malformed lines: truncated JSON and invalid UTF-8 bytes, between valid records
        *ok("b_lines", 1),
        '{"type": "RECORD", "record": {"stream": "b_lines", "data": {"email": "cut@example.com"',
        b'{"type": "RECORD", "record": {"stream": "b_lines", "data": {"email": "\xff\xfe@example.com"}}}',
        rec("b_lines", {"email": email("b_lines", 1)}),
        # lines that are JSON but not Airbyte messages, or messages without their payload
        "[1, 2, 3]", '"just a string"', '{"type": "RECORD"}', '{"type": "RECORD", "record": "nope"}',
        '{"type": "STATE"}', "", "   ",
        # messages of other types are ignored
        {"type": "LOG", "log": {"level": "INFO", "message": "from the source"}},
        {"type": "CONTROL", "control": {"type": "CONNECTOR_CONFIG", "emitted_at": 1}},
        # a record for a stream that is not in the catalog
        rec("b_not_in_catalog", {"email": "stray1@example.com"}),
        rec("b_not_in_catalog", {"email": "stray2@example.com"}),
        # data that is not an object
        rec("b_notobj", [1, 2]), rec("b_notobj", "text"), rec("b_notobj", None), rec("b_notobj", 5),
        *ok("b_notobj"),
        # a 5 MB record (profile field too large for a request)
        rec("b_big", {"email": "big.record@example.com", "blob": "z" * FIVE_MB}), *ok("b_big"),
        # a 300-character email
        rec("b_longmail", {"email": LONG_EMAIL}), *ok("b_longmail"),
        # null, numeric and boolean emails
        rec("b_oddmail", {"email": None}), rec("b_oddmail", {"email": 12345}), rec("b_oddmail", {"email": True}),
        *ok("b_oddmail"),
        # userIds: 60 characters; inner spaces (valid); leading/trailing spaces (a different id: invalid)
        rec("b_uid", {"uid": "u" * 60}), rec("b_uid", {"uid": "john smith"}), rec("b_uid", {"uid": " padded "}),
        rec("b_uid", {"uid": 4242}), *ok("b_uid"),
        # unicode local part and IDN domains
        rec("b_unicode", {"email": "J\u00fcrgen@Example.com"}), rec("b_unicode", {"email": "user@b\u00fccher.de"}),
        rec("b_unicode", {"email": "\u7528\u6237@\u4f8b\u5b50.\u4e2d\u56fd"}),
        # the same member three times (case and whitespace differ): one member
        rec("b_dupes", {"email": "Same.Person@example.com"}), rec("b_dupes", {"email": " same.person@EXAMPLE.com "}),
        rec("b_dupes", {"email": "same.person@example.com"}),
        # a dataFields value whose type conflicts with the project's locked type (score is a long)
        rec("b_types", {"email": "typed.wrong@example.com", "score": "high"}),
        rec("b_types", {"email": "typed.right@example.com", "score": 7}),
        # a GDPR-forgotten user
        rec("b_gdpr", {"email": FORGOTTEN_EMAIL}), *ok("b_gdpr"),
        # a STATE for a stream that is not in the catalog, then a normal one
        stream_state("b_nowhere", 1, state_id=901),
        stream_state("b_lines", 1, state_id=902),
    ]


BAD_INPUT_STREAMS = ("b_lines", "b_notobj", "b_big", "b_longmail", "b_oddmail", "b_uid", "b_unicode", "b_dupes",
                     "b_types", "b_gdpr")


@dataclass
class SharedRun:
    """A finished CLI run and what the sandbox held afterwards."""

    result: RunResult
    members: dict[str, list[dict[str, Any]]]  # list name -> members ({"email", "userId"})

    def emails(self, stream: str) -> set[str]:
        """Member emails of a stream's list."""
        return {m["email"] for m in self.members[stream] if m["email"]}


_SHARED: dict[str, SharedRun] = {}


def bad_input_run() -> SharedRun:
    """Run the shared bad-input scenario once per test process (against its own sandbox)."""
    if "bad_input" not in _SHARED:
        from integration_tests.conftest import NO_LIMITS, TEST_API_KEY
        from integration_tests.sandbox import SandboxServer

        server = SandboxServer(api_key=TEST_API_KEY, port=0, forgotten_emails=[FORGOTTEN_EMAIL], **NO_LIMITS)
        server.start()
        try:
            lock = server.client.seed([{"name": "type-lock", "members": [{"email": "lock@example.com"}]}])[0]
            resp = requests.post(f"{server.url}/api/lists/subscribe", headers={"Api-Key": TEST_API_KEY}, timeout=10,
                                 json={"listId": lock, "subscribers": [{"email": "lock@example.com",
                                                                        "dataFields": {"score": 1}}]})
            resp.raise_for_status()
            config = make_config(server, **BAD_INPUT_CONFIG)
            result = run_cli("write", config, make_catalog(*BAD_INPUT_STREAMS), bad_input_messages(), timeout=120)
            members = {item["name"]: server.client.members(item["id"]) for item in server.client.lists()}
        finally:
            server.stop()
        _SHARED["bad_input"] = SharedRun(result, members)
    return _SHARED["bad_input"]


# ----------------------------------------------------------------------------------------------- TLS
class SelfSignedHttps:
    """An HTTPS server on loopback with a self-signed certificate; counts the requests it fully received."""

    def __init__(self) -> None:
        import ssl

        self._tmp = tempfile.TemporaryDirectory()
        cert, key = Path(self._tmp.name) / "cert.pem", Path(self._tmp.name) / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                        "-out", str(cert)], check=True, capture_output=True, timeout=60)
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:  # noqa: N802
                outer.requests += 1
                body = b'{"lists": []}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def __enter__(self) -> SelfSignedHttps:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._tmp.cleanup()


# ----------------------------------------------------------------------------------------------- fork server
# Every connector start pays ~2 s of CPU to import airbyte-cdk. The reliability suite starts the connector
# about forty times, so it keeps one "zygote" process that has imported the connector and forks a fresh
# child per run. The child runs exactly what `python main.py <args>` runs (destination_iterable.run.run with
# that argv, real stdin/stdout/stderr pipes, a normal interpreter exit that joins the sender threads), and
# the tests signal it by pid. Set RELIABILITY_SPAWN=1 to start every run as a new `python main.py` instead.
SPAWN_ENV = "RELIABILITY_SPAWN"


def _forkserver_main(sock_fd: int) -> None:  # pragma: no cover - runs in the zygote process
    """The zygote: import the connector once, then fork one child per request received on `sock_fd`."""
    import select
    import socket

    import destination_iterable.airbyte.destination  # noqa: F401 - the expensive import, done once
    import destination_iterable.run  # noqa: F401

    sock = socket.socket(fileno=sock_fd)
    children: dict[int, int] = {}  # pid -> request id
    while True:
        readable, _, _ = select.select([sock], [], [], 0.05)
        if readable:
            msg, fds, _, _ = socket.recv_fds(sock, 65536, 3)
            if not msg:
                return
            request = json.loads(msg)
            pid = os.fork()
            if pid == 0:
                sock.close()
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                    os.close(fd)
                os.chdir(request["cwd"])
                os.environ.clear()
                os.environ.update(request["env"])
                sys.argv = request["argv"]
                from destination_iterable.run import run

                run()
                sys.exit(0)  # the normal interpreter exit, as after `python main.py`
            for fd in fds:
                os.close(fd)
            children[pid] = request["id"]
            sock.sendall(json.dumps({"id": request["id"], "pid": pid}).encode() + b"\n")
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            sock.sendall(json.dumps({"id": children.pop(pid), "exit": code}).encode() + b"\n")


class _ForkServer:
    """Client side of the zygote (one per test process, started on first use)."""

    def __init__(self) -> None:
        import socket

        self._sock, theirs = socket.socketpair()
        code = ("from integration_tests.reliability_helpers import _forkserver_main; "
                f"_forkserver_main({theirs.fileno()})")
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, pass_fds=(theirs.fileno(),),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        theirs.close()
        self._lock = threading.Lock()
        self._ids = iter(range(1, 1 << 30))
        self._waiting: dict[int, ForkedProcess] = {}
        threading.Thread(target=self._read_replies, daemon=True).start()

    def _read_replies(self) -> None:
        buffer = b""
        while True:
            data = self._sock.recv(65536)
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                reply = json.loads(line)
                with self._lock:
                    child = self._waiting.get(reply["id"])
                if child is not None:
                    child._reply(reply)

    def spawn(self, argv: list[str], env: dict[str, str]) -> ForkedProcess:
        import socket

        child = ForkedProcess()
        with self._lock:
            request_id = next(self._ids)
            self._waiting[request_id] = child
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        payload = json.dumps({"id": request_id, "argv": argv, "env": env, "cwd": str(REPO_ROOT)}).encode()
        with self._lock:
            socket.send_fds(self._sock, [payload], [stdin_r, stdout_w, stderr_w])
        for fd in (stdin_r, stdout_w, stderr_w):
            os.close(fd)
        child.stdin = os.fdopen(stdin_w, "wb")
        child.stdout = os.fdopen(stdout_r, "rb")
        child.stderr = os.fdopen(stderr_r, "rb")
        child._started.wait(30)
        return child


class ForkedProcess:
    """The subset of subprocess.Popen the tests use, for a child of the zygote."""

    def __init__(self) -> None:
        self.pid = 0
        self.returncode: int | None = None
        self.stdin: Any = None
        self.stdout: Any = None
        self.stderr: Any = None
        self._started = threading.Event()
        self._ended = threading.Event()

    def _reply(self, reply: dict[str, Any]) -> None:
        if "pid" in reply:
            self.pid = reply["pid"]
            self._started.set()
        if "exit" in reply:
            self.returncode = reply["exit"]
            self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired("destination-iterable", timeout or 0)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass


_FORK_SERVER: list[_ForkServer] = []


def start_connector(args: list[str], env: dict[str, str] | None = None) -> Any:
    """Start `python main.py <args>` (forked from the zygote unless RELIABILITY_SPAWN=1)."""
    full_env = {**os.environ, **(env or {})}
    argv = [str(REPO_ROOT / "main.py"), *args]
    if os.environ.get(SPAWN_ENV):
        return subprocess.Popen([sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=REPO_ROOT, env=full_env)
    if not _FORK_SERVER or _FORK_SERVER[0].proc.poll() is not None:
        _FORK_SERVER[:] = [_ForkServer()]
    return _FORK_SERVER[0].spawn(argv, full_env)


def run_cli(command: str, config: dict | None = None, catalog: dict | None = None, messages: Any = None,
            env: dict[str, str] | None = None, timeout: float = 120) -> RunResult:
    """Same contract as harness.run_cli, through start_connector()."""
    cli = CliProcess(config, catalog, command=command, env=env)
    cli.send(messages if isinstance(messages, list) else [])
    if isinstance(messages, bytes) and messages:
        cli.send_raw(messages)
    return cli.finish(timeout)
