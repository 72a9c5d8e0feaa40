"""The public surface: what the contract names exists, with the documented shape."""

from __future__ import annotations

import inspect
import subprocess
import sys
import time
from importlib.metadata import version

import resilient_scan as rs


def test_all_is_sorted_unique_and_every_name_exists():
    assert rs.__all__ == sorted(rs.__all__, key=lambda name: (not name.isupper(), name))
    assert len(set(rs.__all__)) == len(rs.__all__)
    assert [name for name in rs.__all__ if not hasattr(rs, name)] == []


def test_every_public_object_has_a_docstring():
    undocumented = [
        name for name in rs.__all__ if not name.isupper() and not inspect.getdoc(getattr(rs, name))
    ]
    assert undocumented == []


def test_the_contract_policies_take_the_contract_arguments():
    expected = {
        "timeout": ["seconds"],
        "retry": ["attempts", "backoff", "max_backoff", "jitter", "on", "total"],
        "ttl_cache": ["ttl", "maxsize", "key"],
        "circuit_breaker": ["fail_max", "reset_timeout", "exclude", "name", "storage"],
        "resilient": ["timeout", "retry", "cache", "breaker"],
    }
    for name, arguments in expected.items():
        parameters = list(inspect.signature(getattr(rs, name)).parameters)
        assert parameters[: len(arguments)] == arguments or set(arguments) <= set(parameters), name
    defaults = inspect.signature(rs.retry).parameters
    assert defaults["attempts"].default == 3
    assert defaults["backoff"].default == 0.5
    assert defaults["max_backoff"].default == 30.0
    assert defaults["jitter"].default is True
    assert defaults["on"].default is Exception
    assert defaults["total"].default is None


def test_the_executor_takes_the_contract_settings():
    parameters = inspect.signature(rs.ScanExecutor).parameters
    assert parameters["concurrent"].default is True
    assert parameters["max_workers"].default == 8
    assert parameters["timeout_seconds"].default == 30.0
    assert parameters["deadline_seconds"].default is None
    assert callable(rs.ScanExecutor.from_config)


def test_error_hierarchy_matches_the_contract():
    assert issubclass(rs.ScanTimeout, rs.ResilientScanError)
    assert issubclass(rs.ScanTimeout, TimeoutError)
    assert issubclass(rs.CircuitOpenError, rs.ResilientScanError)
    assert issubclass(rs.ConfigError, rs.ResilientScanError)
    assert issubclass(rs.ConfigError, ValueError)


def test_the_testing_aid_stops_backoff_sleeps():
    calls = []

    @rs.retry(attempts=3, backoff=20, max_backoff=60, jitter=False)
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError
        return "ok"

    started = time.monotonic()
    with rs.testing.no_waits():
        assert flaky() == "ok"
    assert len(calls) == 3
    assert time.monotonic() - started < 10  # the two waits would take 60 s


def test_the_version_comes_from_the_package_metadata():
    assert rs.__version__ == version("resilient-scan")


def test_importing_the_package_loads_no_heavy_or_optional_module():
    code = (
        "import sys, resilient_scan; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'structlog','tenacity','pybreaker','asyncio','anyio','ssl','redis','dask',"
        "'distributed','prometheus_client','opentelemetry','rich','argparse','http'} "
        "or m.startswith('resilient_scan.cli'))))"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == []
