"""Redis benchmarks: policies sharing state through one Redis on loopback, 4 processes.

Every checked row drives the public policies (``rs.circuit_breaker``, ``rs.rate_limit``,
``rs.ttl_cache`` with ``storage=<Redis>``); the context rows beside them are measured in
the same run, in interleaved rounds.

1. Shared breaker, API down: 4 processes call an API that answers 503 (the simulator's
   down endpoint) through ``rs.circuit_breaker(fail_max=5, storage=<Redis>)``, 20 calls
   each; target: requests that reach the API <= 5 + 4 (a call already admitted in each
   process when the breaker opens). Context: a breaker of its own in each process (20).
2. Cache stampede across processes: 4 processes x 16 threads call one
   ``rs.ttl_cache(storage=<Redis>)`` function on one key at once; target: 1 load at the
   API. Context: ``rs.ttl_cache`` in memory in each process.
3. Happy path: a call through ``rs.circuit_breaker(storage=<Redis>)`` vs one ``PING``
   with the same client, per call, in interleaved rounds; target: ratio <= 1.5. Context:
   a hit of ``rs.ttl_cache(storage=<Redis>)`` and a permit of
   ``rs.rate_limit(storage=<Redis>)`` vs ``PING``, and the in-memory breaker.
4. Shared quota: 4 processes x 4 threads call a counting HTTP server on 127.0.0.1 through
   one ``rs.rate_limit(50, storage=<Redis>)`` for 5 s, each call under a deadline at the
   end of the 5 s; target: no sliding 1 s window of the requests' arrivals (the kernel's
   receive timestamps) holds more than 52. Throughput, each process's share and the
   permits given up are shown. Context, the same load: permits reserved ahead and always
   used (``RateLimiter.reserve``, sleep, call: what the policy did before it gave up late
   permits), permits taken only when due (a driver over the store: ask with
   ``max_wait=0``, sleep the wait given, ask again), a 50/s quota in each process, and the
   policy and reserving ahead again while the workers are frozen in turn (`Pauses`).
5. Capacity: Redis round trips and commands per call of each policy (``INFO
   commandstats``), and Redis's CPU per operation under load from 4 processes (``INFO
   cpu``), for docs/scaling.md.

Redis: the one named by ``RESILIENT_SCAN_REDIS_URL``, else a private ``redis-server`` on a
free port (no persistence), stopped at the end. Run directly (``python
benchmarks/bench_redis.py [--quick] [--quota-rounds N]``) to print the table, or call `run`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import multiprocessing
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.pool import Pool
from typing import Any, cast

import redis
from _common import (  # benchmarks/ is on sys.path when a benchmark runs as a script
    Row,
    Samples,
    compare_calls,
    print_report,
    us,
)

import resilient_scan as rs
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
        WORKER_PIDS[:] = pids
        try:
            yield pool
        finally:
            WORKER_PIDS.clear()


#: The worker processes of the running pool (`worker_processes`), for `Pauses`.
WORKER_PIDS: list[int] = []


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
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - our own servers
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
            "rs.circuit_breaker(storage=Redis), API down: requests at the API",
            max(counts["redis"]),
            FAIL_MAX + PROCESSES,
            setup.format(counts["redis"]),
        ),
        Row.context(
            "  rs.circuit_breaker per process, API down: requests at the API",
            max(counts["memory"]),
            setup.format(counts["memory"]),
        ),
    ]


# -- 2. a stampede on one key from every process -----------------------------------------------


def miss_at_once(
    start_at: float, variant: str, url: str, namespace: str, api: str
) -> tuple[int, int]:
    """In a worker: STAMPEDE_THREADS threads call one cached function on one key at once."""
    storage = RedisBackend(url, namespace=namespace) if variant == "redis" else None

    @rs.ttl_cache(ttl=60, storage=storage)
    def movers() -> str:
        return _get(api + MOVERS).decode()

    barrier = threading.Barrier(STAMPEDE_THREADS)
    results: list[str] = []
    lock = threading.Lock()

    def body() -> None:
        barrier.wait()
        value = movers()
        with lock:
            results.append(value)

    threads = [threading.Thread(target=body) for _ in range(STAMPEDE_THREADS)]
    _until(start_at)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return os.getpid(), len(results)


def stampede(pool: Pool, url: str, rounds: int) -> list[Row]:
    variants = ["redis", "memory"]
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
            "rs.ttl_cache(storage=Redis), stampede on one key: loads",
            max(loads["redis"]),
            1,
            f"{setup} {loads['redis']}; every caller got the value; worst of {rounds} rounds",
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
    cached = rs.ttl_cache(ttl=600, storage=backend)(work)
    cached()
    limited = rs.rate_limit(1e7, storage=backend, name="happy")(work)  # never waits
    samples = compare_calls(
        {
            "breaker": on_redis,
            "ping": client.ping,
            "cache hit": cached,
            "permit": limited,
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
    rows = [
        Row.check(
            "rs.circuit_breaker(storage=Redis), happy path / PING",
            breaker.best / ping.best,
            1.5,
            detail,
        )
    ]
    for name, label in (
        ("cache hit", "rs.ttl_cache(storage=Redis) hit"),
        ("permit", "rs.rate_limit(storage=Redis) permit"),
    ):
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

QUOTA_THREADS = 4
QUOTA_VARIANTS = ("policy", "ahead", "due", "own", "policy paused", "ahead paused")
PAUSE_EVERY = 0.4
PAUSE_FOR = 0.06


class Pauses:
    """Freezes the worker processes in turn while a block runs, as a busy host would.

    Every PAUSE_EVERY seconds one worker (the next in turn) is stopped (``SIGSTOP``) for
    PAUSE_FOR seconds, then continued: what a garbage-collector pause, a CPU quota
    (cgroups throttling) or a busy hypervisor do to a process. Its threads that were
    waiting for a permit wake 40 ms or more after it was due.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = list(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pauses", daemon=True)

    def __enter__(self) -> Pauses:  # noqa: PYI034 - not subclassed
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        turn = 0
        while not self._stop.wait(PAUSE_EVERY):
            pid = self.pids[turn % len(self.pids)]
            turn += 1
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(PAUSE_FOR)
            finally:
                os.kill(pid, signal.SIGCONT)


def _limited_get(how: str, url: str, namespace: str, api: str) -> Callable[[], object]:
    """One request to the API, with a permit taken as *how* says (see `quota_calls`)."""
    target = api + MOVERS
    if how in {"policy", "own"}:
        storage = RedisBackend(url, namespace=namespace) if how == "policy" else None
        return functools.partial(rs.rate_limit(QUOTA, name="api", storage=storage)(_get), target)
    if how == "ahead":
        limiter = rs.RateLimiter(QUOTA, name="api", storage=RedisBackend(url, namespace=namespace))

        def ahead() -> object:
            time.sleep(limiter.reserve())
            return _get(target)

        return ahead
    store = RedisBackend(url, namespace=namespace).rate_store("api", rs.SystemClock())
    interval = 1.0 / QUOTA

    def when_due() -> object:
        while True:
            left = rs.time_remaining()
            reservation = store.reserve("", now=0.0, interval=interval, burst=1, max_wait=0)
            if reservation.granted:
                return _get(target)
            if left is not None and reservation.wait > left:
                raise rs.RateLimitExceeded("api", reservation.wait, left)
            time.sleep(reservation.wait)

    return when_due


def quota_calls(  # noqa: PLR0917 - starmap passes arguments by position
    start_at: float, url: str, namespace: str, api: str, seconds: float, how: str
) -> tuple[int, tuple[int, int]]:
    """In a worker: QUOTA_THREADS threads call the API under one quota for *seconds*.

    Each call runs under a deadline at the end of the run, so the limiter refuses (with
    `RateLimitExceeded`) a permit that would come after it: that ends the thread.
    Returns the requests sent and the calls refused.

    *how*: ``"policy"``: ``rs.rate_limit(QUOTA, storage=<Redis>)``; ``"ahead"``: a permit
    reserved with ``RateLimiter.reserve`` on the same Redis, slept for, and always used;
    ``"due"``: a permit taken only when due (``max_wait=0``; when refused, sleep the wait
    given and ask again); ``"own"``: ``rs.rate_limit(QUOTA)`` in this process's memory.
    """
    call = _limited_get(how.removesuffix(" paused"), url, namespace, api)
    end = start_at + seconds
    sent = [0] * QUOTA_THREADS
    refused = [0] * QUOTA_THREADS

    def body(n: int) -> None:
        while (left := end - time.time()) > 0:
            try:
                with rs.deadline_after(left):
                    call()
            except rs.RateLimitExceeded:
                refused[n] += 1
                return
            sent[n] += 1

    threads = [threading.Thread(target=body, args=(n,)) for n in range(QUOTA_THREADS)]
    _until(start_at)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return os.getpid(), (sum(sent), sum(refused))


def busiest_second(times: list[float]) -> int:
    """The most requests in any sliding window of 1 s.

    The busiest window can always be moved to start at a request, so only those windows
    are counted: [t, t + 1 s) for every arrival t.
    """
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


#: Linux's SO_TIMESTAMPNS (also the type of its SCM_TIMESTAMPNS message): the kernel notes
#: the wall-clock time each segment arrived. Python's socket module does not name it.
SO_TIMESTAMPNS = 35
_ANSWER = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class ArrivalServer:
    """A counting HTTP server on 127.0.0.1 that notes when each request arrived.

    The arrival is the kernel's receive timestamp of the request's first segment
    (``SO_TIMESTAMPNS``, Linux), so that this server's own scheduling on a busy machine
    (it shares the CPUs with the clients and Redis) does not move it; the time the server
    read the request is kept too. Answers every request with 200, one at a time.
    """

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        try:  # accepted connections inherit the option
            self._listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.kernel_stamps = sys.platform == "linux"
        except OSError:
            self.kernel_stamps = False
        self._listener.listen(256)
        self._listener.settimeout(0.1)
        self._lock = threading.Lock()
        self._arrived: list[float] = []
        self._read: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="arrivals", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ArrivalServer:  # noqa: PYI034 - not subclassed
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def times(self) -> tuple[list[float], list[float]]:
        """Arrival times (the kernel's, where it stamps), and the times the server read them."""
        with self._lock:
            return list(self._arrived), list(self._read)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        request, arrived, read = b"", None, None
        while b"\r\n\r\n" not in request:
            chunk, ancillary, _, _ = connection.recvmsg(4096, socket.CMSG_SPACE(16))
            if not chunk:
                return
            if read is None:
                read = time.time()
                for level, kind, data in ancillary:
                    if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
                        seconds, nanoseconds = struct.unpack("qq", data[:16])
                        arrived = seconds + nanoseconds / 1e9
            request += chunk
        connection.sendall(_ANSWER)
        with self._lock:
            self._arrived.append(read if arrived is None else arrived)
            self._read.append(cast("float", read))


def _reservations(client: redis.Redis) -> int:
    return _usec(client, "evalsha")[0]


@dataclass(frozen=True)
class QuotaRound:
    """One run of one variant of the shared quota."""

    busiest: int  # the most requests in any sliding 1 s window of their arrivals
    busiest_read: int  # the same, over the times the server read them
    sent: list[int]  # requests, per process
    refused: int  # calls that got RateLimitExceeded (one per thread, at the end)
    asked: int  # reservations the store answered (Redis scripts run)

    @property
    def total(self) -> int:
        return sum(self.sent)

    @property
    def given_up(self) -> int:
        """Permits reserved and not used: neither a request nor a refusal."""
        return self.asked - self.total - self.refused


def shared_quota(pool: Pool, url: str, seconds: float, rounds: int) -> list[Row]:
    """Each variant *rounds* times, in rotating order: busiest window, requests, shares."""
    found: dict[str, list[QuotaRound]] = {v: [] for v in QUOTA_VARIANTS}
    client = redis.Redis.from_url(url)
    with ArrivalServer() as api:
        for round_number in range(rounds):
            shift = round_number % len(QUOTA_VARIANTS)
            for how in QUOTA_VARIANTS[shift:] + QUOTA_VARIANTS[:shift]:
                before = len(api.times()[0])
                asked_before = _reservations(client)
                paused = Pauses(WORKER_PIDS) if how.endswith("paused") else contextlib.nullcontext()
                with paused:
                    answers = everywhere(
                        pool, quota_calls, url, _namespace(), api.url, seconds, how
                    )
                arrived, read = (times[before:] for times in api.times())
                sent = [requests for requests, _ in answers]
                if len(arrived) != sum(sent):
                    raise RuntimeError(f"{how}: {len(arrived)} requests arrived, {sum(sent)} sent")
                found[how].append(
                    QuotaRound(
                        busiest_second(arrived),
                        busiest_second(read),
                        sent,
                        sum(refused for _, refused in answers),
                        _reservations(client) - asked_before,
                    )
                )
    client.close()
    stamps = "kernel receive timestamps" if api.kernel_stamps else "the times the server read them"

    def worst(how: str) -> int:
        return max(one.busiest for one in found[how])

    def detail(how: str) -> str:
        parts = []
        for one in found[how]:
            text = (
                f"{one.busiest} in the busiest 1 s ({one.busiest_read} as read by the"
                f" server), {one.total} requests"
                f" ({one.total / seconds:.1f}/s, {one.total / (QUOTA * seconds):.0%} of the"
                f" quota), per process {one.sent}"
            )
            if how.startswith(("policy", "ahead")):
                text += f", {one.given_up} permits given up"
            if how == "due":
                text += f", {one.asked / max(1, one.total):.1f} store calls per request"
            parts.append(text)
        return "; ".join(parts)

    setup = (
        f"{PROCESSES} processes x {QUOTA_THREADS} threads, {seconds:g} s, burst 1; every"
        f" sliding 1 s window of the requests' arrivals at a counting HTTP server on"
        f" 127.0.0.1 ({stamps}); {rounds} rounds: "
    )
    return [
        Row.check(
            "rs.rate_limit(50/s, storage=Redis) shared: most requests in 1 s",
            worst("policy"),
            WINDOW_LIMIT,
            setup + detail("policy"),
        ),
        Row.context(
            "  permits reserved ahead, always used: most in 1 s",
            worst("ahead"),
            detail("ahead"),
        ),
        Row.context(
            "  permits taken only when due (no queue): most in 1 s",
            worst("due"),
            detail("due"),
        ),
        Row.context(
            "  rs.rate_limit(50/s) per process: most in 1 s",
            worst("own"),
            detail("own"),
        ),
        Row.context(
            "  rs.rate_limit(50/s, storage=Redis), processes paused: most in 1 s",
            worst("policy paused"),
            f"one worker frozen (SIGSTOP) for {PAUSE_FOR * 1000:.0f} ms every"
            f" {PAUSE_EVERY:g} s, in turn: " + detail("policy paused"),
        ),
        Row.context(
            "  reserved ahead, always used, processes paused: most in 1 s",
            worst("ahead paused"),
            detail("ahead paused"),
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


def _fails() -> None:
    raise ConnectionError("HTTP 503")


def ops_per_call(url: str) -> dict[str, tuple[float, float]]:
    """Per call through each policy: round trips, and Redis commands run (scripts' too)."""
    # The events of these calls (an operator opening a breaker) are not the measurement.
    rs.instrumentation.set_hooks([])
    try:
        return _ops_per_call(url)
    finally:
        rs.instrumentation.set_hooks(None)


def _ops_per_call(url: str) -> dict[str, tuple[float, float]]:
    pool = redis.ConnectionPool.from_url(url, connection_class=_CountingConnection)
    backend = RedisBackend(redis.Redis(connection_pool=pool), namespace=_namespace())
    counter = redis.Redis.from_url(url)

    def work(*_: object) -> int:
        return 1

    ok = rs.circuit_breaker(storage=backend, name="ok")(work)
    failing = rs.circuit_breaker(fail_max=10**9, storage=backend, name="failing")(_fails)
    opened = rs.circuit_breaker(storage=backend, name="open")(work)
    opened.breaker.open()
    cached = rs.ttl_cache(ttl=600, storage=backend)(work)
    cached("hit")
    limited = rs.rate_limit(1e7, storage=backend, name="capacity")(work)
    guarded = rs.resilient(
        breaker={"storage": backend, "name": "guarded"},
        rate_limit={"rate": 1e7, "storage": backend, "name": "guarded"},
    )(work)
    full = rs.resilient(
        cache={"ttl": 600, "storage": backend},
        breaker={"storage": backend, "name": "full"},
        rate_limit={"rate": 1e7, "storage": backend, "name": "full"},
    )(work)
    full("hit")

    def expect(error: type[BaseException], call: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with contextlib.suppress(error):
                call()

        return run

    operations: dict[str, Callable[[], object]] = {
        "rs.circuit_breaker, closed, success": ok,
        "rs.circuit_breaker, closed, failure": expect(ConnectionError, failing),
        "rs.circuit_breaker, open: rejected": expect(rs.CircuitOpenError, opened),
        "rs.ttl_cache hit": lambda: cached("hit"),
        "rs.ttl_cache miss (get, lease, set, release)": lambda: cached(uuid.uuid4().hex),
        "rs.rate_limit permit": limited,
        "rs.resilient(breaker, rate_limit) call": guarded,
        "rs.resilient(cache, breaker, rate_limit) hit": lambda: full("hit"),
        "rs.resilient(cache, breaker, rate_limit) miss": lambda: full(uuid.uuid4().hex),
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
    """In a worker: 4 threads calling through the breaker or the limiter, for *seconds*."""
    backend = RedisBackend(url, namespace=namespace)

    def work() -> None:
        return None

    if what == "breaker":
        call = rs.circuit_breaker(storage=backend, name="api")(work)
    else:
        call = rs.rate_limit(1e7, storage=backend, name="hammer")(work)
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
    for what, label in (
        ("breaker", "rs.circuit_breaker check (GET)"),
        ("reserve", "rs.rate_limit permit (script)"),
    ):
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
    miss = per_call["rs.ttl_cache miss (get, lease, set, release)"][0]
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
            f" itself costs {QUOTA:g} permits/s = {QUOTA * guarded * 100:.2f}% of one core"
        ),
    ]
    return rows, notes


# -- running -----------------------------------------------------------------------------------


def run(*, quick: bool = False, quota_rounds: int | None = None) -> list[Row]:
    """Run every Redis benchmark and return its rows; *quick* takes fewer rounds."""
    return _run(quick=quick, quota_rounds=quota_rounds)[0]


def _run(*, quick: bool, quota_rounds: int | None = None) -> tuple[list[Row], list[str]]:
    if quota_rounds is None:
        quota_rounds = 1 if quick else 2
    rounds = 1 if quick else 3
    micro = 5 if quick else 15
    seconds = 2.0 if quick else QUOTA_SECONDS
    with redis_url() as url, worker_processes() as pool:
        rows = [
            *shared_breaker(pool, url, rounds),
            *stampede(pool, url, rounds),
            *happy_path(url, micro),
            *shared_quota(pool, url, seconds, quota_rounds),
        ]
        capacity_rows, notes = capacity(pool, url, 1.0 if quick else 2.0)
        rows.extend(capacity_rows)
        server: dict[str, Any] = redis.Redis.from_url(url).info("server")
    notes.append(
        f"Redis {server['redis_version']} on loopback; redis-py {redis.__version__};"
        f" {PROCESSES} spawned worker processes"
    )
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit status 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a quick look")
    parser.add_argument(
        "--quota-rounds", type=int, default=None, help="rounds of the shared quota (default 2)"
    )
    args = parser.parse_args(argv)
    rows, notes = _run(quick=args.quick, quota_rounds=args.quota_rounds)
    print_report("resilient_scan Redis benchmarks", rows, notes)
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
