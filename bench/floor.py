"""What any pure-Python connector must spend per record: a lower bound for the CPU ratio of bench.throughput.

    python -m bench.floor --records 1000000 --streams 4

Runs, each in a fresh process over the same cached input as bench.throughput (CPU from os.wait4):

- `baseline`: `orjson.loads` of every line (bench.throughput's baseline);
- `floor`: the least work that produces correct request bodies: parse every line, route records by stream
  name, trim/lowercase/validate the email (the connector's own quick path, the full validator otherwise),
  copy the profile fields into a row, keep the last row per member in a per-stream buffer, and serialise
  every 1,000 rows into a `lists/subscribe` body with orjson. No STATE handling, no threads, no HTTP,
  no ordering, no reporting: nothing a real connector can do without.
- `floor+startup`: the same plus the connector's imports (`destination_iterable.cli_write`).
- `floor+startup+http`: the same, and every body is POSTed to an unthrottled sandbox (one thread, one
  kept-alive raw socket, the request written in one `sendall`, the answer read by its Content-Length
  and parsed; a list created first): the least work that really delivers the data, without STATE
  handling, ordering, rate control, retries or error handling. The sandbox runs on the same two cores,
  as in bench.throughput, so this also shows what sharing the machine with the server costs.

The ratio floor / baseline is what a Python connector cannot go below on this machine, whatever else it
does; the HTTP exchange (connection, kernel copies of ~270 KB per request, reading the answer) comes on top.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.inputs import ensure_input
from bench.throughput import API_KEY, Sandbox

ROOT = Path(__file__).resolve().parent.parent

BASELINE = """
import sys, orjson
loads = orjson.loads
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        loads(line)
"""

FLOOR = r"""
import sys, orjson
if sys.argv[2] == "1":
    import destination_iterable.cli_write  # noqa: F401  (the connector's start-up imports)
from destination_iterable.identity import QUICK_DOMAIN_VERDICTS, QUICK_LOCAL_AT, normalize_email
post = None
if len(sys.argv) > 3:  # deliver: POST every body to the sandbox at this URL, over a raw kept-alive socket
    import socket, urllib.parse
    url = urllib.parse.urlsplit(sys.argv[3])
    sock = socket.create_connection((url.hostname, url.port))
    head = (f"Host: {url.netloc}\r\nApi-Key: {sys.argv[4]}\r\nContent-Type: application/json\r\n").encode()

    def post(path, body):
        sock.sendall(b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s" % (path.encode(), head, len(body), body))
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        header, _, payload = data.partition(b"\r\n\r\n")
        size = int(header.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(payload) < size:
            payload += sock.recv(65536)
        if not header.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"{header[:100]!r}: {payload[:200]!r}")
        return orjson.loads(payload)

    LIST_ID = post("/api/lists", orjson.dumps({"name": "floor", "description": "bench.floor"}))["listId"]

FIELDS = ("first_name", "plan")
loads, dumps = orjson.loads, orjson.dumps
buffers = {}
bodies = 0


def flush(list_id, buffer):
    global bodies
    body = dumps({"listId": list_id, "subscribers": list(buffer.values())})
    bodies += len(body)
    if post is not None:
        post("/api/lists/subscribe", body.replace(b'"listId":1,', b'"listId":%d,' % LIST_ID, 1))


with open(sys.argv[1], "rb") as handle:
    for line in handle:
        message = loads(line)
        if message.get("type") != "RECORD":
            continue
        record = message["record"]
        stream = record.get("stream")
        buffer = buffers.get(stream)
        if buffer is None:
            buffer = buffers[stream] = {}
        data = record.get("data")
        raw = data.get("email")
        email = None
        if type(raw) is str:
            address = raw.strip().lower()
            quick = QUICK_LOCAL_AT(address)
            if quick is not None and QUICK_DOMAIN_VERDICTS.get(address[quick.end():]):
                email = address
        if email is None:
            email, reason = normalize_email(raw)
            if reason is not None:
                continue
        fields = {}
        for name in FIELDS:
            value = data.get(name)
            if value is not None:
                fields[name] = value
        buffer[email] = {"email": email, "dataFields": fields}
        if len(buffer) >= 1000:
            flush(1, buffer)
            buffers[stream] = {}
for buffer in buffers.values():
    if buffer:
        flush(1, buffer)
print(bodies)
"""


def child_cpu(code: str, *args: str) -> float:
    """CPU seconds (user + sys) of `python -c code args`."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"child failed with status {status}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant (the median is printed)")
    args = parser.parse_args()
    meta, _ = ensure_input(args.records, args.streams)
    started = time.monotonic()
    results: dict[str, list[float]] = {"baseline": [], "floor": [], "floor+startup": [], "floor+startup+http": []}
    workdir = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    sandbox = Sandbox(0, workdir)
    try:
        for _ in range(args.runs):  # interleaved, so load changes hit every variant alike
            results["baseline"].append(child_cpu(BASELINE, meta.path))
            results["floor"].append(child_cpu(FLOOR, meta.path, "0"))
            results["floor+startup"].append(child_cpu(FLOOR, meta.path, "1"))
            results["floor+startup+http"].append(child_cpu(FLOOR, meta.path, "1", sandbox.url, API_KEY))
    finally:
        sandbox.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    median = {name: sorted(runs)[len(runs) // 2] for name, runs in results.items()}
    base = median["baseline"]
    print(f"input: {meta.records} records, {meta.lines} lines ({meta.path})")
    for name, runs in results.items():
        ratio = median[name] / base if base else float("nan")
        print(f"{name:>14}: {median[name]:6.2f} s CPU (runs {', '.join(f'{r:.2f}' for r in runs)}), "
              f"{median[name] / meta.records * 1e6:.2f} µs/record, {ratio:.2f}x the baseline")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
