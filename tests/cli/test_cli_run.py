"""`resilient-scan run CONFIG`: good config files, bad ones, --output and --fail-on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from resilient_scan.cli import main
from tests.cli.support import SCANNERS, good_config, unique_module, write_config


def run(*args: str | Path) -> int:
    return main(["run", *map(str, args)])


# -- good configs --------------------------------------------------------------------------


def test_runs_the_scanners_and_prints_lines_and_a_table(tmp_path, module, capsys):
    assert run(good_config(tmp_path, module)) == 0
    out = capsys.readouterr().out
    assert "Running 4 scanners concurrently (max 4 workers)..." in out
    assert "✓ movers: 1 candidate\n" in out  # one candidate, not "1 candidates"
    assert "✓ volume: 2 candidates" in out
    assert "✓ watchlist: 1 candidate\n" in out
    assert "○ experimental: skipped" in out
    for column in ("scanner", "status", "candidates", "attempts", "duration"):
        assert column in out
    assert "NVDA  high     [movers, volume] up 9%" in out
    assert "TSLA" in out  # from the state factory
    assert "3 candidates, best first:" in out


def test_json_report_on_stdout_and_json_logs_on_stderr(tmp_path, module, capsys):
    assert run(good_config(tmp_path, module), "--json") == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert [r["name"] for r in report["results"]] == [
        "movers",
        "volume",
        "experimental",
        "watchlist",
    ]
    assert [r["status"] for r in report["results"]] == ["ok", "ok", "skipped", "ok"]
    assert [c["ticker"] for c in report["candidates"]] == ["NVDA", "AMD", "TSLA"]
    assert report["candidates"][0]["all_sources"] == ["movers", "volume"]
    assert report["tool_logs"] == [{"scanner": "movers"}]
    events = [json.loads(line) for line in captured.err.splitlines() if line.strip()]
    assert {e["scanner"] for e in events if e["event"] == "scanner.finished"} == {
        "movers",
        "volume",
        "experimental",
        "watchlist",
    }


def test_output_file_holds_the_report(tmp_path, module, capsys):
    out_file = tmp_path / "out" / "report.json"
    out_file.parent.mkdir()
    assert run(good_config(tmp_path, module), "--output", out_file) == 0
    assert f"Report written to {out_file}" in capsys.readouterr().out
    report = json.loads(out_file.read_text())
    assert report["counts"]["ok"] == 3
    assert report["counts"]["skipped"] == 1
    assert report["mode"] == "concurrent"
    assert {c["ticker"] for c in report["candidates"]} == {"NVDA", "AMD", "TSLA"}


def test_state_mapping_import_roots_and_a_single_scanner(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    names = unique_module(tmp_path / "src", SCANNERS)
    name = next(names)
    config = write_config(
        tmp_path,
        f"""
        [resilient_scan]
        scanners = ["{name}:Watchlist"]
        state = "{name}:STATE"
        path = ["src"]

        [discovery.scanner_execution]
        concurrent = false
        """,
    )
    try:
        assert run(config, "--json") == 0
    finally:
        next(names, None)
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "sequential"
    assert [c["ticker"] for c in report["candidates"]] == ["AAPL"]
    assert str(tmp_path / "src") not in sys.path  # the import roots are removed again


def test_an_error_line_keeps_the_exception_type(tmp_path, module, capsys):
    config = write_config(tmp_path, f'[resilient_scan]\nscanners = ["{module}:buggy"]\n')
    assert run(config) == 1
    out = capsys.readouterr().out
    assert "⚠ buggy: KeyError: 'MSFT'\n" in out  # not "'MSFT'" alone
    assert out.count("KeyError: 'MSFT'") == 2  # the live line and the table


# -- --fail-on -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scanners", "fail_on", "status"),
    [
        ("broken", None, 1),  # default: error
        ("broken", "error", 1),
        ("broken", "any", 1),
        ("broken", "never", 0),
        ("refused", None, 0),  # circuit_open is no "error"...
        ("refused", "any", 1),  # ...but is a failure
        ("refused", "never", 0),
    ],
)
def test_fail_on_decides_the_exit_status(tmp_path, module, capsys, *, scanners, fail_on, status):
    config = write_config(
        tmp_path,
        f"""
        [resilient_scan]
        scanners = ["{module}:volume", "{module}:{scanners}"]

        [discovery.scanner_execution]
        timeout_seconds = 5
        """,
    )
    args = [config] if fail_on is None else [config, "--fail-on", fail_on]
    assert run(*args) == status
    err = capsys.readouterr().err
    if status:
        assert f"1 scanner failed (--fail-on {fail_on or 'error'}): {scanners}" in err
    else:
        assert err == ""


def test_disabled_scanners_never_fail_the_run(tmp_path, module):
    config = good_config(tmp_path, module)
    assert run(config, "--fail-on", "any") == 0


# -- bad configs ---------------------------------------------------------------------------


def error_of(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    assert run(*args) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.err.startswith("resilient-scan: error: ")
    return captured.err


def test_toml_syntax_error_names_the_file_and_the_line(tmp_path, capsys):
    config = write_config(tmp_path, "[resilient_scan]\nscanners = [\n")
    err = error_of(capsys, config)
    assert f"{config}: invalid TOML: " in err
    assert "line" in err


def test_deeply_nested_toml_is_a_clean_error(tmp_path, capsys):
    # 7.16: tomllib recurses once per level; 5,000 levels raised RecursionError (rc 1).
    config = tmp_path / "deep.toml"
    config.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    err = error_of(capsys, config)
    assert f"{config}: invalid TOML: arrays or tables nested too deeply" in err


def test_bad_value_names_the_file_and_the_key_path(tmp_path, module, capsys):
    config = good_config(tmp_path, module).read_text().replace("max_workers = 4", "max_workers = 0")
    path = write_config(tmp_path, config, "bad.toml")
    err = error_of(capsys, path)
    assert f"{path}: discovery.scanner_execution.max_workers: must be an integer >= 1, got 0" in err


def test_bad_scanner_setting_names_its_key_path(tmp_path, module, capsys):
    path = good_config(tmp_path, module, '[discovery.scanners.volume]\nenabled = "yes"\n')
    err = error_of(capsys, path)
    assert f"{path}: discovery.scanners.volume.enabled: must be true or false" in err


def test_unknown_execution_key_is_named_with_a_suggestion(tmp_path, module, capsys):
    config = good_config(tmp_path, module).read_text().replace("max_workers", "max_worker")
    path = write_config(tmp_path, config, "typo.toml")
    err = error_of(capsys, path)
    assert f"{path}: discovery.scanner_execution.max_worker: unknown key" in err
    assert "did you mean 'max_workers'?" in err


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            "[discovery.scanners.movrs]\nenabled = false\n",
            (
                "discovery.scanners.movrs: matches no scanner in this run (did you mean"
                " 'movers'?); the scanners are: movers, volume, experimental, watchlist"
            ),
        ),
        (
            "[discovery.scanners.nothing_like_it]\nlimit = 3\n",
            (
                "discovery.scanners.nothing_like_it: matches no scanner in this run; the"
                " scanners are: movers, volume, experimental, watchlist"
            ),
        ),
        (
            "[discovery.pipelines.momentun]\nenabled = false\n",
            (
                "discovery.pipelines.momentun: matches no pipeline of the scanners in this run"
                " (did you mean 'momentum'?); the pipelines are: momentum, experimental"
            ),
        ),
    ],
)
def test_a_table_that_matches_no_scanner_is_an_error(tmp_path, module, capsys, table, expected):
    # 7.11: the command owns its whole file, so a typo in a table name is an error; before,
    # "movrs" was ignored and "momentun = false" left the momentum pipeline running.
    path = good_config(tmp_path, module, table)
    err = error_of(capsys, path)
    assert f"{path}: {expected}" in err


def test_unimportable_module_is_named(tmp_path, capsys):
    path = write_config(
        tmp_path, '[resilient_scan]\nscanners = ["no_such_module_here:scan"]\n[discovery]\n'
    )
    err = error_of(capsys, path)
    assert f"{path}: resilient_scan.scanners[0]: cannot import 'no_such_module_here:scan'" in err
    assert "No module named 'no_such_module_here'" in err


def test_missing_attribute_is_named(tmp_path, module, capsys):
    path = write_config(
        tmp_path,
        f'[resilient_scan]\nscanners = ["{module}:registry", "{module}:nope"]\n[discovery]\n',
    )
    err = error_of(capsys, path)
    assert f"resilient_scan.scanners[1]: cannot import '{module}:nope'" in err
    assert "has no attribute 'nope'" in err


def test_module_that_fails_to_import_is_named(tmp_path, capsys):
    names = unique_module(tmp_path, "raise ImportError('needs a GPU')\n", "cli_explodes")
    name = next(names)
    path = write_config(tmp_path, f'[resilient_scan]\nscanners = ["{name}:scan"]\n[discovery]\n')
    try:
        err = error_of(capsys, path)
    finally:
        next(names, None)
    assert f"cannot import '{name}:scan': ImportError: needs a GPU" in err


def test_module_that_exits_while_importing_is_an_error(tmp_path, capsys):
    # 7.16: SystemExit from an imported module ended the command with its status, silently.
    names = unique_module(tmp_path, "raise SystemExit(0)\n", "cli_exits")
    name = next(names)
    path = write_config(tmp_path, f'[resilient_scan]\nscanners = ["{name}:scan"]\n[discovery]\n')
    try:
        err = error_of(capsys, path)
    finally:
        next(names, None)
    assert f"cannot import '{name}:scan': SystemExit: 0" in err


def test_reference_that_is_not_a_scanner_is_named(tmp_path, module, capsys):
    path = write_config(
        tmp_path, f'[resilient_scan]\nscanners = ["{module}:number"]\n[discovery]\n'
    )
    err = error_of(capsys, path)
    assert f"resilient_scan.scanners[0]: '{module}:number' is not a scanner" in err


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("", "resilient_scan: missing"),
        ("[resilient_scan]\n", "resilient_scan.scanners: missing"),
        ("[resilient_scan]\nscanners = []\n", "resilient_scan.scanners: must be a non-empty list"),
        ('[resilient_scan]\nscanners = "x:y"\n', "resilient_scan.scanners: must be a non-empty"),
        (
            '[resilient_scan]\nscanners = ["nocolon"]\n',
            "resilient_scan.scanners[0]: must be 'module:attribute', got 'nocolon'",
        ),
        (
            '[resilient_scan]\nscanner = ["x:y"]\n',
            "resilient_scan.scanner: unknown key (did you mean 'scanners'?)",
        ),
        ('[resilient_scan]\nscanners = ["x:y"]\nstate = 3\n', "resilient_scan.state: must be"),
        ('[resilient_scan]\nscanners = ["x:y"]\npath = [1]\n', "resilient_scan.path: must be"),
    ],
)
def test_bad_resilient_scan_table_is_named(tmp_path, capsys, table, expected):
    path = write_config(tmp_path, table + "[discovery.scanner_execution]\n")
    err = error_of(capsys, path)
    assert f"{path}: {expected}" in err


def test_a_config_of_only_resilient_scan_runs_with_the_default_settings(tmp_path, module, capsys):
    path = write_config(
        tmp_path,
        f'[resilient_scan]\nscanners = ["{module}:movers"]\nstate = "{module}:make_state"\n',
    )
    assert main(["run", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["ok"] == 1


def test_a_misspelt_discovery_table_is_named(tmp_path, module, capsys):
    path = write_config(tmp_path, f'[resilient_scan]\nscanners = ["{module}:movers"]\n[discovry]\n')
    err = error_of(capsys, path)
    assert "discovry: unknown key (did you mean 'discovery'?)" in err


def test_duplicate_scanner_names_are_an_error(tmp_path, module, capsys):
    path = write_config(
        tmp_path,
        f'[resilient_scan]\nscanners = ["{module}:movers", "{module}:registry"]\n[discovery]\n',
    )
    err = error_of(capsys, path)
    assert "scanners.movers: two scanners in this run share it" in err


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("bad_state", "resilient_scan.state: {module}:bad_state() raised ValueError: no database"),
        ("number", "resilient_scan.state: '{module}:number' must be a mapping"),
    ],
)
def test_bad_state_is_named(tmp_path, module, capsys, state, expected):
    path = write_config(
        tmp_path,
        f'[resilient_scan]\nscanners = ["{module}:movers"]\nstate = "{module}:{state}"\n'
        "[discovery]\n",
    )
    err = error_of(capsys, path)
    assert expected.format(module=module) in err


def test_missing_config_file_is_named(tmp_path, capsys):
    path = tmp_path / "missing.toml"
    err = error_of(capsys, path)
    assert f"{path}: cannot read the config file" in err


@pytest.mark.parametrize("flag", ["--output", "--html"])
def test_an_unwritable_output_is_reported_before_anything_runs(tmp_path, capsys, flag):
    # 14.4: the path was only tried after the whole scan had run.
    names = unique_module(
        tmp_path,
        """
        ran = []

        def scan(state):
            ran.append(1)
            return []
        """,
        "cli_counted",
    )
    name = next(names)
    path = write_config(tmp_path, f'[resilient_scan]\nscanners = ["{name}:scan"]\n')
    try:
        err = error_of(capsys, path, flag, tmp_path / "no" / "such" / "dir" / "r.out")
        imported = sys.modules.get(name)
        assert imported is None or imported.ran == []  # nothing ran
    finally:
        next(names, None)
    assert "cannot write the report" in err
    assert "No such file or directory" in err


def test_a_directory_as_output_is_reported(tmp_path, module, capsys):
    err = error_of(capsys, good_config(tmp_path, module), "--output", tmp_path)
    assert f"{tmp_path}: cannot write the report: it is a directory" in err


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["run"]) == 2
    assert main(["run", "x.toml", "--fail-on", "sometimes"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_version_is_the_package_version(capsys):
    import resilient_scan as rs  # noqa: PLC0415

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"resilient-scan {rs.__version__}\n"
    assert rs.__version__ not in ("", "0+unknown")  # read from the installed metadata


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_help_says_a_config_file_is_code(capsys, argv):
    # 7.17: a config file names modules to import: running it runs their code.
    assert main(argv) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "a config file is code" in text
    assert "Run only config files you trust" in text


SEED_STYLE = """
class Seed:
    name = "seed"

    def __init__(self, config):
        self.config = config

    def scan_with_validation(self, state):
        return [{"ticker": "MSFT", "context": "validated"}]
