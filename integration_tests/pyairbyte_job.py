"""The PyAirbyte job of test_pyairbyte.py; runs inside the cached PyAirbyte venv (not the project venv).

    python pyairbyte_job.py JOB.json RESULT.json

JOB.json: {"faker": path of source-faker, "destination": path of destination-iterable, "count": n,
"cache_dir": folder, "config": destination config}. It does what a PyAirbyte user does (see the README):
read source-faker's ``users`` stream into a local DuckDB cache, then write the cached result to this
destination. PyAirbyte then picks ``append_dedup`` (users has a primary key) and hands the destination the
cached records, whose ``data`` carries ``_airbyte_raw_id``/``_airbyte_extracted_at``/``_airbyte_meta``.
With "direct_config", it also writes straight from the source (``cache=False``), where the source's messages
pass through unchanged. RESULT.json: the records written and the STATE messages the destination echoed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import airbyte as ab


def main(job_path: str, result_path: str) -> int:
    """Run the job; write the result file."""
    job = json.loads(Path(job_path).read_text())
    source = ab.get_source(
        "source-faker",
        config={"count": job["count"], "seed": 42, "parallelism": 1},
        local_executable=job["faker"],
        streams=["users"],
    )
    cache = ab.new_local_cache("destination_iterable_e2e", cache_dir=job["cache_dir"])
    read_result = source.read(cache=cache)

    destination = ab.get_destination("destination-iterable", config=job["config"],
                                     local_executable=job["destination"])
    destination.check()
    write_result = destination.write(read_result)

    result = {"records_read": len(list(read_result["users"])), "processed_records": write_result.processed_records,
              "states": _states(write_result)}

    if job.get("direct_config"):  # the other way to call it: no cache, the source's messages pass through
        direct = ab.get_destination("destination-iterable", config=job["direct_config"],
                                    local_executable=job["destination"])
        result["direct_states"] = _states(direct.write(source, cache=False, state_cache=False))

    Path(result_path).write_text(json.dumps(result))
    return 0


def _states(write_result: ab.WriteResult) -> list[dict]:
    """The STATE messages the destination echoed, as JSON."""
    return [json.loads(state.model_dump_json(exclude_none=True))
            for state in write_result.get_state_provider().state_message_artifacts]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
