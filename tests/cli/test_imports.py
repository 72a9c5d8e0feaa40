"""The library never loads the application: `import resilient_scan` imports no CLI or demo."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.cli.support import clean_env

PROBE = """
import json, sys
import resilient_scan
import resilient_scan.testing
report = resilient_scan.ScanExecutor().run([lambda state: []])
report.to_json()
report.to_html()
print(json.dumps(sorted(sys.modules)))
"""


def test_the_library_loads_neither_the_command_line_nor_the_demo():
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", PROBE],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = json.loads(done.stdout)

    assert "resilient_scan" in modules
    assert [name for name in modules if name.startswith("resilient_scan.cli")] == []
    assert [name for name in modules if "_demo" in name or "demo" in name.split(".")] == []
    assert "rich" not in modules
    assert "argparse" not in modules


def test_the_command_line_loads_the_demo_only_for_the_demo():
    probe = (
        "import sys; from resilient_scan.cli import main;"
        "print(any(name.startswith('resilient_scan.cli.demo') for name in sys.modules))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", probe],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert done.stdout.strip() == "False"
