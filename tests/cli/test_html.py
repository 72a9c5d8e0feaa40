"""`ScanReport.to_html()` and `resilient-scan run --html`: one self-contained page, checked
in a real headless Chromium."""

from __future__ import annotations

import shutil
import struct
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import resilient_scan as rs
from resilient_scan import ScanReport, ScanResult, ScanStatus, TimelineEntry
from resilient_scan.cli import main
from tests.cli.support import write_config
from tests.helpers import require_server

HOSTILE_NAME = '<img src=x onerror="alert(1)">'
HOSTILE_CONTEXT = "</td><script>alert(2)</script>\x1b[2J"


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class Page(HTMLParser):
    """Every element of a page, with its attributes and the text directly inside it."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {key: value or "" for key, value in attrs})
        self.elements.append(element)
        if tag not in ("meta", "br", "img", "link", "input"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].text.append(data)

    def having(self, css_class: str) -> list[Element]:
        return [element for element in self.elements if css_class in element.classes]

    def tags(self, tag: str) -> list[Element]:
        return [element for element in self.elements if element.tag == tag]

    def all_text(self) -> str:
        return " ".join(piece for element in self.elements for piece in element.text)


def sample_report() -> ScanReport:
    retry = TimelineEntry(
        0.1, "retry", "news.get: attempt 1 failed (HTTP 429), retry in 1.00s", 1.0
    )
    hit = TimelineEntry(0.0, "cache_hit", "quotes.get: from the cache")
    results = [
        ScanResult(
            "market_movers", ScanStatus.OK, [{"ticker": "NVDA"}], duration=0.4, timeline=(hit,)
        ),
        ScanResult(
            "news_sentiment",
            ScanStatus.OK,
            [{"ticker": "AAPL"}],
            duration=1.5,
            started_at=0.2,
            timeline=(retry,),
        ),
        ScanResult(
            "slow_scanner",
            ScanStatus.TIMEOUT,
            error="ScanTimeout: slow_scanner timed out after 1s",
            duration=1.0,
            started_at=0.5,
            abandoned=True,
            timeout_seconds=1.0,
        ),
        ScanResult(
            HOSTILE_NAME,
            ScanStatus.ERROR,
            error=f"RuntimeError: {HOSTILE_CONTEXT}",
            error_type="RuntimeError",
            duration=0.1,
        ),
        ScanResult("crypto", ScanStatus.SKIPPED, reason="pipeline experimental disabled"),
    ]
    candidates: list[dict[str, Any]] = [
        {
            "ticker": "AAPL",
            "priority": "high",
            "source": "news_sentiment",
            "all_sources": ["news_sentiment", "market_movers"],
            "context": HOSTILE_CONTEXT,
            "sentiment": 0.82,
        },
        {"ticker": "NVDA", "priority": "medium", "source": "market_movers", "context": "up 9%"},
    ]
    return ScanReport(
        results=results,
        candidates=candidates,
        tool_logs=[],
        duration=2.0,
        mode="concurrent",
        max_workers=8,
        abandoned=1,
        started_at=1_750_000_000.0,
        run_id="run-1",
    )


def style_of(element: Element) -> dict[str, str]:
    pairs = (item.split(":", 1) for item in element.attrs.get("style", "").split(";") if item)
    return {key.strip(): value.strip() for key, value in pairs}


# -- the page, as written -----------------------------------------------------------------------


def test_one_bar_per_scanner_from_its_start_to_its_end():
    page = Page(sample_report().to_html())

    bars = page.having("bar")
    assert [(bar.attrs["data-scanner"], bar.attrs["data-status"]) for bar in bars] == [
        ("market_movers", "ok"),
        ("news_sentiment", "ok"),
        ("slow_scanner", "timeout"),
        (HOSTILE_NAME, "error"),
        ("crypto", "skipped"),
    ]
    # 2.0 s on the axis: news_sentiment ran from 0.2 s for 1.5 s.
    assert style_of(bars[1]) == {"left": "10.000%", "width": "75.000%"}
    assert style_of(bars[2]) == {"left": "25.000%", "width": "50.000%"}
    assert "notrun" in bars[4].classes


def test_the_moments_of_each_scanner_are_marked():
    page = Page(sample_report().to_html())

    kinds = [
        element.attrs["data-kind"] for element in page.elements if "data-kind" in element.attrs
    ]
    assert kinds == ["cache_hit", "wait", "retry", "scanner_timeout"]
    (wait,) = [e for e in page.elements if e.attrs.get("data-kind") == "wait"]
    # The retry at 0.1 s into a scanner that started at 0.2 s waited 1.0 s.
    assert style_of(wait) == {"left": "15.000%", "width": "50.000%"}
    (fired,) = [e for e in page.elements if e.attrs.get("data-kind") == "scanner_timeout"]
    assert style_of(fired) == {"left": "75.000%"}  # started at 0.5 s, ended at 1.5 s
    assert fired.attrs["title"] == "timed out after 1 s"


def test_summary_counts_and_candidates():
    page = Page(sample_report().to_html())

    counts = [item.attrs["data-status"] for item in page.having("count")]
    assert counts == ["ok", "error", "timeout", "circuit_open", "skipped", "cancelled"]
    assert [number.text for number in page.having("n")] == [
        ["2"],
        ["1"],
        ["1"],
        ["0"],
        ["1"],
        ["0"],
    ]
    (facts,) = [e for e in page.elements if e.attrs.get("id") == "facts"]
    assert facts.text == [
        "2 candidates · 1 scanner still running when the run ended · 1.5x faster than back to back"
    ]
    rows = [row.attrs["data-ticker"] for row in page.tags("tr") if "data-ticker" in row.attrs]
    assert rows == ["AAPL", "NVDA"]
    assert "news_sentiment, market_movers" in page.all_text()  # all_sources


def test_everything_from_scanners_is_escaped():
    text = sample_report().to_html()
    page = Page(text)

    assert page.tags("img") == []
    assert page.tags("script") == []
    assert "\x1b" not in text
    assert HOSTILE_NAME in page.all_text()  # shown as text
    assert r"</td><script>alert(2)</script>\x1b[2J" in page.all_text()


def test_the_page_loads_nothing_from_anywhere():
    text = sample_report().to_html()
    page = Page(text)

    assert page.tags("link") == []
    assert page.tags("script") == []
    assert [e for e in page.elements if "src" in e.attrs or "href" in e.attrs] == []
    assert "url(" not in text
    assert "@import" not in text
    assert "http://" not in text
    assert "https://" not in text


# -- in a real browser ---------------------------------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    require_server("Chromium", found is not None, "install it (Debian: apt-get install chromium)")
    assert found is not None
    return found


def browse(page: Path, tmp_path: Path) -> tuple[str, Path]:
    """The page's DOM after loading, and a screenshot of it, from headless Chromium."""
    browser = chromium()
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    shot = tmp_path / "report.png"
    url = page.resolve().as_uri()
    dom = subprocess.Popen(  # noqa: S603 - the system's browser on our own file
        [*common, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    picture = subprocess.Popen(  # noqa: S603 - as above
        [
            *common,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            f"--screenshot={shot}",
            "--window-size=1200,900",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with dom, picture:
        text, _ = dom.communicate(timeout=60)
        picture.wait(timeout=60)
    return text, shot


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_a_real_run_in_a_real_browser(tmp_path: Path, release: threading.Event):
    failures: list[int] = []

    @rs.scanner(name="movers")
    def movers(state: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{"ticker": "NVDA", "context": "up 9%", "priority": "high"}]

    @rs.scanner(name="flaky")
    @rs.retry(attempts=3, backoff=0.01, jitter=False, on=ConnectionError)
    def flaky(state: Mapping[str, Any]) -> list[dict[str, Any]]:
        if len(failures) < 2:
            failures.append(1)
            raise ConnectionError("reset")
        return [{"ticker": "AMD"}]

    def hung(state: Mapping[str, Any]) -> list[dict[str, Any]]:
        release.wait()
        return []

    def buggy(state: Mapping[str, Any]) -> list[dict[str, Any]]:
        empty: dict[str, list[dict[str, Any]]] = {}
        return empty["MSFT"]

    @rs.scanner(name=HOSTILE_NAME)
    def hostile(state: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{"ticker": "EVIL", "context": HOSTILE_CONTEXT}]

    report = rs.ScanExecutor(timeout_seconds=0.3).run([movers, flaky, hung, buggy, hostile])
    page = tmp_path / "report.html"
    page.write_text(report.to_html(title="a real run"), encoding="utf-8")

    dom, shot = browse(page, tmp_path)
    loaded = Page(dom)

    bars = loaded.having("bar")
    assert [(b.attrs["data-scanner"], b.attrs["data-status"]) for b in bars] == [
        ("movers", "ok"),
        ("flaky", "ok"),
        ("hung", "timeout"),
        ("buggy", "error"),
        (HOSTILE_NAME, "ok"),
    ]
    assert loaded.tags("img") == []  # the hostile name stayed text after parsing
    assert loaded.tags("script") == []
    assert [
        e.attrs["data-kind"] for e in loaded.elements if e.attrs.get("data-kind") == "retry"
    ] == [
        "retry",
        "retry",
    ]
    assert [e for e in loaded.elements if e.attrs.get("data-kind") == "scanner_timeout"]
    assert "KeyError: 'MSFT'" in loaded.all_text()
    assert png_size(shot) == (1200, 900)
    assert shot.stat().st_size > 20_000  # a picture, not a blank page


def test_run_writes_the_page_with_html(
    tmp_path: Path, module: str, capsys: pytest.CaptureFixture[str]
):
    config = write_config(
        tmp_path,
        f"""
        [resilient_scan]
        scanners = ["{module}:registry", "{module}:buggy"]
        state = "{module}:make_state"
        """,
    )
    page = tmp_path / "out.html"

    assert main(["run", str(config), "--html", str(page)]) == 1

    assert f"Report page written to {page}" in capsys.readouterr().out
    written = Page(page.read_text(encoding="utf-8"))
    assert [bar.attrs["data-status"] for bar in written.having("bar")] == ["ok", "ok", "error"]
    assert written.tags("title")[0].text == ["resilient-scan run pipeline.toml"]
