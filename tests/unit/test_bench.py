"""The benchmark's own code (bench/): options, wrk output, the efficiency arithmetic, the W5 signed
requests (checked against CONTRACT §1's rule, written out here independently), results files.
Figures are never asserted: only the arithmetic and the parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from pathlib import Path

import pytest

from bench import options, report, seed, signing, wrk
from bench.cli import targets
from bench.report import Row

# --- options -------------------------------------------------------------------------------------


def test_defaults() -> None:
    o = options.parse([])
    assert (o.duration, o.warmup, o.connections, o.threads, o.workers) == (10.0, 2.0, 32, 1, 1)
    assert o.only == list(options.WORKLOADS)
    assert (o.server_cpus, o.wrk_cpus) == ("0", "1")
    assert o.postgres is None and o.redis is None and o.scale is None
    assert o.stack == "uvicorn"
    assert o.keep is False
    assert options.parse(["--keep"]).keep is True


def test_quick_is_short_and_explicit_flags_win() -> None:
    o = options.parse(["--quick"])
    assert o.quick and o.duration == 1.0 and o.warmup == 0.0
    o = options.parse(["--quick", "--duration", "3", "-c", "64", "-t", "2"])
    assert (o.duration, o.connections, o.threads) == (3.0, 64, 2)


def test_scale_defaults_to_a_million_and_needs_postgres() -> None:
    pg = "postgresql+asyncpg://postgres@127.0.0.1/bench"
    assert options.parse(["--postgres", pg, "--scale"]).scale == 1_000_000
    assert options.parse(["--postgres", pg, "--scale", "5000"]).scale == 5000
    with pytest.raises(SystemExit):
        options.parse(["--scale"])
    with pytest.raises(SystemExit):  # N must exceed the base run's 1,000 users
        options.parse(["--postgres", pg, "--scale", "1000"])


def test_set_passes_server_settings_with_the_prefix(tmp_path: Path) -> None:
    from bench.server import server_env

    o = options.parse(["--set", "argon2_memory_kib=1024", "--set", "AUTHGATE_HASH_WORKERS=2"])
    assert o.settings == {"AUTHGATE_ARGON2_MEMORY_KIB": "1024", "AUTHGATE_HASH_WORKERS": "2"}
    env = server_env(tmp_path, 8000, None, None, 1, o.settings)
    assert env["AUTHGATE_ARGON2_MEMORY_KIB"] == "1024" and env["AUTHGATE_RATE_LIMITS"] == "off"
    # an explicit --set wins over the benchmark's own defaults
    assert server_env(tmp_path, 8000, None, None, 1, {"AUTHGATE_LOG_LEVEL": "info"})["AUTHGATE_LOG_LEVEL"] == "info"


@pytest.mark.parametrize("argv", [["--duration", "0"], ["-c", "-1"], ["-t", "4", "-c", "2"], ["--warmup", "-1"],
                                  ["--server", "gunicorn"], ["--set", "NOVALUE"], ["--set", "=1"]])
def test_bad_values_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        options.parse(argv)


def test_only_selects_by_name_or_family_in_suite_order() -> None:
    assert options.parse(["--only", "w3"]).only == ["W3-me", "W3-info"]
    assert options.parse(["--only", "W2,floor,W3-info"]).only == ["FLOOR", "W3-info", "W2"]
    with pytest.raises(SystemExit):
        options.parse(["--only", "W9"])


def test_pinning_follows_workers_and_can_be_turned_off() -> None:
    assert options.parse(["--workers", "2"]).server_cpus == "0-1"
    assert options.parse(["--server-cpus", "3", "--wrk-cpus", "2"]).server_cpus == "3"
    o = options.parse(["--no-pin"])
    assert o.server_cpus is None and o.wrk_cpus is None


def test_pinned_only_uses_taskset_for_cores_we_may_run_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wrk.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(wrk.os, "sched_getaffinity", lambda pid: {0, 1})
    assert wrk.pinned("1", ["wrk"]) == ["taskset", "-c", "1", "wrk"]
    assert wrk.pinned("0-1", ["x"]) == ["taskset", "-c", "0-1", "x"]
    assert wrk.pinned("5", ["wrk"]) == ["wrk"]
    assert wrk.pinned(None, ["wrk"]) == ["wrk"]


def test_wrk_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wrk, "pinned", lambda cpus, argv: list(argv))
    argv = wrk.command("http://h:1", "get.lua", ["/healthz", "tok"], duration=1.4, connections=4, threads=8)
    assert argv[:4] == ["wrk", "-t4", "-c4", "-d1s"]  # threads never exceed connections
    assert argv[-4:] == ["http://h:1", "--", "/healthz", "tok"]
    assert str(wrk.LUA_DIR / "get.lua") in argv


def test_a_missing_wrk_is_said_plainly(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import cli

    monkeypatch.setattr(cli.wrk, "have_wrk", lambda: False)
    monkeypatch.setattr(cli, "run", lambda *a: pytest.fail("must not start a server without wrk"))
    assert cli.main(["--quick"]) == 2
    assert "apt-get install -y wrk" in capsys.readouterr().err


def test_every_script_exists_and_uses_the_common_hooks() -> None:
    common = (wrk.LUA_DIR / "common.lua").read_text()
    assert "function done(" in common and "BENCH_JSON" in common
    for script in ("get.lua", "login.lua", "signup.lua", "refresh.lua", "signed.lua"):
        assert 'require "common"' in (wrk.LUA_DIR / script).read_text()


# --- wrk output ----------------------------------------------------------------------------------
DONE = {
    "duration_us": 2_000_000, "requests": 1000, "bytes": 123456,
    "errors": {"connect": 0, "read": 2, "write": 0, "status": 10, "timeout": 3},
    "latency_us": {"min": 100, "max": 90000, "mean": 2500.5, "stdev": 10.0, "p50": 2000, "p90": 4000,
                   "p99": 12000, "p999": 50000},
    "statuses": {"200": 980, "401": 10, "503": 10}, "counters": {"replayed": 4},
}


def test_parse_the_done_hook_line() -> None:
    out = "Running 2s test @ http://127.0.0.1\n  1 threads and 8 connections\n" + "BENCH_JSON " + json.dumps(DONE)
    res = wrk.parse_output(out)
    assert res.duration_s == 2.0 and res.requests == 1000
    assert res.rps == 500.0
    assert res.latency_ms["p50"] == 2.0 and res.latency_ms["p99"] == 12.0 and res.latency_ms["max"] == 90.0
    assert res.statuses == {200: 980, 401: 10, 503: 10}
    assert res.socket_errors == {"connect": 0, "read": 2, "write": 0, "timeout": 3}
    assert res.socket_error_count == 5
    assert res.ok([200]) == 980 and res.ok_rps([200]) == 490.0
    assert res.unexpected([200]) == 20 and res.errors([200]) == 25
    assert res.unexpected([200, 503]) == 10  # W7's flood: shedding with 503 is allowed
    assert res.counters == {"replayed": 4}


WRK_TEXT = """Running 10s test @ http://127.0.0.1:8000/healthz
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.21ms    1.02ms  40.11ms   90.00%
    Req/Sec     5.01k   300.00     5.80k    70.00%
  Latency Distribution
     50%    3.05ms
     75%    3.50ms
     90%    4.10ms
     99%  750.00us
  99912 requests in 10.01s, 14.20MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 12
