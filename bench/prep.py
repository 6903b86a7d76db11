"""``python -m bench.prep``: everything the run needs before the server starts, in one process
(each Python start costs a second or more on a busy machine), printed as one JSON object:

- ``--migrate``: create the schema (as ``authgate migrate`` does);
- the seconds one password hash (and one verification) takes with the server's argon2id
  parameters, read from the same AUTHGATE_* settings. bench/cli.py runs this pinned to the
  server's core, before any load, so the hashing efficiency of W1/W2/W4 (requests/s × seconds
  per hash) compares like with like;
- ``--password P``: P's hash with those parameters (what seeded users get, so a login checks
  exactly what it would for a user who signed up);
- ``--client NAME``: a registered client app (clientId, clientSecret) for W5's signatures;
- ``--time-hash M,T,P``: only the hash timing, with these parameters (no settings, no
  database): bench/cli.py re-times the hash around each hashing workload, since this machine's
  speed drifts by ±10 % within minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from argon2 import PasswordHasher, Type


def measure(samples: int, memory_kib: int, time_cost: int, parallelism: int) -> dict[str, Any]:
    """Median seconds of a hash and of a verification (after one warm-up hash)."""
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID)
    stored = hasher.hash("bench-warm-up-password")  # the first call pays for page faults
    times, verify_times = [], []
    for i in range(max(1, samples)):
        t0 = time.perf_counter()
        hasher.hash(f"bench-password-{i}")
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        hasher.verify(stored, "bench-warm-up-password")
        verify_times.append(time.perf_counter() - t0)
    return {
        "hash_s": statistics.median(times),
        "verify_s": statistics.median(verify_times),
        "samples": len(times),
        "params": {"memory_kib": memory_kib, "time_cost": time_cost, "parallelism": parallelism},
    }


async def register(name: str) -> dict[str, Any]:
    from authgate.config import Settings
    from authgate.container import build
    from authgate.core.flows.clients import register_client

    container = await build(Settings())
    try:
        return await register_client(container.core, name, ["web"], [])
    finally:
        await container.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prep")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--migrate", action="store_true")
    parser.add_argument("--password")
    parser.add_argument("--client")
    parser.add_argument("--time-hash", metavar="M,T,P")
    args = parser.parse_args()
    if args.time_hash:
        memory_kib, time_cost, parallelism = (int(v) for v in args.time_hash.split(","))
        print(json.dumps({"hash": measure(args.samples, memory_kib, time_cost, parallelism)}))
        return
    from authgate.config import Settings

    s = Settings()
    doc: dict[str, Any] = {}
    if args.migrate:
        from authgate.storage.migrate import upgrade

        upgrade(s.database_url)
    doc["hash"] = measure(args.samples, s.argon2_memory_kib, s.argon2_time_cost, s.argon2_parallelism)
    if args.password:
        doc["password_hash"] = PasswordHasher(
            time_cost=s.argon2_time_cost, memory_cost=s.argon2_memory_kib,
            parallelism=s.argon2_parallelism, type=Type.ID,
        ).hash(args.password)
    if args.client:
        try:
            doc["client"] = asyncio.run(register(args.client))
        except Exception as exc:  # noqa: BLE001 - the caller falls back to `authgate clients create`
            doc["client_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
