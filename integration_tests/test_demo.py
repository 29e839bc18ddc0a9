"""`make demo` must keep working: run it and check its summary table."""

import subprocess
import sys

from integration_tests.harness import REPO_ROOT


def test_demo_runs_dry_run_then_real_sync():
    proc = subprocess.run([sys.executable, "-m", "integration_tests.demo"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "Dry-run plan" in out and "Sync summary" in out and "  Request rate: " in out
    assert "Airbyte - churn_risk" in out and "350 members" in out
    assert "Airbyte - vip_customers        id" in out and "2500 members" in out
    assert "iterable:gdpr_forgotten=1" in out
    assert "== 3. Data activation" in out
    assert "Airbyte - churn_risk                 append, update, soft_delete, overwrite email" in out