Requests/sec:   9981.02
Transfer/sec:      1.42MB
"""


def test_parse_wrk_text_when_the_hook_did_not_print() -> None:
    res = wrk.parse_output(WRK_TEXT)
    assert res.requests == 99912 and res.duration_s == pytest.approx(10.01)
    assert res.latency_ms["p50"] == pytest.approx(3.05) and res.latency_ms["p99"] == pytest.approx(0.75)
    assert res.socket_errors["timeout"] == 2 and res.socket_errors["read"] == 1
    assert res.unexpected([200]) == 12 and res.errors([200]) == 15


def test_no_summary_at_all_is_an_error() -> None:
    with pytest.raises(wrk.WrkError):
        wrk.parse_output("unable to connect to 127.0.0.1:1 Connection refused\n")


# --- efficiency, rows, targets -------------------------------------------------------------------
def test_efficiency_is_rate_times_hash_seconds() -> None:
    assert report.efficiency(20.0, 0.05) == pytest.approx(1.0)
    assert report.efficiency(9.0, 0.1) == pytest.approx(0.9)
    assert report.efficiency(0.0, 0.05) == 0.0
    with pytest.raises(ValueError):
        report.efficiency(-1.0, 0.05)


def _row(name: str, rps: float, p99: float = 1.0) -> Row:
    return Row(name, "x", rps=rps, p99_ms=p99)


def test_finish_rows_sets_ratios_and_efficiency_only_where_they_mean_something() -> None:
    rows = [_row("FLOOR", 1000), _row("W3-me", 600), _row("W2", 18), _row("W6", 200),
            _row("W7-flood", 15), Row.skipped("W5", "x", "answers 404: not built yet")]
    report.finish_rows(rows, 0.05)
    by = {r.name: r for r in rows}
    assert by["FLOOR"].vs_floor is None and by["W3-me"].vs_floor == pytest.approx(0.6)
    assert by["W6"].vs_floor == pytest.approx(0.2)
    assert by["W2"].vs_floor is None and by["W7-flood"].vs_floor is None
    assert by["W2"].efficiency == pytest.approx(0.9)
    assert by["W3-me"].efficiency is None and by["W6"].efficiency is None
    assert by["W5"].vs_floor is None and by["W5"].efficiency is None


def test_a_hash_timed_around_the_workload_is_what_its_efficiency_divides_by() -> None:
    w4 = _row("W4", 18)
    w4.hash_s = 0.04  # the machine slowed down since the run's first timing (0.05)
    w2 = _row("W2", 18)
    report.finish_rows([w4, w2], 0.05)
    assert w4.efficiency == pytest.approx(0.72) and w4.note == "hash 40.0 ms"
    assert w2.efficiency == pytest.approx(0.9) and w2.note == ""
    w1 = _row("W1", 18)
    w1.hash_s, w1.hash_share = 0.05, 0.934
    report.finish_rows([w1], 0.05)
    assert w1.note == "hash 50.0 ms, hashing 93% of the core"


def test_prep_times_a_hash_without_settings_or_a_database(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "bench.prep", "--time-hash", "64,1,1", "--samples", "3"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    timed = json.loads(out.stdout)["hash"]
    assert timed["samples"] == 3 and 0 < timed["hash_s"] < 1
    assert timed["params"] == {"memory_kib": 64, "time_cost": 1, "parallelism": 1}


def test_runner_times_the_hash_before_and_after_a_hashing_workload_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.workloads import Runner

    timings = iter([0.030, 0.040])
    runner = Runner.__new__(Runner)
    runner.opts = options.parse(["--warmup", "0", "--duration", "1"])
    runner.hash_params = {"memory_kib": 19456, "time_cost": 2, "parallelism": 1}
    runner.time_hash = lambda: next(timings)  # type: ignore[method-assign]
    runner.command = lambda script, args, seconds, **_: ["wrk"]  # type: ignore[method-assign]

    class Rss:
        peak_mib = 100.0

        def __enter__(self) -> Rss:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    cpu = iter([10.0, 10.9])  # the hashing threads' CPU seconds before and after the run

    runner.server = type("S", (), {"rss": lambda self: Rss(), "hashing_cpu": lambda self: next(cpu)})()  # type: ignore[assignment]
    clock = iter([100.0, 101.0])
    monkeypatch.setattr("bench.workloads.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("bench.workloads.wrk.run", lambda cmd, seconds: wrk.WrkResult(1.0, 30, {200: 30}))
    row = runner.measure("W2", "POST /app/auth/login", "login.lua", lambda _p, _s: [], [200])
    assert row.hash_s == pytest.approx(0.035)
    assert row.hash_timed_s == [0.030, 0.040]  # both timings kept: the drift across the workload
    assert row.hash_share == pytest.approx(0.9)  # 0.9 s of hashing in 1 s on one core
    monkeypatch.setattr("bench.workloads.time.monotonic", lambda: 0.0)
    cpu = iter([0.0] * 10)
    row = runner.measure("W3-me", "GET /me", "get.lua", lambda _p, _s: [], [200])
    assert row.hash_s is None and row.hash_timed_s == []
    assert row.floor_rps == pytest.approx(30.0)  # FLOOR re-measured around the ratio workload
    runner.opts = options.parse(["--warmup", "0", "--duration", "1", "--only", "W3"])
    assert runner.measure("W3-me", "GET /me", "get.lua", lambda _p, _s: [], [200]).floor_rps is None


def test_a_ratio_divides_by_the_floor_measured_around_its_workload() -> None:
    w5 = _row("W5", 300)
    w5.floor_rps = 750.0  # the machine was slower than at the run's own FLOOR (1000)
    w3 = _row("W3-me", 600)
    report.finish_rows([_row("FLOOR", 1000), w5, w3], None)
    assert w5.vs_floor == pytest.approx(0.4) and w3.vs_floor == pytest.approx(0.6)


def test_targets_from_one_run() -> None:
    rows = [_row("FLOOR", 1000), _row("W3-me", 600), _row("W5", 250), _row("W2", 18), _row("W7", 5, p99=80.0)]
    report.finish_rows(rows, 0.05)
    doc = {"workloads": report.rows_json(rows), "server": {"ready_s": 1.2},
           "scale": {"users": 1_000_000, "base_users": 1000, "vs_base": {"W2": 0.85, "W5": 0.7}}}
    got = {t["target"]: t["met"] for t in targets(doc)}
    assert got["W3-me >= 0.5 x FLOOR"] is True
    assert got["W5 >= 0.3 x FLOOR"] is False
    assert got["W2 hashing efficiency >= 0.9"] is True
    assert got["W7 p99 <= 50 ms"] is False
    assert got["ready in < 1.5 s"] is True
    assert got["W2 at 1,000,000 users >= 0.8 x at 1,000"] is True
    assert got["W5 at 1,000,000 users >= 0.8 x at 1,000"] is False
    assert not any("W3-info" in t for t in got)  # not measured: not judged


def test_table_and_results_files(tmp_path: Path) -> None:
    rows = [_row("FLOOR", 1234.5), Row.skipped("W6", "POST /api/v1/auth/refresh", "answers 404: not built yet")]
    text = report.table(rows)
    assert "1,234" in text or "1,235" in text
    assert "skipped: answers 404: not built yet" in text
    assert "| W6 |" in report.markdown(rows)
    path = report.write({"workloads": report.rows_json(rows)}, tmp_path, "20260101T000000Z")
    assert path.name == "20260101T000000Z.json"
    assert json.loads((tmp_path / "latest.json").read_text()) == json.loads(path.read_text())
    assert re.fullmatch(r"\d{8}T\d{6}Z", report.timestamp())


def test_machine_names_cores_and_cpu() -> None:
    m = report.machine()
    assert m["nproc"] and "cpu_model" in m


# --- W5's signed requests, against CONTRACT §1 ---------------------------------------------------
def _b64url_decode(text: str) -> bytes:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", text), "base64url without padding"
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def contract_check(secret: str, payload: str, signature: str, method: str, path: str, body: bytes,
                   now: float) -> dict[str, object]:
    """CONTRACT §1, written out: x-app-signature = base64url(HMAC-SHA256(clientSecret, the
    x-app-payload string as sent)); the payload is base64url JSON {clientId, ts, nonce (>= 16),
    method, path, bodySha256}; ts within 300 s."""
    expected = base64.urlsafe_b64encode(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
    assert hmac.compare_digest(expected.rstrip(b"=").decode(), signature)
    doc = json.loads(_b64url_decode(payload))
    assert set(doc) == {"clientId", "ts", "nonce", "method", "path", "bodySha256"}
    assert isinstance(doc["ts"], int) and abs(now - doc["ts"]) <= 300
    assert isinstance(doc["nonce"], str) and len(doc["nonce"]) >= 16
    assert doc["method"] == method and doc["path"] == path
    assert doc["bodySha256"] == hashlib.sha256(body).hexdigest()
    return doc


def test_signed_requests_verify_under_the_contracts_rule() -> None:
    now = 1_800_000_000.0
    reqs = list(signing.generate("cl_abc", "s3cret", ["bu0000001", "bu0000002"], 50, duration=60, now=now))
    assert len(reqs) == 50
    nonces = set()
    for i, r in enumerate(reqs):
        name = f"bu000000{i % 2 + 1}"
        assert r.username == name and r.path == f"/api/customers/check-username/{name}"
        # valid from the first request of the run to the last
        for t in (now, now + 60):
            doc = contract_check("s3cret", r.payload, r.signature, "GET", r.path, b"", t)
        assert doc["clientId"] == "cl_abc"
        nonces.add(doc["nonce"])
    assert len(nonces) == 50  # a fresh nonce per request


def test_a_signature_is_bound_to_its_secret_and_payload() -> None:
    r = signing.signed_request("cl_abc", "s3cret", "bu0000001", ts=1000, nonce="n" * 16)
    with pytest.raises(AssertionError):
        contract_check("other", r.payload, r.signature, "GET", r.path, b"", 1000)
    with pytest.raises(AssertionError):
        contract_check("s3cret", r.payload, r.signature, "GET", r.path + "x", b"", 1000)
    with pytest.raises(AssertionError):  # out of the ±300 s window
        contract_check("s3cret", r.payload, r.signature, "GET", r.path, b"", 1000 + 301)


def test_ts_stays_in_the_window_for_long_runs() -> None:
    for duration in (1, 60, 480):
        ts = signing.valid_ts(0, duration)
        assert abs(ts - 0) <= 300 and abs(ts - duration) <= 300


def test_signed_file_has_one_request_per_line(tmp_path: Path) -> None:
    path = tmp_path / "signed.tsv"
    n = signing.write_file(path, signing.generate("cl", "s", ["bu0000001"], 5, duration=10))
    lines = path.read_text().splitlines()
    assert n == 5 and len(lines) == 5
    for line in lines:
        fields = line.split("\t")
        assert len(fields) == 4  # path, x-username, x-app-payload, x-app-signature (as signed.lua reads)
        assert fields[0].endswith("/" + fields[1])


def test_generate_needs_usernames() -> None:
    with pytest.raises(ValueError):
        list(signing.generate("cl", "s", [], 1, 10))


# --- seeding -------------------------------------------------------------------------------------
def test_seeded_users_match_what_the_lua_scripts_ask_for() -> None:
    assert seed.username(7) == "bu0000007"  # login.lua: string.format("%s%07d", prefix, i)
    (row,) = list(seed.rows(7, 8, "$argon2id$x"))
    values = dict(zip(seed.COLUMNS, row, strict=True))
    assert values["username"] == "bu0000007" and values["username_norm"] == "bu0000007"
    assert values["email"] == "bu0000007@bench.example.com" and values["password_hash"] == "$argon2id$x"
    assert json.loads(str(values["roles"])) == ["ROLE_USER"] and values["is_active"] is True


def test_only_a_dedicated_database_is_wiped() -> None:
    assert seed.asyncpg_dsn("postgresql+asyncpg://u@h:5432/bench") == "postgresql://u@h:5432/bench"
    seed.check_dedicated("postgresql+asyncpg://u@h:5432/test_bench")
    with pytest.raises(SystemExit):
        seed.check_dedicated("postgresql+asyncpg://u@h:5432/authgate")


# --- seeding PostgreSQL for real (its own database, <run's database>_bench) ----------------------
@pytest.mark.postgres
async def test_copy_seeded_users_are_users_the_core_can_log_in() -> None:
    import asyncio

    import asyncpg
    from argon2 import PasswordHasher, Type

    from authgate.config import Settings
    from authgate.container import build
    from authgate.storage.migrate import upgrade
    from tests.conftest import PG_URL, need

    server, _, run_db = need(PG_URL, "AUTHGATE_TEST_DATABASE_URL").rpartition("/")
    name = f"{run_db}_bench"  # this run's own (the benchmark refuses a name without "bench")
    url = f"{server}/{name}"
    admin = await asyncpg.connect(seed.asyncpg_dsn(f"{server}/postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await seed.reset(url)
    await asyncio.to_thread(upgrade, url)
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID).hash(seed.PASSWORD)
    done: list[int] = []
    await seed.copy_users(url, 1, 2501, cheap, batch=1000, progress=lambda n, _s: done.append(n))
    assert done == [1000, 2000, 2500] and await seed.count_users(url) == 2500

    container = await build(Settings(database_url=url))
    try:
        core = container.core
        async with core.store.transaction(write=False) as tx:
            user = await tx.users.get_by_username("BU0001500")  # any letter case, as logins do
        assert user is not None and user.email == "bu0001500@bench.example.com"
        assert user.roles == ["ROLE_USER"] and user.is_active and not user.is_locked
        assert (await core.hasher.verify(user.password_hash, seed.PASSWORD))[0] is True
        assert (await core.hasher.verify(user.password_hash, seed.WRONG_PASSWORD))[0] is False
    finally:
        await container.close()
        admin = await asyncpg.connect(seed.asyncpg_dsn(f"{server}/postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# --- soak ----------------------------------------------------------------------------------------


def test_soak_options() -> None:
    assert options.parse(["--soak"]).soak == 1_000_000
    o = options.parse(["--soak", "5000", "--soak-warm", "1000"])
    assert (o.soak, o.soak_warm) == (5000, 1000)
    with pytest.raises(SystemExit):  # the end must lie past the baseline
        options.parse(["--soak", "1000", "--soak-warm", "1000"])
    assert options.parse([]).soak is None


def _chunk(requests: int, statuses: dict[int, int] | None = None, timeouts: int = 0) -> wrk.WrkResult:
    return wrk.WrkResult(10.0, requests, statuses or {200: requests}, {"timeout": timeouts})


def test_soak_growth_is_end_over_the_first_sample_past_warm() -> None:
    from bench.soak import Soak

    s = Soak(warm=100_000)
    for rss in (80.0, 100.0, 104.0, 107.0):  # 60k, 120k, 180k, 240k responses
        s.add(_chunk(60_000), rss)
    assert s.baseline == (120_000, 100.0)
    assert s.growth == pytest.approx(0.07)
    doc = s.json()
    assert doc["requests"] == 240_000 and doc["rss_baseline_at"] == 120_000 and doc["growth"] == 0.07
    assert doc["rps"] == 6000.0 and doc["samples"][0] == [60_000, 80.0]


def test_soak_without_a_sample_past_the_baseline_has_no_growth() -> None:
    from bench.soak import Soak

    s = Soak(warm=100_000)
    s.add(_chunk(50_000), 90.0)
    assert s.growth is None  # never reached the baseline
    s.add(_chunk(60_000), 95.0)
    assert s.growth is None  # the baseline is the last sample: nothing after it to compare


def test_soak_runs_a_chunk_past_the_baseline_when_the_first_passes_both(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fast server can serve N (and the baseline) in the first chunk: growth needs one more."""
    from bench import soak

    chunks = iter([_chunk(3006), _chunk(2990), _chunk(1)])
    monkeypatch.setattr(soak.wrk, "run", lambda cmd, seconds: next(chunks))
    monkeypatch.setattr(soak, "rss_mib", lambda pid: 125.0)
    s = soak.run(lambda script, args, seconds: ["wrk"], pid=1, token="t", total=3000, warm=1000,
                 chunk_s=1.0, log=lambda _: None)
    assert [n for n, _ in s.samples] == [3006, 5996] and s.growth == 0.0


