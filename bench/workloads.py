"""The workloads. Each one probes its endpoint first: a 404 means its surface is not built yet and
the workload is skipped with a note, so the suite runs today and grows as surfaces land. Then a
warm-up run of wrk (discarded) and the measured run, with the server's peak RSS taken over it.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from bench import options, seed, signing, wrk
from bench.fixtures import CHECK, HEALTHZ, INFO, LOGIN, ME, REFRESH, SIGNUP, Fixtures, Probe, login_body
from bench.options import Options
from bench.report import HASHING, RATIOS, Row
from bench.server import Server

Args = Callable[[str, float], Sequence[str]]  # (phase "warmup"|"run", seconds) -> the script's args


def w5_usernames(population: int, sample: int, length: int = 20_000) -> list[str]:
    """W5's names in the order asked: ``length`` picks at random from ``sample`` distinct users (all
    of them when there are no more; a fixed random sample in scale mode).

    As many distinct names, asked in random order, at every size: 1,000 and 1,000,000 users then
    get the same traffic and the same share of cache hits, and differ only in the table's size (as
    W3's one user does). Before, the base cycled through its 1,000 users in order, so a name came
    back every 1,000 requests, about the 0.5 s the cache keeps it: above ~2,000 req/s half the
    requests hit, below nearly none, and the scale ratio swung between 0.7 and 1.3 with the host's
    speed. Picks at random make the share of hits a smooth function of the rate instead.
    """
    rng = random.Random(population)
    if population <= sample:
        distinct = list(range(1, population + 1))
    else:
        distinct = rng.sample(range(1, population + 1), sample)
    return [seed.username(rng.choice(distinct)) for _ in range(length)]


class Skip(Exception):
    """The workload cannot run here; the message says why."""


def not_built(probe: Probe, what: str) -> Skip:
    return Skip(f"{what} answers 404: not built yet")


def expect(probe: Probe, wanted: int, what: str) -> None:
    if probe.missing:
        raise not_built(probe, what)
    if probe.status != wanted:
        raise Skip(f"{what} answered {probe.status}, expected {wanted}: {probe.body[:160]}")


class Runner:
    def __init__(self, opts: Options, server: Server, fx: Fixtures, workdir: Path,
                 log: Callable[[str], None] = print, hash_params: dict[str, int] | None = None) -> None:
        self.opts = opts
        self.hash_params = hash_params  # the server's argon2id parameters (bench.prep's timing)
        self.server = server
        self.fx = fx
        self.workdir = workdir
        self.log = log
        self.rows: list[Row] = []

    # --- running wrk -------------------------------------------------------------------------
    @property
    def wrk_threads(self) -> int:
        return max(1, min(self.opts.threads, self.opts.connections))

    def command(self, script: str, args: Sequence[str], seconds: float, connections: int | None = None,
                timeout: float | None = None, threads: int | None = None) -> list[str]:
        return wrk.command(
            self.server.url, script, args, duration=seconds,
            connections=connections or self.opts.connections, threads=threads or self.opts.threads,
            timeout=timeout or self.opts.timeout, cpus=self.opts.wrk_cpus,
        )

    def measure(self, name: str, endpoint: str, script: str, args: Args, expected: Iterable[int],
                threads: int | None = None) -> Row:
        """One workload: warm-up, then the measured run (``threads``: wrk threads, default -t)."""
        o = self.opts
        before = self.time_hash() if name in HASHING else None
        floor_before = self.floor_now() if name in RATIOS and self.adjacent_floor else 0.0
        if o.warmup > 0:
            wrk.run(self.command(script, args("warmup", o.warmup), o.warmup, threads=threads), o.warmup)
        hashing_before, started = self.server.hashing_cpu(), time.monotonic()
        with self.server.rss() as rss:
            res = wrk.run(self.command(script, args("run", o.duration), o.duration, threads=threads), o.duration)
        hashing, elapsed = self.server.hashing_cpu() - hashing_before, time.monotonic() - started
        row = Row.measured(name, endpoint, res, expected, rss.peak_mib)
        if name in HASHING and elapsed > 0:
            row.hash_share = hashing / (elapsed * options.cpu_count(o.server_cpus))
        if before is not None:
            after = self.time_hash()
            row.hash_s = (before + after) / 2 if after is not None else before
            row.hash_timed_s = [t for t in (before, after) if t is not None]
        if name in RATIOS and self.adjacent_floor:
            row.floor_rps = (floor_before + self.floor_now()) / 2
        return row

    @property
    def adjacent_floor(self) -> bool:
        """Targets set against FLOOR compare with a FLOOR measured right before and after the
        workload, as the hash is re-timed for W1/W2/W4: this VM's speed drifts by ±15 % between
        minutes, more than the differences the ratios are meant to show."""
        return "FLOOR" in self.opts.only and not self.opts.quick

    def floor_now(self) -> float:
        seconds = min(3.0, self.opts.duration)
        res = wrk.run(self.command("get.lua", [HEALTHZ], seconds), seconds)
        return res.ok_rps([200])

    def time_hash(self) -> float | None:
        """Seconds one hash takes now, on the server's core(s) while the server idles: the
        efficiency of W1/W2/W4 divides by the machine's speed during that workload, not at start."""
        params = self.hash_params
        if not params:
            return None
        spec = f"{params['memory_kib']},{params['time_cost']},{params['parallelism']}"
        try:
            timed = self.server.python("bench.prep", "--time-hash", spec, "--samples", str(self.opts.hash_samples),
                                       timeout=120)
        except Exception:  # noqa: BLE001 - the run's first timing stands in
            return None
        return float(timed["hash"]["hash_s"])

    def run(self, name: str, endpoint: str, fn: Callable[[], Row]) -> Row:
        self.log(f"  {name:8} {endpoint} ...")
        try:
            row = fn()
        except Skip as exc:
            row = Row.skipped(name, endpoint, str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken workload must not end the run
            row = Row.failed(name, endpoint, f"{type(exc).__name__}: {exc}"[:400])
        self.rows.append(row)
        return row

    def rps_of(self, *names: str) -> float | None:
        values = [r.rps for r in self.rows if r.name in names and r.status == "ok" and r.rps]
        return max(values) if values else None

    # --- workloads -------------------------------------------------------------------------
    def floor(self) -> Row:
        expect(self.fx.probe("GET", HEALTHZ), 200, f"GET {HEALTHZ}")
        return self.measure("FLOOR", f"GET {HEALTHZ}", "get.lua", lambda _p, _s: [HEALTHZ], [200])

    def need_sessions(self) -> None:
        if not self.fx.sessions:
            raise Skip("no session: " + ("; ".join(self.fx.notes) or "no bench user"))

    def read(self, name: str, path: str) -> Row:
        self.need_sessions()
        probe = self.fx.probe("GET", path, headers={"Authorization": f"Bearer {self.fx.access}"})
        expect(probe, 200, f"GET {path}")
        token = self.fx.access
        return self.measure(name, f"GET {path}", "get.lua", lambda _p, _s: [path, token], [200])

    def login(self, name: str, password: str, wanted: int, endpoint: str = f"POST {LOGIN}") -> Row:
        if self.fx.users < 1:
            raise Skip("no bench user")
        expect(self.fx.probe("POST", LOGIN, json_body=login_body(1, password)), wanted, f"POST {LOGIN}")
        users = str(self.fx.users)
        return self.measure(name, endpoint, "login.lua",
                            lambda _p, _s: [LOGIN, seed.PREFIX, users, password], [wanted])

    def signup(self) -> Row:
        probe_name = f"sp{secrets.token_hex(4)}"
        body = {"email": f"{probe_name}@bench.example.com", "name": "Bench Probe", "username": probe_name,
                "password": seed.PASSWORD, "dont-login": False}
        expect(self.fx.probe("POST", SIGNUP, json_body=body), 201, f"POST {SIGNUP}")
        return self.measure("W1", f"POST {SIGNUP}", "signup.lua",
                            lambda _p, _s: [SIGNUP, secrets.token_hex(3), seed.PASSWORD], [201])

    def refresh(self) -> Row:
        self.need_sessions()
        tokens = [s.refresh for s in self.fx.sessions if s.refresh]
        if not tokens:
            raise Skip("the login gave no refresh token")
        expect(self.fx.probe("POST", REFRESH, json_body={"refreshToken": tokens[-1]}), 200, f"POST {REFRESH}")
        # One wrk thread per connection, each refreshing its own session, as each client refreshes
        # its own: with shared tokens two requests would queue on one session's row lock.
        return self.measure("W6", f"POST {REFRESH}", "refresh.lua", lambda _p, _s: [REFRESH, *tokens], [200],
                            threads=self.opts.connections)

    def check_username(self, name: str = "W5", users: int | None = None) -> Row:
        endpoint = "GET " + CHECK
        self.need_sessions()
        probe = self.fx.probe("GET", CHECK.format(username=seed.username(1)))
        if probe.missing:
            raise not_built(probe, endpoint)
        csrf = self.fx.csrf_token()
        if not csrf:
            raise Skip("no CSRF token from GET /api/auth/csrf-token")
        client = self.fx.client_app()
        client_id, secret = client["clientId"], client["clientSecret"]
        population = users or self.fx.users
        names = w5_usernames(population, self.opts.w5_names)
        one = next(signing.generate(client_id, secret, names[:1], 1, 10))
        token = self.fx.access
        expect(self.fx.probe("GET", one.path, headers=self.signed_headers(one, csrf, token)), 200, endpoint)
        counter = iter(range(1_000_000))

        def args(phase: str, seconds: float) -> list[str]:
            count = self.signed_count(seconds)
            path = self.workdir / f"signed-{name}-{phase}-{next(counter)}.tsv"
            t0 = time.perf_counter()
            signing.write_file(path, signing.generate(client_id, secret, names, count, seconds))
            self.log(f"  {count:,} signed requests in {time.perf_counter() - t0:.1f}s")
            return [str(path), token, csrf, str(self.wrk_threads)]

        row = self.measure(name, endpoint, "signed.lua", args, [200])
        if row.counters.get("replayed"):
            row.note = f"{row.counters['replayed']} replayed nonces (file too short)"
        return row

    def signed_count(self, seconds: float) -> int:
        """Enough signed requests for ``seconds`` of W5: W5 does all W3 does and more, so W3's (or
        else FLOOR's) rate bounds it; 1.5× that, so no nonce is ever sent twice."""
        est = self.rps_of("W3-me", "W3-info") or self.rps_of("FLOOR") or 20_000.0
        return int(est * max(1.0, round(seconds)) * 1.5) + 500

    @staticmethod
    def signed_headers(req: signing.SignedRequest, csrf: str, token: str | None = None) -> dict[str, str]:
        headers = {
            "x-csrf-token": csrf, "x-username": req.username, "Content-Type": "application/json",
            "locale": "en", "x-app-version": "1.0.0", "x-platform": "web",
            "x-app-payload": req.payload, "x-app-signature": req.signature,
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def flood(self) -> list[Row]:
        """W7: W3 measured while a W2 login flood runs at the same time (two wrk processes)."""
        self.need_sessions()
        if self.fx.users < 1:
            raise Skip("no bench user")
        expect(self.fx.probe("POST", LOGIN, json_body=login_body(1, seed.PASSWORD)), 200, f"POST {LOGIN}")
        path = self.read_path()
        o = self.opts
        lead = 0.5 if o.quick else 1.0  # let the flood fill the hash queue before measuring
        flood_s = o.warmup + o.duration + 2 * lead
        flood = wrk.start(self.command(
            "login.lua", [LOGIN, seed.PREFIX, str(self.fx.users), seed.PASSWORD], flood_s,
            connections=o.flood_connections, timeout=max(o.timeout, 10.0),
        ))
        try:
            time.sleep(lead)
            row = self.measure("W7", f"GET {path} under a login flood", "get.lua",
                               lambda _p, _s: [path, self.fx.access], [200])
        finally:
            flooded = wrk.finish(flood, timeout=flood_s + 60)
        logins = Row.measured("W7-flood", f"POST {LOGIN} ({o.flood_connections} conns)", flooded, [200, 503])
        shed = flooded.statuses.get(503, 0)
        logins.note = f"{shed} shed with 503" if shed else ""
        return [row, logins]

    def read_path(self) -> str:
        for path in (ME, INFO):
            probe = self.fx.probe("GET", path, headers={"Authorization": f"Bearer {self.fx.access}"})
            if probe.status == 200:
                return path
        raise Skip(f"neither GET {ME} nor GET {INFO} answers 200")

    # --- the suite -------------------------------------------------------------------------
    def suite(self, names: Sequence[str]) -> list[Row]:
        table: dict[str, tuple[str, Callable[[], Row]]] = {
            "FLOOR": (f"GET {HEALTHZ}", self.floor),
            "W3-me": (f"GET {ME}", lambda: self.read("W3-me", ME)),
            "W3-info": (f"GET {INFO}", lambda: self.read("W3-info", INFO)),
            "W5": ("GET " + CHECK, self.check_username),
            "W6": (f"POST {REFRESH}", self.refresh),
            "W2": (f"POST {LOGIN}", lambda: self.login("W2", seed.PASSWORD, 200)),
            "W4": (f"POST {LOGIN} (wrong password)",
                   lambda: self.login("W4", seed.WRONG_PASSWORD, 401, f"POST {LOGIN} (wrong password)")),
            "W1": (f"POST {SIGNUP}", self.signup),
        }
        for name in names:
            if name == "W7":
                self.run_flood()
            elif name in table:
                endpoint, fn = table[name]
                self.run(name, endpoint, fn)
        return self.rows

    def run_flood(self) -> None:
        self.log("  W7       reads under a login flood ...")
        try:
            self.rows.extend(self.flood())
        except Skip as exc:
            self.rows.append(Row.skipped("W7", "reads under a login flood", str(exc)))
        except Exception as exc:  # noqa: BLE001
            self.rows.append(Row.failed("W7", "reads under a login flood", f"{type(exc).__name__}: {exc}"[:400]))
