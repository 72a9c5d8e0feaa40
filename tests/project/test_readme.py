"""The README's example runs as written, and prints what its comments say."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_example_runs_and_prints_what_it_says():
    (example,) = python_blocks(ROOT / "README.md")
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
    assert "✓ market_movers: 1 candidate" in result.stderr
    assert "⚠️ broken_scanner: HTTP 500 error" in result.stderr


def test_the_readme_quick_start_is_two_make_targets_that_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = text.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^(make \w+)", quick_start, flags=re.MULTILINE)
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, flags=re.MULTILINE)
    assert re.search(r"^test:", makefile, flags=re.MULTILINE)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