def test_soak_counts_unexpected_answers_and_socket_errors() -> None:
    from bench.soak import Soak

    s = Soak(warm=10)
    s.add(_chunk(100, {200: 60, 401: 20, 400: 15, 500: 5}, timeouts=2), 50.0)
    assert (s.unexpected, s.socket_errors) == (5, 2)


def test_soak_target_is_reported() -> None:
    doc = {"workloads": [], "server": {}, "soak": {"growth": 0.12, "rss_baseline_at": 100_000, "requests": 1_000_000}}
    [t] = targets(doc)
    assert t["met"] is False and t["value"] == 0.12 and "1,000,000" in t["target"]


def test_server_core_counts_follow_taskset_lists() -> None:
    assert [options.cpu_count(s) for s in ("0", "0-1", "0,2-3", "5")] == [1, 2, 3, 1]
    assert options.cpu_count(None) >= 1


def test_hashing_cpu_is_read_per_named_thread() -> None:
    """bench/server.thread_cpu_seconds sums the CPU of the threads named like the hashing ones."""
    import ctypes
    import sys
    import threading
    import time

    from bench.server import thread_cpu_seconds

    if sys.platform != "linux":
        pytest.skip("reads /proc")
    done = threading.Event()

    def spin() -> None:
        ctypes.CDLL(None).prctl(15, b"argon2_bench", 0, 0, 0)
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        done.set()
        time.sleep(0.5)

    worker = threading.Thread(target=spin)
    worker.start()
    done.wait(10)
    used = thread_cpu_seconds([os.getpid()], "argon2")
    worker.join()
    assert 0.2 <= used <= 5.0
    assert thread_cpu_seconds([os.getpid()], "no-such-thread") == 0.0


