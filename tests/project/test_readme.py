"""The README's commands exist and its example runs as written, printing what it says."""

import re
import subprocess
import sys
from pathlib import Path

import dev

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_the_readme_example_runs_and_prints_what_it_says():
    (example,) = python_blocks()
    result = subprocess.run(  # noqa: S603 - runs this repository's own README
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-3].startswith("{'ok': 1, 'error': 1, 'timeout': 0")
    assert lines[-2] == "NVDA"
    assert lines[-1].startswith("ttl_cache(ttl=60s")
    assert lines[-1].endswith("timeout(5s) -> get_json")
    assert "✓ market_movers: 1 candidate\n" in result.stderr
    assert "broken_scanner: RuntimeError: HTTP 500 error" in result.stderr


def test_the_quick_start_is_two_commands_of_the_task_runner_and_ci_runs_the_second():
    quick_start = README.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert commands == ["python3 dev.py demo", "python3 dev.py test"]
    assert {"demo", "test"} <= set(dev.TASKS)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^python3 dev\.py test$", ci, flags=re.MULTILINE)


def test_the_commands_shown_after_the_quick_start_exist():
    after = README.split("## Quick start", 1)[1].split("## Install", 1)[0]
    for path in re.findall(r"(examples/[\w./]+)", after):
        assert (ROOT / path).exists(), path
    assert "resilient-scan run" in after
    assert "--html" in after


def test_every_local_link_in_the_readme_resolves():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), target
