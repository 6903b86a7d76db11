"""``python -m bench --quick --soak 3000``: the whole suite for about a second per workload against a real
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
        [sys.executable, "-m", "bench", "--quick", "--soak", "3000", "--soak-warm", "1000", "--out", str(tmp_path)],
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
    soak = doc["soak"]  # mixed requests until 3,000 responses, RSS after each 1 s chunk
    assert soak["requests"] >= 3000 and len(soak["samples"]) >= 2 and soak["rss_end_mib"] > 0
    assert soak["unexpected"] == 0, soak  # every answer was one mix.lua expects (200, 400, 401)
