"""Command-line options of ``python -m bench``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# W4 runs last: wrong passwords may lock the bench accounts if lockout is on.
WORKLOADS = ("FLOOR", "W3-me", "W3-info", "W5", "W6", "W2", "W7", "W1", "W4")
SCALE_WORKLOADS = ("W3-me", "W3-info", "W5", "W2")
DEFAULT_SCALE = 1_000_000
DEFAULT_SOAK = 1_000_000


@dataclass
class Options:
    duration: float = 10.0
    warmup: float = 2.0
    connections: int = 32
    threads: int = 1
    quick: bool = False
    postgres: str | None = None
    redis: str | None = None
    scale: int | None = None
    scale_base: int = 1000
    workers: int = 1
    stack: str = "uvicorn"
    server_cpus: str | None = "0"
    wrk_cpus: str | None = "1"
    only: list[str] = field(default_factory=lambda: list(WORKLOADS))
    out: Path = RESULTS
    users: int = 16
    hash_samples: int = 10
    flood_connections: int = 64
    # W5 asks, in random order, for this many distinct usernames at every size (scale mode: a
    # random sample of the N users), so that 1,000 and 1,000,000 users see the same traffic and
    # differ only in the table's size (as W3's one user does)
    w5_names: int = 1000
    timeout: float = 10.0  # wrk --timeout: a mobile HTTP client's usual 10 s (OkHttp)
    keep: bool = False
    soak: int | None = None
    soak_warm: int = 100_000
    settings: dict[str, str] = field(default_factory=dict)  # --set: extra AUTHGATE_* for the server

    def wants(self, name: str) -> bool:
        return name in self.only


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = getattr(kind, "__name__", "number")  # argparse names the type in errors
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark a real `authgate serve` with wrk (docs/performance.md).",
    )
    p.add_argument("--duration", type=_positive(float), help="seconds measured per workload (default 10)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up before each workload (default 2)")
    p.add_argument("-c", "--connections", type=_positive(int), help="wrk connections (default 32)")
    p.add_argument("-t", "--threads", type=_positive(int), help="wrk threads (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 s per workload, no warm-up")
    p.add_argument("--postgres", metavar="URL", help="PostgreSQL URL of a dedicated database (wiped!)")
    p.add_argument("--redis", metavar="URL", help="Redis URL (shared cache, nonces, rate limits)")
    p.add_argument(
        "--scale", type=_positive(int), nargs="?", const=DEFAULT_SCALE, metavar="N",
        help=f"seed N users into PostgreSQL (default {DEFAULT_SCALE:,}) and repeat W2, W3, W5",
    )
    p.add_argument(
        "--soak", type=_positive(int), nargs="?", const=DEFAULT_SOAK, metavar="N",
        help=f"after the workloads, mixed requests until N responses (default {DEFAULT_SOAK:,}), RSS sampled",
    )
    p.add_argument("--soak-warm", type=_positive(int), help="responses before the soak's RSS baseline (100,000)")
    p.add_argument("--scale-base", type=_positive(int), help="users of the base run in --scale mode (1000)")
    p.add_argument("--workers", type=_positive(int), help="server worker processes (default 1)")
    p.add_argument("--server", dest="stack", choices=("uvicorn", "granian"), help="server stack (uvicorn)")
    p.add_argument("--server-cpus", help="cores for the server, taskset syntax (default 0, or 0-N-1)")
    p.add_argument("--wrk-cpus", help="cores for wrk, taskset syntax (default 1)")
    p.add_argument("--no-pin", action="store_true", help="do not pin anything with taskset")
    p.add_argument("--only", help=f"comma-separated workloads, a prefix selects several: {','.join(WORKLOADS)}")
    p.add_argument("--out", type=Path, help=f"results directory (default {RESULTS})")
    p.add_argument("--users", type=_positive(int), help="bench users created by signup (default 16)")
    p.add_argument("--hash-samples", type=_positive(int), help="argon2id hashes timed (default 10)")
    p.add_argument("--flood-connections", type=_positive(int), help="W7's login flood connections (64)")
    p.add_argument("--w5-names", type=_positive(int),
                   help="distinct usernames W5 asks for, at most the users there are (default 1000)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (server log, db)")
    p.add_argument(
        "--set", dest="settings", action="append", metavar="NAME=VALUE", default=[],
        help="a server setting for an experiment, e.g. --set ARGON2_MEMORY_KIB=1024 (AUTHGATE_ is added)",
    )
    return p


def cpu_count(spec: str | None) -> int:
    """Cores in a taskset list ("0", "0-1", "0,2-3"); unpinned: the machine's."""
    if not spec:
        return os.cpu_count() or 1
    cores: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cores.update(range(int(lo), int(hi or lo) + 1))
    return len(cores)


def select(spec: str | None) -> list[str]:
    """``W3`` selects W3-me and W3-info; names are case-insensitive; order is the suite's."""
    if not spec:
        return list(WORKLOADS)
    chosen: list[str] = []
    for raw in spec.split(","):
        name = raw.strip().upper()
        if not name:
            continue
        hits = [w for w in WORKLOADS if w.upper() == name or w.upper().startswith(name + "-")]
        if not hits:
            raise SystemExit(f"--only: unknown workload {raw.strip()!r} (known: {', '.join(WORKLOADS)})")
        chosen.extend(h for h in hits if h not in chosen)
    return [w for w in WORKLOADS if w in chosen]


def parse(argv: Sequence[str] | None = None) -> Options:
    p = parser()
    a = p.parse_args(argv)
    o = Options()
    if a.quick:
        o.quick = True
        o.duration, o.warmup, o.connections = 1.0, 0.0, 8
        o.users, o.hash_samples, o.flood_connections = 2, 2, 16
    for name in ("duration", "warmup", "connections", "threads", "postgres", "redis", "scale", "scale_base",
                 "workers", "stack", "out", "users", "hash_samples", "flood_connections", "w5_names", "soak",
                 "soak_warm"):
        value = getattr(a, name)
        if value is not None:
            setattr(o, name, value)
    if o.warmup < 0:
        p.error("--warmup cannot be negative")
    if o.threads > o.connections:
        p.error("--threads cannot exceed --connections")
    if o.scale is not None:
        if not o.postgres:
            p.error("--scale seeds PostgreSQL: give --postgres URL too")
        if o.scale <= o.scale_base:
            p.error(f"--scale N must be above the base of {o.scale_base} users")
    o.only = select(a.only)
    if o.soak is not None and o.soak <= o.soak_warm:
        p.error(f"--soak N must be above --soak-warm ({o.soak_warm:,})")
    for item in a.settings:
        name, sep, value = item.partition("=")
        name = name.strip().upper().removeprefix("AUTHGATE_")
        if not sep or not name:
            p.error(f"--set wants NAME=VALUE, got {item!r}")
        o.settings["AUTHGATE_" + name] = value
    o.keep = a.keep
    if a.no_pin:
        o.server_cpus = o.wrk_cpus = None
    else:
        o.server_cpus = a.server_cpus or ("0" if o.workers == 1 else f"0-{o.workers - 1}")
        o.wrk_cpus = a.wrk_cpus or "1"
    return o
