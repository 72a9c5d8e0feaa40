"""Redis benchmarks: state shared by 4 processes through one Redis on loopback.

1. Shared breaker, API down: 4 processes call an API that answers 503 (the simulator's
   down endpoint) through one breaker on Redis (``fail_max=5``), 20 calls each; target:
   requests that reach the API <= 5 + 4 (a call already admitted in each process when the
   breaker opens). Context: a breaker of its own in each process (20).
2. Cache stampede across processes: 4 processes x 16 threads miss on one key at once;
   target: 1 load at the API. The cache policy's use of the shared lease is not wired yet,
   so the measured variant is a minimal single-flight driver over `RedisCacheStore`
   (``get`` -> ``lease`` -> load, ``set``, ``release``; or ``wait_for``), the protocol the
   policy will follow. Context: ``rs.ttl_cache(storage=<Redis>)`` as it is today (single
   flight inside each process only), and ``rs.ttl_cache`` in memory.
3. Happy path: a call through ``rs.circuit_breaker(storage=<Redis>)`` vs one ``PING`` with
   the same client, per call, in interleaved rounds; target: ratio <= 1.5. Context: the
   cache store's hit and the rate store's reservation vs ``PING``, and the in-memory breaker.
4. Shared quota: 4 processes share 50 requests/s (burst 1) for 5 s, calling the simulator;
   target: no 1 s window at the API above 52 requests. The rate limiter policy is not in
   this tree, so a minimal driver calls `RedisRateStore.reserve` with ``max_wait=0`` and,
   when refused, sleeps the wait it returns. Context: permits reserved ahead (sleep the
   wait, then call), and a quota of its own in each process.
5. Capacity: Redis operations per call of each layer (``INFO commandstats``), and Redis's
   CPU per operation under load from 4 processes (``INFO cpu``), for docs/scaling.md.

Redis: the one named by ``RESILIENT_SCAN_REDIS_URL``, else a private ``redis-server`` on a
free port (no persistence), stopped at the end. Run directly (``python
benchmarks/bench_redis.py [--quick]``) to print the table, or call `run`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.pool import Pool
from typing import Any

import redis
from _common import (  # benchmarks/ is on sys.path when a benchmark runs as a script
    Row,
    Samples,
    compare_calls,
    print_report,
    us,
)

import resilient_scan as rs
from resilient_scan._storage import MISSING
from resilient_scan.redis import RedisBackend
from resilient_scan.testing import ApiSimulator

PROCESSES = 4
STAMPEDE_THREADS = 16
FAIL_MAX = 5
BREAKER_CALLS = 20
QUOTA = 50.0  # requests per second, shared
QUOTA_SECONDS = 5.0
WINDOW_LIMIT = 52

DOWN = "/v1/options/flow"  # answers 503
MOVERS = "/v1/market/movers"  # answers 200 after its latency

# -- Redis for the benchmarks ----------------------------------------------------------------


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """The Redis to use: RESILIENT_SCAN_REDIS_URL, or a private redis-server."""
    given = os.environ.get("RESILIENT_SCAN_REDIS_URL")
    if given:
        yield given
        return
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603 - our own arguments
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        yield url
    finally:
        client.close()
        server.kill()
        server.wait()


@contextlib.contextmanager
def worker_processes() -> Iterator[Pool]:
    """PROCESSES spawned interpreters (fresh, like separate services), all up and warm."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(PROCESSES, initializer=_quiet) as pool:
        # Every worker must be up (and have imported this module) before a measurement,
        # or an early one would take two tasks.
        barrier = manager.Barrier(PROCESSES)
        pids = pool.map(_ready, [barrier] * PROCESSES, chunksize=1)
        if len(set(pids)) != PROCESSES:
            raise RuntimeError(f"worker processes did not start: {pids}")
        yield pool


def _quiet() -> None:
    # The workers' events are not the measurement (and must not write to stdout).
    rs.instrumentation.set_hooks([])


def _ready(barrier: Any) -> int:
    barrier.wait(timeout=60)
    return os.getpid()


def everywhere(pool: Pool, task: Callable[..., Any], *args: Any) -> list[Any]:
    """Run *task* once in each worker process, all starting at the same instant."""
    start_at = time.time() + 0.3
    answers = pool.starmap(task, [(start_at, *args)] * PROCESSES, chunksize=1)
    if len({pid for pid, _ in answers}) != PROCESSES:
        raise RuntimeError("two tasks ran in one process: the measurement is void")
    return [answer for _, answer in answers]


