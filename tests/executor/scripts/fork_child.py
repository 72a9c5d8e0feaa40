"""Use the executor and a timeout in a parent, fork, and use them again in the child.

Prints the child's outcomes; exits 1 if the child hung.
"""

import multiprocessing
import sys
import warnings

import resilient_scan as rs


def scan(state: object) -> list[dict[str, str]]:
    return [{"ticker": "abc"}]


@rs.timeout(5)
def quick() -> str:
    return "ok"


def child(results: "multiprocessing.Queue[str]") -> None:
    report = rs.ScanExecutor(timeout_seconds=5).run([scan], {})
    results.put(f"{report.results[0].status} {quick()} {rs.abandoned_threads()}")


if __name__ == "__main__":
    rs.configure_logging(format="json", level="critical")
    rs.ScanExecutor().run([scan], {})  # the parent now has idle worker threads
    quick()
    warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on 3.12+
    context = multiprocessing.get_context("fork")
    results: "multiprocessing.Queue[str]" = context.Queue()
    process = context.Process(target=child, args=(results,))
    process.start()
    process.join(10)
    if process.is_alive():
        process.kill()
        print("child hung")  # noqa: T201 - the test reads it
        sys.exit(1)
    print(results.get(timeout=1))  # noqa: T201 - the test reads it
