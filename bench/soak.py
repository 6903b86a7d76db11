"""Soak (``--soak [N]``): is there a leak? Mixed requests (bench/lua/mix.lua) in chunks of a few
seconds until N responses, the server's resident memory read after each chunk. The growth is
RSS at the end over RSS once ``--soak-warm`` responses (100,000) have been served: caches and
pools are full by then, so what still grows is kept per request. Issue 8's target: under 10 %.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import wrk
from bench.server import children_of, status_kib

EXPECTED = (200, 400, 401)  # mix.lua: reads, a malformed login, a forged token


@dataclass
class Soak:
    """RSS samples as (responses so far, MiB) and the verdict."""

    warm: int
    samples: list[tuple[int, float]] = field(default_factory=list)
    unexpected: int = 0
    socket_errors: int = 0
    seconds: float = 0.0

    def add(self, res: wrk.WrkResult, rss_mib: float) -> None:
        done = (self.samples[-1][0] if self.samples else 0) + res.requests
        self.samples.append((done, rss_mib))
        self.unexpected += res.unexpected(EXPECTED)
        self.socket_errors += sum(res.socket_errors.values())
        self.seconds += res.duration_s

    @property
    def requests(self) -> int:
        return self.samples[-1][0] if self.samples else 0

    @property
    def baseline(self) -> tuple[int, float] | None:
        """The first sample at or past ``warm`` responses."""
        return next((s for s in self.samples if s[0] >= self.warm), None)

    @property
    def growth(self) -> float | None:
        """RSS at the end over RSS at the baseline, minus one (0.05 = 5 % more)."""
        base = self.baseline
        if base is None or base is self.samples[-1] or base[1] <= 0:
            return None
        return self.samples[-1][1] / base[1] - 1.0

    def json(self) -> dict[str, Any]:
        base = self.baseline
        return {
            "requests": self.requests, "warm": self.warm, "seconds": round(self.seconds, 1),
            "rps": round(self.requests / self.seconds, 1) if self.seconds else None,
            "rss_baseline_mib": round(base[1], 1) if base else None,
            "rss_baseline_at": base[0] if base else None,
            "rss_end_mib": round(self.samples[-1][1], 1) if self.samples else None,
            "growth": None if self.growth is None else round(self.growth, 4),
            "unexpected": self.unexpected, "socket_errors": self.socket_errors,
            "samples": [[n, round(m, 1)] for n, m in self.samples],
        }


def rss_mib(pid: int) -> float:
    return sum(status_kib(p, "VmRSS") for p in children_of(pid)) / 1024.0


def run(
    command: Callable[[str, Sequence[str], float], list[str]],
    pid: int,
    token: str,
    total: int,
    warm: int,
    chunk_s: float = 10.0,
    log: Callable[[str], None] = print,
) -> Soak:
    """``command(script, args, seconds)`` builds the wrk command line (Runner.command)."""
    soak = Soak(warm)
    # Past N responses, one more chunk when the baseline is still the last sample (a fast server
    # can pass both the baseline and N in its first chunk): growth needs a sample after it.
    while soak.requests < total or soak.growth is None:
        res = wrk.run(command("mix.lua", [token], chunk_s), chunk_s)
        if res.requests == 0:
            raise RuntimeError("soak: a chunk completed no request (is the server up?)")
        soak.add(res, rss_mib(pid))
        n, mib = soak.samples[-1]
        log(f"  soak: {n:,} responses, RSS {mib:.1f} MiB")
    return soak
