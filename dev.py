#!/usr/bin/env python3
"""Developer tasks for resilient_scan, on any machine with Python 3.10+: no make needed.

    python3 dev.py demo           # set up .venv (library + CLI), run the demo
    python3 dev.py test           # set up .venv (+ test tools), lint, type-check, run the tests
    python3 dev.py docs           # build the documentation site, strictly (warnings fail)
    python3 dev.py bench          # run every benchmark and print one table
    python3 dev.py test-minimum   # run the tests against the lowest declared dependency versions

Each task installs what it needs into a virtual environment of this checkout first, and only
again when pyproject.toml changes. Extra arguments go to the tool the task runs
(``python3 dev.py test -k cache``, ``python3 dev.py demo --quick``).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PYPROJECT = ROOT / "pyproject.toml"

#: Which extras each task installs.
EXTRAS = {
    "demo": "cli,prometheus",
    "test": "test",
    "docs": "docs",
    "bench": "test,bench",
}


def _bin(env: Path, name: str) -> Path:
    folder = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return env / folder / f"{name}{suffix}"


def _run(*command: object, env: dict[str, str] | None = None) -> int:
    printable = " ".join(str(part) for part in command)
    print(f"$ {printable}", flush=True)
    return subprocess.call([str(part) for part in command], cwd=ROOT, env=env)


def _ensure_env(env: Path, requirements: list[str], stamp_extra: str = "") -> Path:
    """Create *env* if needed and install *requirements* when pyproject.toml changed."""
    python = _bin(env, "python")
    digest = hashlib.sha256(
        PYPROJECT.read_bytes() + repr(requirements).encode() + stamp_extra.encode()
    )
    stamp = env / ".installed"
    if python.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
        return python
    if not python.exists():
        print(f"Creating {env.name} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=env.exists()).create(env)
    # Errors only: a clean terminal for the task itself (pip still fails loudly).
    pip = [python, "-m", "pip", "install", "-qq", "--disable-pip-version-check"]
    if _run(*pip, *requirements) != 0:
        sys.exit("dev.py: installing the requirements failed (see above)")
    stamp.write_text(digest.hexdigest())
    return python


def _project_env(extras: str) -> Path:
    # One environment for every task: the extras of all tasks run so far are kept.
    env = ROOT / ".venv"
    wanted = set(extras.split(","))
    marker = env / ".extras"
    if marker.exists():
        wanted |= set(marker.read_text().split(","))
    python = _ensure_env(env, ["-e", f".[{','.join(sorted(wanted))}]"])
    marker.write_text(",".join(sorted(wanted)))
    return python


def demo(args: list[str]) -> int:
    """Run the demo pipeline against the embedded API simulator."""
    _project_env(EXTRAS["demo"])
    return _run(_bin(ROOT / ".venv", "resilient-scan"), "demo", *args)


def test(args: list[str]) -> int:
    """Lint, type-check and run the whole test suite."""
    python = _project_env(EXTRAS["test"])
    for step in (
        [python, "-m", "ruff", "check", "."],
        [python, "-m", "ruff", "format", "--check", "."],
        [python, "-m", "mypy"],
    ):
        if _run(*step) != 0:
            return 1
    # pytest exits 5 when it collects no tests: that fails this task too.
    return _run(python, "-m", "pytest", *args)


def docs(args: list[str]) -> int:
    """Build the documentation site into site/, failing on any warning."""
    python = _project_env(EXTRAS["docs"])
    return _run(python, "-m", "mkdocs", "build", "--strict", *args)


def bench(args: list[str]) -> int:
    """Run every benchmark and print one table of ratios."""
    python = _project_env(EXTRAS["bench"])
    return _run(python, "benchmarks/run.py", *args)


#: The extras whose minimum versions `test-minimum` pins too (the library's integrations; the
#: tools that only run the tests, benchmarks and docs are taken as they come).
LIBRARY_EXTRAS = ("cli", "redis", "dask", "prometheus", "opentelemetry", "pybreaker")


def _minimum_pins() -> list[str]:
    """``name==X`` for every ``name>=X`` of the dependencies and the library's extras."""
    try:
        import tomllib  # noqa: PLC0415 - only this task reads the file's tables
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # noqa: PLC0415
        except ModuleNotFoundError:
            sys.exit("dev.py test-minimum: on Python 3.10 it needs tomli: pip install tomli")
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in LIBRARY_EXTRAS:
        requirements += project["optional-dependencies"][extra]
    # The SDK the tests use must match the API's minimum.
    requirements += [r for r in project["optional-dependencies"]["test"] if "-sdk" in r]
    pins = []
    for requirement in requirements:
        if ";" in requirement:  # environment markers: only for other Python versions
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?>=([^,]+)", requirement)
        if match:
            pins.append(f"{match[1]}{match[2] or ''}=={match[3]}")
    return pins


def test_minimum(args: list[str]) -> int:
    """Run the tests against the lowest versions of every dependency the project declares."""
    pins = _minimum_pins()
    env = ROOT / ".venv-minimum"
    python = _ensure_env(env, ["-e", ".[test]", *pins], stamp_extra="minimum")
    print("Pinned to the declared minimums: " + ", ".join(pins), flush=True)
    return _run(python, "-m", "pytest", "-p", "no:cacheprovider", *args)


TASKS = {
    "demo": demo,
    "test": test,
    "docs": docs,
    "bench": bench,
    "test-minimum": test_minimum,
}


def main(argv: list[str]) -> int:
    """Run the task named first in *argv*."""
    if not argv or argv[0] not in TASKS:
        print(__doc__.strip())
        return 2
    return TASKS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
