"""``python -m bench``: start a server, prepare users and tokens, run the workloads, report.

Order: migrate a fresh database, time argon2id on the server's core (before any load) and register
a client app, in one process (bench/prep.py) → [scale:
COPY the base users] → start the server (time-to-ready) → users and sessions → the workloads →
[scale: COPY up to N users, repeat W2, W3, W5] → table on stdout, JSON in bench/results/.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import report, seed, soak, wrk
from bench.fixtures import Fixtures
from bench.options import SCALE_WORKLOADS, Options, parse
from bench.report import Row
from bench.server import Server
from bench.workloads import Runner


_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets that this run can check (ratios measured in one run)."""
    rows = {r["name"]: r for r in doc["workloads"] if r["status"] == "ok"}
    out: list[dict[str, Any]] = []

    def add(target: str, value: float | None, ok: bool | None) -> None:
        if value is not None:
            out.append({"target": target, "value": round(value, 3), "met": ok})

    for name in ("W3-me", "W3-info"):
        v = rows.get(name, {}).get("vs_floor")
        add(f"{name} >= 0.5 x FLOOR", v, v is not None and v >= 0.5)
    v = rows.get("W5", {}).get("vs_floor")
    add("W5 >= 0.3 x FLOOR", v, v is not None and v >= 0.3)
    for name in report.HASHING:
        v = rows.get(name, {}).get("efficiency")
        add(f"{name} hashing efficiency >= 0.9", v, v is not None and v >= 0.9)
    v = rows.get("W7", {}).get("p99_ms")
    add("W7 p99 <= 50 ms", v, v is not None and v <= 50)
    growth = (doc.get("soak") or {}).get("growth")
    if growth is not None:
        add(f"RSS growth < 10 % from {doc['soak']['rss_baseline_at']:,} to {doc['soak']['requests']:,} requests",
            round(growth, 4), growth < 0.10)
    v = doc["server"].get("ready_s")
    add("ready in < 1.5 s", v, v is not None and v < 1.5)
    for name, r in (doc.get("scale") or {}).get("vs_base", {}).items():
        add(f"{name} at {doc['scale']['users']:,} users >= 0.8 x at {doc['scale']['base_users']:,}", r, r >= 0.8)
    return out


def run(o: Options, argv: Sequence[str]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="authgate-bench-"))
    server = Server(workdir, stack=o.stack, workers=o.workers, cpus=o.server_cpus,
                    database_url=o.postgres, redis_url=o.redis, settings=o.settings)
    doc: dict[str, Any] = {
        "timestamp": report.timestamp(),
        "command": "python -m bench " + shlex.join(argv),
        "machine": report.machine(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(o).items()},
        "server": {"stack": o.stack, "workers": o.workers, "cpus": o.server_cpus, "wrk_cpus": o.wrk_cpus,
                   "database": "postgresql" if o.postgres else "sqlite", "redis": bool(o.redis)},
    }
    try:
        if o.postgres:
            seed.check_dedicated(o.postgres)
            asyncio.run(seed.reset(o.postgres))
        log(f"migrating ({doc['server']['database']}) and timing {o.hash_samples} argon2id hashes "
            f"on core(s) {o.server_cpus or 'any'} in {workdir}")
        prep = server.python("bench.prep", "--migrate", "--samples", str(o.hash_samples),
                             "--password", seed.PASSWORD, "--client", "bench")
        password_hash = prep["password_hash"]
        doc["hash"] = hashing = prep["hash"]
        fx = Fixtures(server, client=prep.get("client"))
        if o.scale is not None:
            assert o.postgres
            log(f"seeding {o.scale_base:,} users with COPY")
            asyncio.run(seed.copy_users(o.postgres, 1, o.scale_base + 1, password_hash))
            fx.users = o.scale_base
        doc["server"]["ready_s"] = server.start()
        log(f"server ({o.stack}, {o.workers} worker(s)) ready in {doc['server']['ready_s']:.3f}s at {server.url}")
        if o.scale is None:
            failed = fx.signup_users(o.users)
            if failed is not None:
                fx.notes.append(f"signup of bench users answered {failed.status}: {failed.body[:160]}")
        wants_session = o.soak is not None or any(n in o.only for n in ("W3-me", "W3-info", "W5", "W6", "W7"))
        if wants_session and fx.users:
            try:
                # one session per wrk connection: W6 refreshes each from one connection at a time,
                # as a client refreshes its own session (no two requests queue on one row)
                fx.open_sessions(o.connections)
            except Exception as exc:  # noqa: BLE001 - the workloads needing a session skip
                fx.notes.append(f"{type(exc).__name__}: {exc}"[:300])
        runner = Runner(o, server, fx, workdir, log, hashing.get("params"))
        log(f"workloads: {o.duration:g}s each after {o.warmup:g}s of warm-up, "
            f"{o.connections} connections, {runner.wrk_threads} wrk thread(s) on core(s) {o.wrk_cpus or 'any'}")
        rows = runner.suite(o.only)
        report.finish_rows(rows, hashing["hash_s"])
        doc["workloads"] = report.rows_json(rows)
        doc["fixtures"] = {"users": fx.users, "sessions": len(fx.sessions), "token_source": fx.token_source,
                           "notes": fx.notes}
        if o.scale is not None:
            doc["scale"] = scale(o, server, fx, workdir, rows, password_hash, hashing.get("params"))
        if o.soak is not None:
            doc["soak"] = run_soak(o, server, fx, runner)
        doc["targets"] = targets(doc)
        return doc
    finally:
        server.stop()
        doc.setdefault("server", {})["log_tail"] = server.log()[-2000:]
        if o.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def scale(o: Options, server: Server, fx: Fixtures, workdir: Path, base_rows: list[Row],
          password_hash: str, hash_params: dict[str, int] | None = None) -> dict[str, Any]:
    assert o.postgres and o.scale
    log(f"seeding users {o.scale_base + 1:,}..{o.scale:,} with COPY")
    t0 = time.perf_counter()

    def progress(done: int, seconds: float) -> None:
        log(f"  {done:,} rows in {seconds:.0f}s")

    asyncio.run(seed.copy_users(o.postgres, o.scale_base + 1, o.scale + 1, password_hash, progress=progress))
    seeded_s = time.perf_counter() - t0
    fx.users = o.scale
    runner = Runner(o, server, fx, workdir, log, hash_params)
    log(f"repeating {', '.join(SCALE_WORKLOADS)} with {o.scale:,} users")
    runner.suite([n for n in SCALE_WORKLOADS if n in o.only])
    rows = runner.rows
    base = {r.name: r for r in base_rows if r.status == "ok"}
    floor = base.get("FLOOR")
    report.finish_rows([*([floor] if floor else []), *rows], None)
    vs_base = {}
    for r in rows:
        before = base[r.name].rps if r.status == "ok" and r.name in base else None
        if before and r.rps is not None:
            vs_base[r.name] = r.rps / before
    return {"base_users": o.scale_base, "users": o.scale, "seed_s": round(seeded_s, 1),
            "workloads": report.rows_json(rows), "vs_base": vs_base}