async def test_postgres_bench_database_is_created_when_missing() -> None:
    """--postgres names a dedicated database; the benchmark creates it if the server has none."""
    import asyncpg

    import tests.conftest as harness

    base = harness.need(harness._PG_BASE_URL, "AUTHGATE_TEST_DATABASE_URL")
    name = f"authgate_bench_missing_{os.getpid()}"
    url = base.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(seed.asyncpg_dsn(base.rsplit("/", 1)[0] + "/postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await seed.reset(url)
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 1
        await seed.reset(url)  # and an existing one is only emptied
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_w6_gives_every_connection_its_own_session_and_wrk_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """wrk's Lua cannot tell which connection asks: W6 runs one thread per connection, and
    refresh.lua gives thread k the k-th token, so no two connections refresh one session."""
    from bench.fixtures import Probe, Tokens
    from bench.workloads import Runner

    runner = Runner.__new__(Runner)
    runner.opts = options.parse(["--connections", "4", "--threads", "1"])
    runner.fx = type("F", (), {})()  # type: ignore[assignment]
    runner.fx.sessions = [Tokens(f"a{k}", f"r{k}") for k in range(4)]  # type: ignore[attr-defined]
    runner.fx.probe = lambda *a, **k: Probe(200, "{}")  # type: ignore[attr-defined]
    runner.server = type("S", (), {"url": "http://127.0.0.1:1"})()  # type: ignore[assignment]
    seen: dict[str, object] = {}

    def measure(name, endpoint, script, args, expected, threads=None):  # type: ignore[no-untyped-def]
        seen.update(threads=threads, args=args("run", 1.0),
                    command=runner.command(script, args("run", 1.0), 1.0, threads=threads))
        return report.Row(name, endpoint)

    monkeypatch.setattr(runner, "measure", measure)
    runner.refresh()
    assert seen["threads"] == 4 and seen["args"][1:] == ["r0", "r1", "r2", "r3"]  # type: ignore[index]
    command = " ".join(seen["command"])  # type: ignore[arg-type]
    assert "-t4" in command.replace(" ", "") and "-c4" in command.replace(" ", "")
    lua = (wrk.LUA_DIR / "refresh.lua").read_text()
    assert "tid" in lua  # the thread's own token


def test_w5_asks_for_the_same_number_of_distinct_users_at_every_size() -> None:
    """1,000 and 1,000,000 users get the same traffic (so the scale ratio measures the table, not
    the cache): random picks from all users when there are no more than --w5-names, else from a
    fixed random sample of them."""
    from bench.workloads import w5_usernames

    small = w5_usernames(1000, 1000)
    assert len(small) == 20_000 and set(small) == {seed.username(i) for i in range(1, 1001)}
    assert small[:1000] != [seed.username(i) for i in range(1, 1001)]  # random order, not a cycle
    big = w5_usernames(1_000_000, 1000)
    assert len(set(big)) == 1000 and big == w5_usernames(1_000_000, 1000)
    assert max(int(name[len(seed.PREFIX):]) for name in big) > 1000  # drawn from all of them
    assert set(w5_usernames(16, 1000, 100)) <= {seed.username(i) for i in range(1, 17)}
    assert options.parse(["--w5-names", "250"]).w5_names == 250 and options.parse([]).w5_names == 1000


def test_a_probe_asks_again_while_shed_with_503_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after W7's flood the hashing queue is full of logins whose clients left: the next
    workload's probe is shed for a moment, and must not skip the workload for it."""
    import httpx

    from bench import fixtures

    answers = [503, 503, 201]
    asked: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(1)
        return httpx.Response(answers.pop(0) if answers else 503, text="{}")

    fx = fixtures.Fixtures.__new__(fixtures.Fixtures)
    monkeypatch.setattr(fx, "http", lambda: httpx.Client(base_url="http://x", transport=httpx.MockTransport(handler)))
    monkeypatch.setattr(fixtures.time, "sleep", lambda _s: None)
    assert fx.probe("POST", "/x").status == 201 and len(asked) == 3
    # A server that keeps shedding is reported as it answers once the patience is spent.
    asked.clear()
    assert fx.probe("POST", "/x", patience=0.0).status == 503 and len(asked) == 1
    # Any other status is the answer at once.
    answers[:] = [404]
    asked.clear()
    assert fx.probe("GET", "/y").status == 404 and len(asked) == 1
