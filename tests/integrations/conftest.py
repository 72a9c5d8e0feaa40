"""Fixtures for the integration tests: a real redis-server on 127.0.0.1.

``redis_url`` is the Redis every test shares: the one named by ``RESILIENT_SCAN_REDIS_URL``
if that is set (it must answer), else a private ``redis-server`` started for the session
(no persistence) from ``redis-server`` on the PATH or ``/usr/bin/redis-server``. Tests that
stop, pause and restart Redis get a private server of their own (``redis_server``). With
neither, the tests skip with the reason, or fail under ``CI=true``
(`tests.helpers.require_server`).

Every test works in a namespace of its own (``backend``, ``namespace``), removed at the
end by ``SCAN`` + ``UNLINK``: a shared Redis is never flushed.

Tests that share state between processes hand one task to each of ``PROCESSES`` spawned
interpreters (``pool``), which start it together at one wall-clock instant (`together`),
on many threads at once (`in_threads`).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import pytest
import redis

from resilient_scan.redis import RedisBackend
from tests.helpers import require_server

REDIS_URL_ENV = "RESILIENT_SCAN_REDIS_URL"
HOW = (
    "install redis-server (Debian/Ubuntu: apt-get install redis-server) or set"
    f" {REDIS_URL_ENV}=redis://127.0.0.1:6379/0 to a running one"
)


def redis_binary() -> str | None:
    """The redis-server executable, if there is one."""
    found = shutil.which("redis-server")
    if found:
        return found
    fallback = Path("/usr/bin/redis-server")
    return str(fallback) if fallback.exists() else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether a Redis at *url* answers PING."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class RedisServer:
    """A redis-server of our own on 127.0.0.1, which a test may stop, pause and restart."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (on the same port as before) and wait until it answers."""
        assert self.process is None, "already running"
        self.process = subprocess.Popen(  # noqa: S603 - our own arguments
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not answers(self.url, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Kill the server (SIGKILL: no goodbye to its clients) and wait until it is gone."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # in case it was paused
            process.kill()
        process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it accepts connections but answers nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def start_private_server() -> RedisServer:
    """A private server, or the test is skipped (failed under CI=true) with the reason."""
    binary = redis_binary()
    require_server("redis-server", binary is not None, HOW)
    assert binary is not None
    server = RedisServer(binary, free_port())
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a Redis that answers: the one in RESILIENT_SCAN_REDIS_URL, or our own."""
    given = os.environ.get(REDIS_URL_ENV)
    if given:
        require_server(f"Redis at {REDIS_URL_ENV}={given}", answers(given), HOW)
        yield given
        return
    server = start_private_server()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for this test alone, to stop, pause and restart."""
    server = start_private_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A namespace of this test's own; its keys are removed afterwards."""
    name = f"rs-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.unlink(*keys)
    finally:
        client.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client of the shared Redis, to look at what the stores wrote."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def backend(redis_url: str, namespace: str) -> Iterator[RedisBackend]:
    """A backend on the shared Redis, in this test's namespace."""
    made = RedisBackend(redis_url, namespace=namespace)
    yield made
    made.close()


class CommandLog:
    """What a counting client sent: each command's name, and each socket it opened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.commands: list[str] = []
        self.connects = 0

    def sent(self, name: object) -> None:
        with self._lock:
            self.commands.append(name.decode() if isinstance(name, bytes) else str(name))

    def connected(self) -> None:
        with self._lock:
            self.connects += 1

    def take(self) -> list[str]:
        """The commands sent since the last take."""
        with self._lock:
            taken, self.commands = self.commands, []
            return taken


CountingFactory = Callable[..., tuple[redis.Redis, CommandLog]]


@pytest.fixture
def counting_client() -> Iterator[CountingFactory]:
    """Make clients whose connections log every command and every connect.

    ``counting_client(url, **pool_options)`` returns ``(client, log)``. One command is one
    round trip (the stores use no pipelines), so ``log.commands`` counts round trips.
    """
    made: list[redis.Redis] = []

    def make(url: str, **options: Any) -> tuple[redis.Redis, CommandLog]:
        log = CommandLog()

        class Counting(redis.Connection):
            def send_command(self, *args: Any, **kwargs: Any) -> None:
                log.sent(args[0])
                super().send_command(*args, **kwargs)  # type: ignore[no-untyped-call]

            def _connect(self) -> socket.socket:
                log.connected()
                return super()._connect()  # type: ignore[no-untyped-call, no-any-return]

        pool = redis.ConnectionPool.from_url(url, connection_class=Counting, **options)
        client = redis.Redis(connection_pool=pool)
        made.append(client)
        return client, log

    yield make
    for client in made:
        client.close()


# -- real processes --------------------------------------------------------------------------

PROCESSES = 4


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """PROCESSES spawned interpreters (fresh, like separate services) for one test module."""
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as workers:
        yield workers


def together(pool: Pool, task: Callable[..., Any], *args: Any) -> list[Any]:
    """Run *task* once in each worker process, all starting at the same instant.

    *task* gets that instant (``time.time()`` seconds) first, then *args*, and returns
    ``(os.getpid(), result)``; the results come back in no particular order.
    """
    start_at = time.time() + 0.5
    results = pool.starmap(task, [(start_at, *args)] * PROCESSES, chunksize=1)
    pids = {pid for pid, _ in results}
    assert len(pids) == PROCESSES, "each task must run in a process of its own"
    return [result for _, result in results]


def in_threads(start_at: float, work: Callable[[], Any], threads: int) -> tuple[int, list[Any]]:
    """Wait for *start_at*, then run *work* on *threads* threads at once; (pid, results)."""
    time.sleep(max(0.0, start_at - time.time()))
    barrier = threading.Barrier(threads)
    results: list[Any] = []
    lock = threading.Lock()

    def body() -> None:
        barrier.wait()
        result = work()
        with lock:
            results.append(result)

    runners = [threading.Thread(target=body) for _ in range(threads)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    return os.getpid(), results
