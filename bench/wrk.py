"""Running wrk and reading what it measured.

Every Lua script ends with common.lua's ``done`` hook, which prints one ``BENCH_JSON {...}`` line;
:func:`parse_output` turns it into a :class:`WrkResult`. wrk's own text summary is the fallback
when that line is missing (a script error), so a broken script still says why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).parent / "lua"
MARK = "BENCH_JSON "
SOCKET_ERRORS = ("connect", "read", "write", "timeout")

WRK_MISSING = (
    "wrk is not installed: the benchmark drives the server with wrk and its Lua scripts.\n"
    "Install it with:  apt-get install -y wrk   (Debian/Ubuntu package `wrk`)"
)


class WrkError(RuntimeError):
    pass


@dataclass
class WrkResult:
    duration_s: float
    requests: int
    statuses: dict[int, int] = field(default_factory=dict)
    socket_errors: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        """Completed responses per second, whatever their status."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def ok(self, expected: Iterable[int]) -> int:
        wanted = set(expected)
        return sum(n for status, n in self.statuses.items() if status in wanted)

    def ok_rps(self, expected: Iterable[int]) -> float:
        return self.ok(expected) / self.duration_s if self.duration_s > 0 else 0.0

    def unexpected(self, expected: Iterable[int]) -> int:
        """Responses whose status is not one the workload expects (non-2xx for most)."""
        wanted = set(expected)
        return sum(n for status, n in self.statuses.items() if status not in wanted)

    @property
    def socket_error_count(self) -> int:
        return sum(self.socket_errors.get(k, 0) for k in SOCKET_ERRORS)

    def errors(self, expected: Iterable[int]) -> int:
        return self.unexpected(expected) + self.socket_error_count


def parse_output(stdout: str) -> WrkResult:
    """The result printed by common.lua's ``done`` hook; wrk's text summary if it is absent."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARK):
            return from_json(json.loads(line[len(MARK):]))
    return parse_text(stdout)


def from_json(doc: dict[str, Any]) -> WrkResult:
    lat = doc.get("latency_us", {})
    errors = doc.get("errors", {})
    return WrkResult(
        duration_s=doc["duration_us"] / 1e6,
        requests=int(doc["requests"]),
        statuses={int(k): int(v) for k, v in doc.get("statuses", {}).items()},
        socket_errors={k: int(errors.get(k, 0)) for k in SOCKET_ERRORS},
        latency_ms={k: float(v) / 1000.0 for k, v in lat.items() if k not in ("stdev",)},
        counters={k: int(v) for k, v in doc.get("counters", {}).items()},
    )


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise WrkError(f"cannot read a duration from {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_text(stdout: str) -> WrkResult:
    """wrk's own summary (``N requests in 10.00s``, ``--latency`` percentiles, error lines)."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", stdout)
    if not done:
        raise WrkError("no wrk summary in the output:\n" + stdout[-2000:])
    requests = int(done.group(1))
    duration_s = _ms(done.group(2) + done.group(3)) / 1000.0
    latency: dict[str, float] = {}
    for pct, value in re.findall(r"^\s+(50|90|99)(?:\.000)?%\s+(\S+)$", stdout, re.M):
        latency[f"p{pct}"] = _ms(value)
    socket: dict[str, int] = dict.fromkeys(SOCKET_ERRORS, 0)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", stdout)
    if sock:
        socket = dict(zip(SOCKET_ERRORS, (int(g) for g in sock.groups()), strict=True))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", stdout)
    bad = int(non2xx.group(1)) if non2xx else 0
    # Without the Lua hook only "2xx/3xx or not" is known: report the rest as status 0.
    statuses = {200: requests - bad}
    if bad:
        statuses[0] = bad
    return WrkResult(duration_s, requests, statuses, socket, latency)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def pinned(cpus: str | None, argv: Sequence[str]) -> list[str]:
    """``taskset -c CPUS argv...`` when taskset exists and CPUS is given and usable here."""
    if cpus and shutil.which("taskset") and _cpus_available(cpus):
        return ["taskset", "-c", cpus, *argv]
    return list(argv)


def _cpus_available(cpus: str) -> bool:
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return True
    for part in cpus.split(","):
        lo, _, hi = part.partition("-")
        try:
            wanted = range(int(lo), int(hi or lo) + 1)
        except ValueError:
            return False
        if not set(wanted) <= allowed:
            return False
    return True


def command(
    url: str,
    script: str,
    args: Sequence[str],
    *,
    duration: float,
    connections: int,
    threads: int,
    timeout: float = 5.0,
    cpus: str | None = None,
) -> list[str]:
    threads = max(1, min(threads, connections))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{max(connections, threads)}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={max(1, round(timeout))}s",
        "-s",
        str(LUA_DIR / script),
        url,
    ]
    if args:
        argv += ["--", *args]
    return pinned(cpus, argv)


def start(argv: Sequence[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, BENCH_LUA_DIR=str(LUA_DIR))
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float) -> WrkResult:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise WrkError(f"wrk did not finish in {timeout:.0f}s") from None
    if proc.returncode != 0 and MARK not in out:
        raise WrkError(f"wrk failed ({proc.returncode}): {err.strip() or out.strip()}"[:2000])
    return parse_output(out)


def run(argv: Sequence[str], duration: float) -> WrkResult:
    return finish(start(argv), timeout=duration + 60)
