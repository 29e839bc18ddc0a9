"""The CLI: ``python -m integration_tests.sandbox`` prints one ready line and exits 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from integration_tests.sandbox.__main__ import serve_until

ROOT = Path(__file__).resolve().parents[1]


def start(*flags: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "integration_tests.sandbox", "--port", "0", *flags], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_ready_line_serves_and_stops_cleanly(sig):
    proc, line = start("--api-key", "cli-key", "--read-only-key", "cli-ro", "--subscribe-rps", "7",
                       "--error-rate", "0", "--latency-ms", "1", "--echo-api-key-in-errors",
                       "--forgotten-emails", "A@x.com,b@y.com", "--project-type", "hybrid",
                       "--new-list-invalid-seconds", "3", "--get-users-503-next", "2", "--seed", "9")
    try:
        assert line.startswith("sandbox listening on http://127.0.0.1:"), line
        url = line.strip().rsplit(" ", 1)[-1]
        config = requests.get(f"{url}/_sandbox/config", timeout=5).json()
        assert config["subscribe_rps"] == 7 and config["echo_api_key_in_errors"] is True
        assert config["forgotten_emails"] == ["a@x.com", "b@y.com"] and config["get_users_503_next"] == 2
        assert requests.get(f"{url}/api/lists", headers={"Api-Key": "cli-key"}, timeout=5).status_code == 200
        assert requests.post(f"{url}/api/lists", headers={"Api-Key": "cli-ro"}, json={"name": "x"},
                             timeout=5).status_code == 401
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""  # exactly one line on stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_a_bad_knob_value():
    proc, line = start("--api-key", "k", "--error-rate", "2")
    assert proc.wait(timeout=10) == 2 and line == ""
    assert "error_rate" in proc.stderr.read()


def test_the_serve_loop_keeps_long_lived_objects_out_of_the_collectors_sight():
    """A full collection walks every tracked object with every thread stopped; with a million members that froze
    the sandbox's limiter for 0.2-0.44 s every 1.5-8 s. The serve loop freezes what is alive, so it does not."""
    gc.unfreeze()
    members = [[i] for i in range(50_000)]  # tracked objects, as the sandbox's members are
    stop = threading.Event()
    loop = threading.Thread(target=serve_until, args=(stop, 0.01))
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while gc.get_freeze_count() < len(members) and time.monotonic() < deadline:
            stop.wait(0.01)
        assert gc.get_freeze_count() >= len(members)
    finally:
        stop.set()
        loop.join()
        gc.unfreeze()
