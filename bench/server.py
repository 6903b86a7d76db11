"""The server under test: ``authgate migrate`` then ``authgate serve`` (or granian, for the stack
comparison) on a fresh database, pinned to its cores; time-to-ready and peak RSS.

Peak RSS is per workload: before each one the kernel's high-water mark is reset
(``/proc/<pid>/clear_refs`` ← 5, Linux ≥ 4.0) and ``VmHWM`` is read after, summed over the
server's process tree (the supervisor and its workers with ``--workers N``). Where the reset is
refused, a sampler thread reading ``VmRSS`` every 50 ms gives the peak instead.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.wrk import pinned

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(
    workdir: Path, port: int, database_url: str | None, redis_url: str | None, workers: int,
    settings: dict[str, str] | None = None,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(
        {
            "AUTHGATE_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            "AUTHGATE_HOST": "127.0.0.1",
            "AUTHGATE_PORT": str(port),
            "AUTHGATE_ISSUER": f"http://127.0.0.1:{port}",
            "AUTHGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "AUTHGATE_RATE_LIMITS": "off",
            "AUTHGATE_LOG_LEVEL": "warning",
            "AUTHGATE_WORKERS": str(workers),
            "AUTHGATE_EMAIL_PROVIDER": "console",
            "AUTHGATE_SMS_PROVIDER": "console",
        }
    )
    if redis_url:
        env["AUTHGATE_REDIS_URL"] = redis_url
    env.update(settings or {})
    return env


def serve_argv(stack: str, port: int, workers: int) -> list[str]:
    if stack == "uvicorn":
        return [str(BIN / "authgate"), "serve", "--port", str(port), "--workers", str(workers)]
    if stack == "granian":
        # Only for the stack comparison (docs/performance.md): `pip install granian` into .venv.
        if not (BIN / "granian").exists():
            raise SystemExit("--server granian: granian is not installed (.venv/bin/pip install granian)")
        return [
            str(BIN / "granian"), "--interface", "asgi", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--http", "1",
            "--no-ws", "--log-level", "warning", "authgate.app:factory",
        ]
    raise ValueError(f"unknown server stack {stack}")


# --- /proc ---------------------------------------------------------------------------------------
def children_of(pid: int) -> list[int]:
    """``pid`` and every descendant (from /proc/*/stat's ppid)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak(pids: Sequence[int]) -> bool:
    ok = True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def thread_cpu_seconds(pids: Sequence[int], prefix: str) -> float:
    """CPU seconds (user + system) used so far by the threads of ``pids`` whose name starts with
    ``prefix`` (the hashing threads are ``argon2_0``, ``argon2_1``...), from /proc/<pid>/task."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            if name.startswith(prefix):
                fields = stat.rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


class RssSampler:
    """The tree's peak RSS over an interval: the kernel's VmHWM after a reset when allowed,
    else the largest VmRSS seen by sampling every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self.pids: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hwm = False

    def __enter__(self) -> RssSampler:
        self.pids = children_of(self.pid)
        self._hwm = reset_peak(self.pids)
        if not self._hwm:  # sampling costs CPU the server could use: only when needed
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, sum(status_kib(p, "VmRSS") for p in self.pids))
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self._hwm:
            self.peak_kib = max(self.peak_kib, sum(status_kib(p, "VmHWM") for p in self.pids))

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024.0


# --- the process ---------------------------------------------------------------------------------
def http_get(port: int, path: str, timeout: float = 1.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Server:
    def __init__(
        self,
        workdir: Path,
        *,
        stack: str = "uvicorn",
        workers: int = 1,
        cpus: str | None = "0",
        database_url: str | None = None,
        redis_url: str | None = None,
        port: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.stack = stack
        self.workers = workers
        self.cpus = cpus
        self.port = port or free_port()
        self.env = server_env(workdir, self.port, database_url, redis_url, workers, settings)
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, timeout: float = 120) -> Any:
        """An ``authgate`` command with the server's settings; its last line of output as JSON."""
        out = subprocess.run(
            [str(BIN / "authgate"), *args], env=self.env, cwd=self.workdir, capture_output=True,
            text=True, timeout=timeout,
        )
        if out.returncode != 0:
            raise RuntimeError(f"authgate {' '.join(args)} failed: {out.stderr.strip()[-1500:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def python(self, module: str, *args: str, pin: bool = True, timeout: float = 600) -> Any:
        """``python -m module args`` with the server's settings (pinned to its cores); JSON out."""
        argv = [sys.executable, "-m", module, *args]
        repo = str(Path(__file__).resolve().parent.parent)
        env = dict(self.env, PYTHONPATH=repo + os.pathsep + self.env.get("PYTHONPATH", ""))
        out = subprocess.run(
            pinned(self.cpus, argv) if pin else argv, env=env, cwd=self.workdir,
            capture_output=True, text=True, timeout=timeout,
        )
        if out.returncode != 0:
            raise RuntimeError(f"python -m {module} failed: {out.stderr.strip()[-1500:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def start(self, timeout: float = 30.0) -> float:
        """Start the server; seconds from process start to the first ``/healthz`` 200."""
        log = self.log_path.open("ab")
        argv = pinned(self.cpus, serve_argv(self.stack, self.port, self.workers))
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            try:
                if http_get(self.port, "/healthz", timeout=0.5)[0] == 200:
                    self.ready_s = time.perf_counter() - t0
                    return self.ready_s
            except OSError:
                pass
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"server not ready within {timeout:.0f}s:\n{self.log()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> RssSampler:
        return RssSampler(self.pid)

    def hashing_cpu(self) -> float:
        """CPU seconds the server's hashing threads have used so far (every worker's)."""
        return thread_cpu_seconds(children_of(self.pid), "argon2")

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
