"""The connector checkpoints while input is still open: buffers are flushed by age, not only at EOF."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from integration_tests.harness import REPO_ROOT, make_catalog, make_config, record, stream_state, to_lines


def test_state_is_echoed_after_the_batch_age_while_stdin_stays_open(sandbox):
    with tempfile.TemporaryDirectory() as tmp:
        config, catalog = Path(tmp) / "config.json", Path(tmp) / "catalog.json"
        config.write_text(json.dumps(make_config(sandbox, batch_max_age_seconds=1)))
        catalog.write_text(json.dumps(make_catalog("vip")))
        proc = subprocess.Popen([sys.executable, "main.py", "write", "--config", str(config), "--catalog",
                                 str(catalog)], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            proc.stdin.write(to_lines([record("vip", {"email": f"u{i}@example.com"}) for i in range(10)]
                                      + [stream_state("vip", "first", state_id=42)]))
            proc.stdin.flush()
            deadline = time.monotonic() + 30
            state = None
            while state is None and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                message = json.loads(line)
                if message.get("type") == "STATE":
                    state = message
            assert state is not None and state["state"]["id"] == 42, "no state before EOF"
            assert proc.poll() is None, "the connector must still be running (stdin is open)"
            list_id = sandbox.client.list_by_name("vip")[0]["id"]
            assert len(sandbox.client.member_emails(list_id)) == 10
        finally:
            proc.stdin.close()
            proc.wait(timeout=60)
        assert proc.returncode == 0
