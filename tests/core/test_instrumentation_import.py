"""Importing the library, and instrumenting with the default hooks, loads nothing heavy (9.6).

Each check runs in a fresh interpreter: this test process has loaded everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

#: Modules `import resilient_scan` must not load: optional dependencies, and the heavy
#: parts of the standard library that only some paths need.
HEAVY = (
    "anyio",
    "asyncio",
    "dask",
    "email",
    "http",
    "opentelemetry",
    "prometheus_client",
    "pybreaker",
    "redis",
    "rich",
    "ssl",
    "structlog",
    "tenacity",
)


def loaded_after(code: str) -> list[str]:
    """The HEAVY top-level modules loaded once *code* has run in a fresh interpreter."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))))
        """
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    result: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_importing_the_library_loads_no_optional_dependency():
    assert loaded_after("import resilient_scan") == []


def test_default_hooks_log_without_loading_structlog_when_the_application_does_not():
    code = """
        import logging
        import resilient_scan as rs
        from resilient_scan.testing import FakeClock

        logging.basicConfig(level=logging.DEBUG, stream=open("/dev/null", "w"))
        calls = []

        @rs.resilient(retry={"attempts": 2, "backoff": 0.1, "clock": FakeClock()}, cache=60)
        def fetch():
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError("reset")
            return 1

        fetch()
        fetch()
    """
    assert "structlog" not in loaded_after(code)


def test_hook_factories_load_their_library_on_the_first_event_only():
    code = """
        from resilient_scan import instrumentation
        from resilient_scan._instrument import emit, wanted

        def prometheus_hook():
            from resilient_scan.prometheus import PrometheusHook
            from prometheus_client import CollectorRegistry
            return PrometheusHook(CollectorRegistry())

        instrumentation.set_hooks([instrumentation.HookFactory(prometheus_hook)])
        assert wanted(instrumentation.CacheHit)
        import sys
        assert "prometheus_client" not in sys.modules
        emit(instrumentation.CacheHit("quotes", "fetch"))
        assert "prometheus_client" in sys.modules
    """
    assert "prometheus_client" in loaded_after(code)  # the asserts inside say when
