"""Results: one row per workload, the hashing efficiency, the table and the JSON files."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.wrk import WrkResult

HASHING = ("W1", "W2", "W4")
RATIOS = ("W3-me", "W3-info", "W5")  # the workloads with a target against FLOOR


def efficiency(requests_per_s: float, seconds_per_hash: float) -> float:
    """requests/s × seconds one hash takes: 1.0 means the server does nothing but hash (on one
    core); 0.5 means half of its time goes to everything else."""
    if requests_per_s < 0 or seconds_per_hash < 0:
        raise ValueError("rates and times cannot be negative")
    return requests_per_s * seconds_per_hash


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


@dataclass
class Row:
    name: str
    endpoint: str
    status: str = "ok"  # ok | skipped | failed
    note: str = ""
    rps: float | None = None  # responses with an expected status, per second
    rps_all: float | None = None  # every completed response, per second
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    requests: int | None = None
    errors: int | None = None  # unexpected statuses + socket errors
    unexpected: int | None = None
    socket_errors: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    peak_rss_mib: float | None = None
    efficiency: float | None = None
    hash_s: float | None = None  # W1/W2/W4: one hash, timed just before and after this workload
    hash_timed_s: list[float] = field(default_factory=list)  # those two timings (the drift between)
    # W1/W2/W4: the hashing threads' CPU time over the measured run / (its seconds x server cores):
    # the share of the server's cores spent hashing, measured in the same interval as req/s.
    hash_share: float | None = None
    floor_rps: float | None = None  # W3/W5: FLOOR measured just before and after this workload
    vs_floor: float | None = None

    @classmethod
    def skipped(cls, name: str, endpoint: str, note: str) -> Row:
        return cls(name, endpoint, status="skipped", note=note)

    @classmethod
    def failed(cls, name: str, endpoint: str, note: str) -> Row:
        return cls(name, endpoint, status="failed", note=note)

    @classmethod
    def measured(cls, name: str, endpoint: str, res: WrkResult, expected: Iterable[int],
                 peak_rss_mib: float | None = None) -> Row:
        wanted = set(expected)
        return cls(
            name,
            endpoint,
            rps=res.ok_rps(wanted),
            rps_all=res.rps,
            p50_ms=res.latency_ms.get("p50"),
            p90_ms=res.latency_ms.get("p90"),
            p99_ms=res.latency_ms.get("p99"),
            max_ms=res.latency_ms.get("max"),
            requests=res.requests,
            errors=res.errors(wanted),
            unexpected=res.unexpected(wanted),
            socket_errors=dict(res.socket_errors),
            statuses={str(k): v for k, v in sorted(res.statuses.items())},
            counters=dict(res.counters),
            peak_rss_mib=peak_rss_mib,
        )


def finish_rows(rows: Sequence[Row], seconds_per_hash: float | None) -> None:
    """Fill in each row's ratio to FLOOR and, for W1/W2/W4, the hashing efficiency."""
    floor = next((r.rps for r in rows if r.name == "FLOOR" and r.status == "ok"), None)
    for r in rows:
        if r.status != "ok":
            continue
        # Hashing workloads are judged by efficiency, the flood by what it sheds: no ratio to FLOOR.
        compared = r.name != "FLOOR" and r.name not in HASHING and not r.name.endswith("-flood")
        r.vs_floor = ratio(r.rps, r.floor_rps or floor) if compared else None
        per_hash = r.hash_s or seconds_per_hash
        if r.name in HASHING and per_hash and r.rps is not None:
            r.efficiency = efficiency(r.rps, per_hash)
            if r.hash_s and not r.note:
                r.note = f"hash {r.hash_s * 1000:.1f} ms"
                if r.hash_share is not None:
                    r.note += f", hashing {r.hash_share:.0%} of the core"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(rows: Sequence[Row]) -> str:
    head = ("workload", "endpoint", "req/s", "p50 ms", "p99 ms", "errors", "RSS MiB", "hash eff", "/FLOOR", "note")
    lines = [head]
    for r in rows:
        lines.append((
            r.name, r.endpoint, _num(r.rps, ",.0f"), _num(r.p50_ms, ".2f"), _num(r.p99_ms, ".2f"),
            "-" if r.errors is None else str(r.errors), _num(r.peak_rss_mib, ".0f"),
            _num(r.efficiency, ".2f"), _num(r.vs_floor, ".2f"), r.note if r.status == "ok" else f"{r.status}: {r.note}",
        ))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head) - 1)]
    out = []
    for n, line in enumerate(lines):
        cells = [str(c).rjust(w) if 2 <= i <= 8 else str(c).ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join([*cells, str(line[-1])]).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths) + "  ----")
    return "\n".join(out)


def markdown(rows: Sequence[Row]) -> str:
    head = "| workload | endpoint | req/s | p50 ms | p99 ms | errors | RSS MiB | hash eff | /FLOOR |"
    out = [head, "|" + " --- |" * 9]
    for r in rows:
        if r.status != "ok":
            out.append(f"| {r.name} | `{r.endpoint}` | {r.status}: {r.note} | | | | | | |")
            continue
        out.append(
            f"| {r.name} | `{r.endpoint}` | {_num(r.rps, ',.0f')} | {_num(r.p50_ms, '.2f')} | "
            f"{_num(r.p99_ms, '.2f')} | {r.errors} | {_num(r.peak_rss_mib, '.0f')} | "
            f"{_num(r.efficiency, '.2f')} | {_num(r.vs_floor, '.2f')} |"
        )
    return "\n".join(out)


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def timestamp(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def write(doc: dict[str, Any], out_dir: Path, stamp: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, default=_default) + "\n"
    path = out_dir / f"{stamp}.json"
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    return path


def rows_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def _default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)