def run_soak(o: Options, server: Server, fx: Fixtures, runner: Runner) -> dict[str, Any]:
    assert o.soak is not None
    if not fx.sessions:
        return {"skipped": "no session: " + ("; ".join(fx.notes) or "no bench user")}
    log(f"soak: mixed requests until {o.soak:,} responses, RSS after every {o.duration:g}s")
    result = soak.run(
        lambda script, args, seconds: runner.command(script, args, seconds), server.pid, fx.access,
        o.soak, o.soak_warm, chunk_s=o.duration, log=log,
    )
    return result.json()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    o = parse(argv)
    if not wrk.have_wrk():
        log(wrk.WRK_MISSING)
        return 2
    doc = run(o, argv)
    rows = [Row(**r) for r in doc["workloads"]]
    print(report.table(rows))
    if doc.get("scale"):
        print(f"\nwith {doc['scale']['users']:,} users (seeded in {doc['scale']['seed_s']}s):")
        print(report.table([Row(**r) for r in doc["scale"]["workloads"]]))
    h = doc["hash"]
    print(f"\nready in {doc['server']['ready_s']:.3f}s; one argon2id hash {h['hash_s'] * 1000:.1f} ms "
          f"(verify {h['verify_s'] * 1000:.1f} ms; m={h['params']['memory_kib']} KiB, t={h['params']['time_cost']}, "
          f"p={h['params']['parallelism']}); tokens: {doc['fixtures']['token_source'] or 'none'}")
    if doc.get("soak") and "growth" in doc["soak"]:
        s = doc["soak"]
        growth = "n/a" if s["growth"] is None else f"{s['growth'] * 100:+.1f} %"
        print(f"soak: {s['requests']:,} responses at {s['rps']} req/s; RSS {s['rss_baseline_mib']} MiB after "
              f"{s['rss_baseline_at']:,} -> {s['rss_end_mib']} MiB at the end ({growth}); "
              f"{s['unexpected']} unexpected, {s['socket_errors']} socket errors")
    for note in doc["fixtures"]["notes"]:
        print(f"note: {note}")
    for t in doc["targets"]:
        print(f"target {'met    ' if t['met'] else 'NOT met'}  {t['target']}: {t['value']}")
    path = report.write(doc, o.out, doc["timestamp"])
    print(f"results: {path}")
    return 0
