"""``--metrics PORT`` serves Prometheus metrics while a command runs."""

from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from resilient_scan.cli import main
from resilient_scan.instrumentation import get_hooks
from resilient_scan.prometheus import PrometheusHook


def _sample(metric: str, **labels: str) -> float:
    """The current value of one sample of the process's default registry (0 if absent)."""
    exposition = generate_latest(REGISTRY).decode()
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_the_demo_serves_metrics_that_count_what_its_layers_did(tmp_path, capsys):
    retries = ("resilient_scan_retries_total", {"function": "social-api.get"})
    rejections = ("resilient_scan_breaker_rejections_total", {"breaker": "options-flow"})
    before = [_sample(name, **labels) for name, labels in (retries, rejections)]

    status = main(["demo", "--quick", "--metrics", "0", "--html", str(tmp_path / "d.html")])

    assert status == 0
    err = capsys.readouterr().err
    assert re.search(r"Prometheus metrics on http://127\.0\.0\.1:\d+/metrics while", err)
    served = re.search(r"Metrics: (\d+) resilient_scan series served on", err)
    assert served, err
    assert int(served[1]) > 10
    after = [_sample(name, **labels) for name, labels in (retries, rejections)]
    assert after[0] - before[0] >= 2  # the flaky endpoint's two HTTP 500s
    assert after[1] - before[1] >= 1  # run 2 found the breaker open
    assert not any(isinstance(hook, PrometheusHook) for hook in get_hooks())  # removed again


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_a_bad_port_is_a_usage_error(port, capsys):
    assert main(["demo", "--metrics", port]) == 2
    assert "must be a port number from 0 to 65535" in capsys.readouterr().err