"""


@pytest.mark.parametrize(
    "where",
    ["[discovery.scanner_execution]", "[discovery.scanners.seed]"],
    ids=["executor", "scanner table"],
)
def test_a_file_that_names_the_scan_method_runs_classes_that_have_only_that(
    tmp_path, capsys, where
):
    names = unique_module(tmp_path, SEED_STYLE, "cli_seed")
    name = next(names)
    config = write_config(
        tmp_path,
        f"""
        [resilient_scan]
        scanners = ["{name}:Seed"]

        {where}
        scan_method = ["scan_with_validation", "scan"]
        """,
    )
    try:
        assert run(config, "--json") == 0
    finally:
        next(names, None)
    report = json.loads(capsys.readouterr().out)
    assert [c["ticker"] for c in report["candidates"]] == ["MSFT"]


def test_a_short_shape_table_beside_discovery_is_an_error_not_ignored(tmp_path, module, capsys):
    config = write_config(
        tmp_path,
        f"""
        [resilient_scan]
        scanners = ["{module}:registry"]

        [scanner_execution]
        timeout_seconds = 0.5

        [discovery.scanners.movers]
        enabled = true
        """,
    )

    assert run(config) == 2
    assert (
        "scanner_execution: ignored beside the [discovery] table, which holds this file's"
        " settings: move it to [discovery.scanner_execution]"
    ) in capsys.readouterr().err
