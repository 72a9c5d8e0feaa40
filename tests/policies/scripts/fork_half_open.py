"""Fork while a breaker's half-open trial runs in another thread; try the breaker in the child.

Prints ``parent=<outcome> child=<outcome> <state>``. The child has no thread running the
parent's trial, so its first call must be admitted as the trial, not rejected for good.
"""

import contextlib
import os
import sys
import threading
import warnings

import resilient_scan as rs
from resilient_scan.testing import FakeClock

clock = FakeClock()
entered = threading.Event()
release = threading.Event()


@rs.circuit_breaker(fail_max=1, reset_timeout=10, clock=clock)
def call(mode: str) -> str:
    if mode == "fail":
        raise ConnectionError("down")
    if mode == "hold":
        entered.set()
        release.wait(10)
    return "ok"


def outcome() -> str:
    try:
        return call("now")
    except rs.CircuitOpenError:
        return "rejected"


if __name__ == "__main__":
    rs.instrumentation.set_hooks([])
    with contextlib.suppress(ConnectionError):
        call("fail")
    clock.advance(11)
    trial = threading.Thread(target=call, args=("hold",))
    trial.start()
    entered.wait(5)
    parent = outcome()  # the parent's trial is running: rejected
    warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on 3.12+
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        child = outcome()
        os.write(write, f"{child} {call.breaker.state}".encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 200).decode()
    os.waitpid(pid, 0)
    release.set()
    trial.join(5)
    sys.stdout.write(f"parent={parent} child={child}\n")
