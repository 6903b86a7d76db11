"""``python -m bench --quick``: the whole suite for about a second per workload against a real
server, driven by wrk. Checks that it runs and reports, never what the figures are."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_quick_run_reports_every_workload(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        if CI:
            pytest.fail("wrk is required under CI=true (apt-get install -y wrk)")
        pytest.skip("wrk is not installed (apt-get install -y wrk)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert list(tmp_path.glob("2*.json")), "a timestamped copy next to latest.json"
    rows = {r["name"]: r for r in doc["workloads"]}
    assert set(rows) >= {"FLOOR", "W1", "W2", "W3-me", "W3-info", "W4", "W5", "W6", "W7"}
    broken = {name: r["note"] for name, r in rows.items() if r["status"] == "failed"}
    assert not broken, broken  # each workload either ran or was skipped with a reason
    for r in rows.values():
        assert r["status"] == "ok" or r["note"], r
    floor = rows["FLOOR"]
    assert floor["status"] == "ok" and floor["requests"] > 0 and floor["p99_ms"] is not None
    assert doc["hash"]["hash_s"] > 0 and doc["server"]["ready_s"] > 0
    assert doc["machine"]["nproc"] and "FLOOR" in out.stdout  # the table on stdout