def _until(start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - our simulator
        return bytes(answer.read())


def _namespace() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


# -- 1. a shared breaker while the API is down --------------------------------------------------


def breaker_calls(
    start_at: float, storage: str | None, namespace: str, api: str
) -> tuple[int, dict[str, int]]:
    """In a worker: BREAKER_CALLS calls to the down API through a breaker (Redis or memory)."""
    backend = None if storage is None else RedisBackend(storage, namespace=namespace)
    guarded = rs.circuit_breaker(fail_max=FAIL_MAX, reset_timeout=60, name="api", storage=backend)(
        _get
    )
    outcomes = {"failed": 0, "rejected": 0}
    _until(start_at)
    for _ in range(BREAKER_CALLS):
        try:
            guarded(api + DOWN)
        except rs.CircuitOpenError:  # noqa: PERF203 - the outcome is what is counted
            outcomes["rejected"] += 1
        except urllib.error.HTTPError:
            outcomes["failed"] += 1
    return os.getpid(), outcomes


def shared_breaker(pool: Pool, url: str, rounds: int) -> list[Row]:
    counts: dict[str, list[int]] = {"redis": [], "memory": []}
    with ApiSimulator(latency_scale=0.1) as api:  # 10 ms per request
        for round_number in range(rounds):
            order = ["redis", "memory"] if round_number % 2 == 0 else ["memory", "redis"]
            for variant in order:
                before = api.requests(DOWN)
                storage = url if variant == "redis" else None
                everywhere(pool, breaker_calls, storage, _namespace(), api.url)
                counts[variant].append(api.requests(DOWN) - before)
    setup = (
        f"{PROCESSES} processes x {BREAKER_CALLS} calls, fail_max={FAIL_MAX}, API answers 503"
        f" after 10 ms; requests per round {{}}; worst of {rounds} rounds"
    )
    return [
        Row.check(
            "breaker on Redis, API down: requests at the API",
            max(counts["redis"]),
            FAIL_MAX + PROCESSES,
            setup.format(counts["redis"]),
        ),
        Row.context(
            "  breaker per process, API down: requests at the API",
            max(counts["memory"]),
            setup.format(counts["memory"]),
        ),
    ]


# -- 2. a stampede on one key from every process -----------------------------------------------


def miss_at_once(
    start_at: float, variant: str, url: str, namespace: str, api: str
) -> tuple[int, int]:
    """In a worker: STAMPEDE_THREADS threads want one key at once; how many got its value."""
    backend = RedisBackend(url, namespace=namespace)
    load = _get
    if variant == "store":
        get = _single_flight(backend, lambda: load(api + MOVERS))
    else:
        storage = backend if variant == "policy" else None
        get = rs.ttl_cache(ttl=60, storage=storage)(lambda: load(api + MOVERS))
    barrier = threading.Barrier(STAMPEDE_THREADS)
    results: list[bytes] = []
    lock = threading.Lock()

    def body() -> None:
        barrier.wait()
        value = get()
        with lock:
            results.append(value)

    threads = [threading.Thread(target=body) for _ in range(STAMPEDE_THREADS)]
    _until(start_at)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return os.getpid(), len(results)


def _single_flight(backend: RedisBackend, load: Callable[[], bytes]) -> Callable[[], bytes]:
    """The shared cache's protocol, as the cache policy will drive it (a minimal driver)."""
    cache = backend.cache_store("movers", maxsize=16, clock=rs.SystemClock())

    def get() -> bytes:
        while True:
            value = cache.get("movers")
            if value is not MISSING:
                return str(value).encode()
            token = cache.lease("movers", 30.0)
            if token is None:
                value = cache.wait_for("movers", 30.0)
                if value is not MISSING:
                    return str(value).encode()
                continue  # the loader gave up: try to take the lease
            try:
                body = load()
                cache.set("movers", body.decode(), 60)
                return body
            finally:
                cache.release("movers", token)

    return get


def stampede(pool: Pool, url: str, rounds: int) -> list[Row]:
    variants = ["store", "policy", "memory"]
    loads: dict[str, list[int]] = {v: [] for v in variants}
    with ApiSimulator(latency_scale=0.25) as api:  # the load takes 100 ms
        for round_number in range(rounds):
            shift = round_number % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                before = api.requests(MOVERS)
                served = everywhere(pool, miss_at_once, variant, url, _namespace(), api.url)
                if sum(served) != PROCESSES * STAMPEDE_THREADS:
                    raise RuntimeError(f"{variant}: callers without a value: {served}")
                loads[variant].append(api.requests(MOVERS) - before)
    setup = f"{PROCESSES} processes x {STAMPEDE_THREADS} threads, load 100 ms; loads per round"
    return [
        Row.check(
            "cache on Redis, stampede: loads (single-flight driver)",
            max(loads["store"]),
            1,
            f"{setup} {loads['store']}; get -> lease -> load/set/release or wait_for (polls"
            f" 2..50 ms); worst of {rounds} rounds",
        ),
        Row.context(
            "  rs.ttl_cache(storage=Redis) today: loads",
            max(loads["policy"]),
            f"{setup} {loads['policy']}; single flight inside each process only until the"
            " policy takes the store's lease",
        ),
        Row.context(
            "  rs.ttl_cache in memory, per process: loads",
            max(loads["memory"]),
            f"{setup} {loads['memory']}",
        ),
    ]


# -- 3. the happy path's cost -------------------------------------------------------------------


def happy_path(url: str, rounds: int) -> list[Row]:
    backend = RedisBackend(url, namespace=_namespace())
    client = backend.client

    def work() -> int:
        return 1

    on_redis = rs.circuit_breaker(fail_max=FAIL_MAX, storage=backend, name="api")(work)
    in_memory = rs.circuit_breaker(fail_max=FAIL_MAX)(work)
    cache = backend.cache_store("hits", maxsize=16, clock=rs.SystemClock())
    cache.set("k", {"ticker": "AAPL"}, 600)
    limiter = backend.rate_store("api", rs.SystemClock())

    def reserve() -> object:
        return limiter.reserve("k", now=0.0, interval=1e-6, burst=1, max_wait=60.0)

    samples = compare_calls(
        {
            "breaker": on_redis,
            "ping": client.ping,
            "cache hit": lambda: cache.get("k"),
            "reserve": reserve,
            "memory breaker": in_memory,
        },
        rounds,
    )
    ping = samples["ping"]

    def pair(s: Samples) -> str:
        return f"{us(s.best)} (median {us(s.median)})"

    breaker = samples["breaker"]
    detail = (
        f"per call: rs.circuit_breaker(storage=Redis) {pair(breaker)}; PING, same client"
        f" {pair(ping)}; ratio of medians {breaker.median / ping.median:.3f}; in-memory breaker"
        f" {pair(samples['memory breaker'])}; best of {rounds} interleaved rounds"
    )
    rows = [Row.check("breaker on Redis, happy path / PING", breaker.best / ping.best, 1.5, detail)]
    for name, label in (("cache hit", "cache store hit"), ("reserve", "rate store reserve")):
        s = samples[name]
        rows.append(
            Row.context(
                f"  {label} / PING",
                s.best / ping.best,
                f"per call {pair(s)}; ratio of medians {s.median / ping.median:.3f}",
            )
        )
    backend.close()
    return rows


# -- 4. one quota for every process -------------------------------------------------------------


def permits(  # noqa: PLR0917 - starmap passes arguments by position
    start_at: float, url: str, namespace: str, api: str, seconds: float, how: str
) -> tuple[int, int]:
    """In a worker: take permits and call the API until *seconds* have passed.

    *how*: ``"due"`` takes a permit only when it is due (``max_wait=0``; when refused,
    sleep the wait it names and ask again), so the request leaves right after Redis
    granted it; ``"ahead"`` reserves the next permit and sleeps until it, so any
    oversleep of this process shifts its request later; ``"own"`` is ``"due"`` with a
    quota of its own in each process.
    """
    store = RedisBackend(url, namespace=namespace).rate_store("api", rs.SystemClock())
    key = f"quota-{os.getpid()}" if how == "own" else "quota"
    interval = 1.0 / QUOTA
    ahead = how == "ahead"
    _until(start_at)
    end = start_at + seconds
    sent = 0
    while True:
        reservation = store.reserve(
            key, now=time.time(), interval=interval, burst=1, max_wait=10 if ahead else 0
        )
        if time.time() + reservation.wait >= end:
            break
        time.sleep(reservation.wait)
        if reservation.granted:
            _get(api + MOVERS)
            sent += 1
    return os.getpid(), sent


def busiest_second(times: list[float]) -> int:
    """The most requests in any window of 1 s (each window starts at a request)."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def shared_quota(pool: Pool, url: str, seconds: float) -> list[Row]:
    found: dict[str, tuple[int, int]] = {}
    with ApiSimulator(latency_scale=0.0) as api:
        for how in ("due", "ahead", "own"):
            before = len(api.request_times(MOVERS))
            sent = everywhere(pool, permits, url, _namespace(), api.url, seconds, how)
            times = api.request_times(MOVERS)[before:]
            found[how] = (busiest_second(times), sum(sent))

    def rate(how: str) -> str:
        total = found[how][1]
        return f"{total} requests in {seconds:g} s ({total / seconds:.1f}/s)"

    return [
        Row.check(
            "rate store on Redis, 50/s shared: most requests in 1 s",
            found["due"][0],
            WINDOW_LIMIT,
            f"{PROCESSES} processes, burst 1: {rate('due')}; driver: reserve(max_wait=0) on"
            " Redis's clock, when refused sleep the wait given and ask again, GET the simulator"
            " when granted; sliding 1 s windows over the simulator's arrival times",
        ),
        Row.context(
            "  the same, permits reserved ahead (sleep, then GET)",
            found["ahead"][0],
            f"{rate('ahead')}; each process's oversleep after its reservation shifts its"
            " request later, closer to the next one",
        ),
        Row.context(
            "  a 50/s quota per process: most requests in 1 s",
            found["own"][0],
            rate("own"),
        ),
    ]


# -- 5. capacity figures ------------------------------------------------------------------------


def _commands(client: redis.Redis) -> int:
    stats: dict[str, dict[str, Any]] = client.info("commandstats")
    return sum(int(s["calls"]) for name, s in stats.items() if name != "cmdstat_info")


def _cpu(client: redis.Redis) -> float:
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class _CountingConnection(redis.Connection):
    """Counts the commands this process sends: one command is one round trip here."""

    sent = 0

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        type(self).sent += 1
        super().send_command(*args, **kwargs)


def ops_per_call(url: str) -> dict[str, tuple[float, float]]:
    """Per call of each layer: round trips, and Redis commands run (scripts' included)."""
    pool = redis.ConnectionPool.from_url(url, connection_class=_CountingConnection)
    backend = RedisBackend(redis.Redis(connection_pool=pool), namespace=_namespace())
    counter = redis.Redis.from_url(url)
    clock = rs.SystemClock()
    store = backend.breaker_store("api", clock)
    failing = backend.breaker_store("failing", clock)
    opened = backend.breaker_store("open", clock)
    opened.force("open", now=time.time())
    cache = backend.cache_store("c", maxsize=16, clock=clock)
    cache.set("hit", 1, 600)
    limiter = backend.rate_store("r", clock)

    def breaker_ok() -> None:
        admission = store.admit(now=time.time(), reset_timeout=60, trial_lease=60)
        store.record_success(admission, now=time.time())

    def breaker_failure() -> None:
        admission = failing.admit(now=time.time(), reset_timeout=60, trial_lease=60)
        failing.record_failure(admission, now=time.time(), fail_max=10**9)  # stays closed

    def miss() -> None:
        key = uuid.uuid4().hex
        cache.get(key)
        token = cache.lease(key, 10)
        cache.set(key, 1, 60)
        if token is not None:
            cache.release(key, token)

    operations: dict[str, Callable[[], object]] = {
        "breaker, closed, success": breaker_ok,
        "breaker, closed, failure": breaker_failure,
        "breaker, open: rejected": lambda: opened.admit(
            now=time.time(), reset_timeout=60, trial_lease=60
        ),
        "cache hit": lambda: cache.get("hit"),
        "cache miss, single flight (get, lease, set, release)": miss,
        "rate limiter reservation": lambda: limiter.reserve(
            "k", now=0.0, interval=1e-6, burst=1, max_wait=1.0
        ),
    }
    measured: dict[str, tuple[float, float]] = {}
    calls = 200
    for name, operation in operations.items():
        operation()
        sent, run_before = _CountingConnection.sent, _commands(counter)
        for _ in range(calls):
            operation()
        round_trips = (_CountingConnection.sent - sent) / calls
        measured[name] = (round_trips, (_commands(counter) - run_before) / calls)
    counter.close()
    backend.close()
    return measured


def hammer(start_at: float, url: str, namespace: str, seconds: float, what: str) -> tuple[int, int]:
    """In a worker: 4 threads of breaker calls or of reservations, for *seconds*."""
    backend = RedisBackend(url, namespace=namespace)
    guarded = rs.circuit_breaker(storage=backend, name="api")(lambda: None)
    limiter = backend.rate_store("r", rs.SystemClock())

    def reserve() -> None:
        limiter.reserve("k", now=0.0, interval=1e-7, burst=1, max_wait=1.0)

    call = guarded if what == "breaker" else reserve
    done = [0] * 4

    def body(n: int) -> None:
        end = start_at + seconds
        while time.time() < end:
            call()
            done[n] += 1

    threads = [threading.Thread(target=body, args=(n,)) for n in range(4)]
    _until(start_at)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return os.getpid(), sum(done)


def _usec(client: redis.Redis, command: str) -> tuple[int, int]:
    stats: dict[str, dict[str, Any]] = client.info("commandstats")
    found = stats.get(f"cmdstat_{command}", {"calls": 0, "usec": 0})
    return int(found["calls"]), int(found["usec"])


def redis_cpu(pool: Pool, url: str, seconds: float, what: str) -> tuple[float, float, float]:
    """Redis CPU seconds per round trip of *what*, round trips/s reached, us inside."""
    client = redis.Redis.from_url(url)
    command = "get" if what == "breaker" else "evalsha"
    calls_before, usec_before = _usec(client, command)
    cpu_before = _cpu(client)
    started = time.time()
    round_trips = sum(everywhere(pool, hammer, url, _namespace(), seconds, what))
    wall = time.time() - started - 0.3
    cpu = (_cpu(client) - cpu_before) / round_trips
    calls, usec = _usec(client, command)
    client.close()
    return cpu, round_trips / wall, (usec - usec_before) / max(1, calls - calls_before)


def capacity(pool: Pool, url: str, seconds: float) -> tuple[list[Row], list[str]]:
    per_call = ops_per_call(url)
    rows = [
        Row.context(
            f"  round trips per call: {name}",
            trips,
            f"{commands:g} Redis commands run per call (INFO commandstats: a script's own"
            " commands count too); 200 calls",
        )
        for name, (trips, commands) in per_call.items()
    ]
    cost: dict[str, float] = {}
    for what, label in (("breaker", "breaker check (GET)"), ("reserve", "reservation (script)")):
        cpu, reached, inside = redis_cpu(pool, url, seconds, what)
        cost[what] = cpu
        rows.append(
            Row.context(
                f"  Redis CPU per {label} under load (us)",
                cpu * 1e6,
                f"{PROCESSES} processes x 4 threads for {seconds:g} s: {reached:,.0f}/s reached"
                " (the clients share the machine's CPUs with Redis); INFO cpu used_cpu_user +"
                f" used_cpu_sys per round trip; inside the command (commandstats) {inside:.1f} us",
            )
        )
    fleet = 50 * 8
    guarded = cost["breaker"] + cost["reserve"]
    hit = cost["breaker"]  # a cache hit is one GET, like the breaker's check
    miss = per_call["cache miss, single flight (get, lease, set, release)"][0]
    notes = [
        (
            f"capacity: one API call through breaker + rate limiter = 2 round trips,"
            f" {guarded * 1e6:.0f} us of Redis CPU: one Redis core takes ~{1 / guarded:,.0f}"
            f" such calls/s, i.e. ~{1 / guarded / fleet:,.0f}/s for each of {fleet} processes"
            " (50 hosts x 8)"
        ),
        (
            f"capacity: a cache hit = 1 round trip, ~{hit * 1e6:.0f} us (~{1 / hit:,.0f}/s per"
            f" core); a miss loaded once = {miss:g} round trips + the call's; a 50/s quota"
            f" itself costs {QUOTA:g} reservations/s = {QUOTA * guarded * 100:.2f}% of one core"
        ),
    ]
    return rows, notes


# -- running -----------------------------------------------------------------------------------


def run(*, quick: bool = False) -> list[Row]:
    """Run every Redis benchmark and return its rows; *quick* takes fewer rounds."""
    return _run(quick=quick)[0]


def _run(*, quick: bool) -> tuple[list[Row], list[str]]:
    rounds = 1 if quick else 3
    micro = 5 if quick else 15
    seconds = 2.0 if quick else QUOTA_SECONDS
    with redis_url() as url, worker_processes() as pool:
        rows = [
            *shared_breaker(pool, url, rounds),
            *stampede(pool, url, rounds),
            *happy_path(url, micro),
            *shared_quota(pool, url, seconds),
        ]
        capacity_rows, notes = capacity(pool, url, 1.0 if quick else 2.0)
        rows.extend(capacity_rows)
        server: dict[str, Any] = redis.Redis.from_url(url).info("server")
    notes.append(
        f"Redis {server['redis_version']} on loopback; redis-py {redis.__version__};"
        f" {PROCESSES} spawned worker processes"
    )
    return rows, notes


def main() -> int:
    """Print the table; exit status 1 when a target is missed."""
    rows, notes = _run(quick="--quick" in sys.argv[1:])
    print_report("resilient_scan Redis benchmarks", rows, notes)
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
