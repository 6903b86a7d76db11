"""``authgate serve`` as a real process: how it refuses to start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.support import ServerProcess


def test_serve_on_an_unmigrated_database_exits_with_one_clear_line(tmp_path: Path) -> None:
    """The operator sees what to do, not a traceback (exit 3: uvicorn's start-up failure)."""
    server = ServerProcess(tmp_path)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "authgate"), "serve"], env=server.env, cwd=tmp_path,
        capture_output=True, timeout=60,
    )
    text = out.stdout.decode() + out.stderr.decode()
    assert out.returncode == 3, text
    assert "authgate cannot start: the database has no authgate schema" in text and "authgate migrate" in text
    assert "Traceback" not in text, text
