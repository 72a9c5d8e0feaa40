"""A picture of one run: `ScanReport.to_html()` as one self-contained page.

The page loads nothing from the network (inline CSS, HTML bars, no fonts or scripts), so it
can be mailed, archived as a CI artifact or opened offline. It shows:

- the summary: scanners per status, candidates, speed-up;
- a timeline: one bar per scanner from its start to its end, coloured by status, with the
  moments its policy layers noted (`ScanResult.timeline`): retries and their waits, cache
  hits, circuit-open rejections, attempt timeouts, and the moment its own timeout fired;
- one row per scanner: attempts, cache hits, duration, and the error or reason;
- the merged candidates.

Everything shown comes from scanners (names, errors, candidate fields), so everything is
escaped: control characters visibly, then as HTML.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

from ._jsonsafe import dumps
from ._text import STATUS_WORDS, cap, escape_control, safe_str, utf8_safe

if TYPE_CHECKING:
    from ._report import ScanReport, ScanResult
    from ._stats import TimelineEntry

__all__ = ["render_report"]

#: The most candidates listed on the page (the JSON report has them all).
CANDIDATE_LIMIT: Final = 500
#: The longest text shown in one cell (errors, contexts, extra fields).
CELL_LIMIT: Final = 500
#: The narrowest bar, in percent of the timeline, so an instant scanner still shows.
_MIN_BAR: Final = 0.4

_MARKS: Final = {
    "ok": "✓",
    "error": "⚠",
    "timeout": "◔",  # a stopwatch is missing from common fonts; this one is everywhere
    "circuit_open": "⊘",
    "skipped": "○",
    "cancelled": "✗",
}
#: Timeline entry kinds, with the legend's words.
_KINDS: Final = {
    "retry": "attempt failed, retry after the wait",
    "gave_up": "retrying gave up",
    "timeout": "an attempt timed out",
    "scanner_timeout": "the scanner's timeout fired",
    "circuit_open": "circuit open: call not made",
    "breaker_open": "a breaker opened",
    "cache_hit": "answered from the cache",
    "rate_limit": "rate limit",
}

_CSS: Final = """
:root { --ok:#2e7d32; --error:#c62828; --timeout:#e65100; --circuit_open:#6a1b9a;
  --skipped:#9e9e9e; --cancelled:#757575; --wait:#ffb74d; --ink:#1f2328; --muted:#59636e;
  --line:#d1d9e0; --bg:#ffffff; --panel:#f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system,
  "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
  background: var(--bg); }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 10px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
.meta, .note { color: var(--muted); margin: 0; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; }
ul.counts { list-style: none; display: flex; flex-wrap: wrap; gap: 8px; padding: 0;
  margin: 0 0 8px; }
ul.counts li { border: 1px solid var(--line); border-left: 6px solid var(--c, var(--line));
  border-radius: 6px; padding: 6px 12px; background: var(--panel); min-width: 96px; }
ul.counts li .n { font-size: 20px; font-weight: 600; display: block; }
ul.counts li.zero { opacity: .45; }
.s-ok { --c: var(--ok); } .s-error { --c: var(--error); } .s-timeout { --c: var(--timeout); }
.s-circuit_open { --c: var(--circuit_open); } .s-skipped { --c: var(--skipped); }
.s-cancelled { --c: var(--cancelled); }
.timeline { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px 12px;
  background: var(--panel); }
.axis, .row { display: grid; grid-template-columns: minmax(140px, 22%) 1fr; gap: 12px;
  align-items: center; }
.axis .scale { position: relative; height: 18px; border-bottom: 1px solid var(--line);
  margin-right: 64px; }
.axis .tick { position: absolute; bottom: 0; transform: translateX(-50%); font-size: 11px;
  color: var(--muted); white-space: nowrap; }
.axis .tick::after { content: ""; position: absolute; left: 50%; bottom: -4px; height: 4px;
  border-left: 1px solid var(--line); }
ol.rows { list-style: none; margin: 0; padding: 0; }
.row { padding: 5px 0; border-bottom: 1px dashed var(--line); }
.row:last-child { border-bottom: 0; }
.label { overflow: hidden; }
.label .name { font-weight: 600; overflow-wrap: anywhere; }
.label .sub { display: block; color: var(--muted); font-size: 12px; }
.mark { display: inline-block; width: 1.2em; text-align: center; color: var(--c); }
.track { position: relative; height: 26px; margin-right: 64px;
  background: repeating-linear-gradient(90deg,
  transparent 0, transparent calc(10% - 1px), var(--line) calc(10% - 1px), var(--line) 10%);
  border-radius: 3px; }
.bar { position: absolute; top: 4px; height: 18px; border-radius: 3px; background: var(--c);
  opacity: .9; }
.bar.degraded { background: repeating-linear-gradient(45deg, var(--ok) 0 6px,
  var(--wait) 6px 12px); }
.bar .dur { position: absolute; left: 100%; margin-left: 10px; top: 0; font-size: 11px;
  line-height: 18px; color: var(--muted); white-space: nowrap; }
.notrun { position: absolute; left: 0; top: 4px; font-size: 12px; color: var(--muted);
  line-height: 18px; white-space: nowrap; overflow: hidden; max-width: 100%; }
.wait { position: absolute; top: 8px; height: 10px; background: var(--wait);
  border: 1px solid #e69500; border-radius: 2px; }
.ev { position: absolute; top: 1px; width: 0; height: 24px; }
.ev::before { position: absolute; left: -6px; top: 4px; width: 12px; height: 16px;
  line-height: 16px; text-align: center; font-size: 11px; font-weight: 700;
  border-radius: 2px; background: #fff; border: 1px solid var(--ec); color: var(--ec); }
.ev-retry { --ec: #e69500; } .ev-retry::before { content: "↻"; }
.ev-gave_up { --ec: var(--error); } .ev-gave_up::before { content: "✗"; }
.ev-timeout, .ev-scanner_timeout { --ec: var(--timeout); }
.ev-timeout::before, .ev-scanner_timeout::before { content: "◔"; }
.ev-scanner_timeout::before { background: var(--timeout); color: #fff; }
.ev-circuit_open, .ev-breaker_open { --ec: var(--circuit_open); }
.ev-circuit_open::before, .ev-breaker_open::before { content: "⊘"; }
.ev-cache_hit { --ec: #1565c0; } .ev-cache_hit::before { content: "C"; }
.ev-rate_limit { --ec: #455a64; } .ev-rate_limit::before { content: "R"; }
.ev-other { --ec: var(--muted); } .ev-other::before { content: "•"; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 10px 0 0; padding: 0;
  list-style: none; font-size: 12px; color: var(--muted); }
.legend li { display: flex; align-items: center; gap: 6px; }
.legend .sw { display: inline-block; width: 14px; height: 10px; border-radius: 2px;
  background: var(--c); }
.legend .ev { position: relative; top: 0; height: 16px; width: 12px; }
.legend .ev::before { left: 0; top: 0; }
.legend .wait { position: static; display: inline-block; width: 18px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { font-weight: 600; background: var(--panel); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td .status { font-weight: 600; color: var(--c); white-space: nowrap; }
td.text { overflow-wrap: anywhere; max-width: 520px; }
td.name { min-width: 10em; overflow-wrap: anywhere; }
.prio { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px;
  background: var(--panel); border: 1px solid var(--line); }
.prio-critical { background: #ffebee; border-color: #ef9a9a; }
.prio-high { background: #fff3e0; border-color: #ffcc80; }
.prio-medium { background: #e3f2fd; border-color: #90caf9; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
"""


def _text(value: object, limit: int = CELL_LIMIT) -> str:
    """Untrusted *value* as HTML text: control characters escaped visibly, capped, escaped."""
    return html.escape(cap(escape_control(safe_str(value)), limit), quote=True)


def _pct(value: float) -> str:
    return f"{max(0.0, min(100.0, value)):.3f}%"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.001 else f"{value * 1000:.2f} ms"  # noqa: PLR2004
    return f"{value:.2f} s"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def render_report(report: ScanReport, *, title: str = "resilient_scan report") -> str:
    """Return *report* as one self-contained HTML page (see the module's docstring)."""
    span = _span(report)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title, 200)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_text(title, 200)}</h1>",
        f'<p class="meta">{_meta(report)}</p>',
        "</header>",
        *_summary(report),
        *_timeline(report, span),
        *_results(report),
        *_candidates(report.candidates),
        "<footer>Written by resilient_scan. Times are seconds since the run started.</footer>",
        "</body>",
        "</html>",
    ]
    return utf8_safe("\n".join(parts) + "\n")  # lone surrogates: no page can hold them


def _meta(report: ScanReport) -> str:
    bits = []
    if report.run_id:
        bits.append(f"run <code>{_text(report.run_id, 100)}</code>")
    if report.started_at:
        try:
            when = datetime.fromtimestamp(report.started_at, tz=timezone.utc)
            bits.append(f"started {when:%Y-%m-%d %H:%M:%S} UTC")
        except (OverflowError, OSError, ValueError):
            pass
    workers = "" if report.mode == "sequential" else f", at most {report.max_workers} at once"
    bits.append(f"{_text(report.mode, 40)}{workers}")
    bits.append(f"took {_seconds(report.duration)}")
    return " · ".join(bits)


def _span(report: ScanReport) -> float:
    """The seconds the timeline covers: the run, or the latest end if that is later."""
    ends = [result.started_at + result.duration for result in report.results]
    return max([report.duration, *ends, 1e-3])


def _summary(report: ScanReport) -> list[str]:
    counts = report.counts
    items = []
    for status, words in STATUS_WORDS.items():
        count = counts.get(status, 0)
        zero = " zero" if not count else ""
        items.append(
            f'<li class="count s-{status}{zero}" data-status="{status}">'
            f'<span class="n">{count}</span>'
            f'<span class="mark">{_MARKS[status]}</span> {words}</li>'
        )
    facts = [_plural(len(report.candidates), "candidate")]
    if report.dropped:
        facts.append(f"{_plural(report.dropped, 'invalid finding')} dropped")
    degraded = report.degraded
    if degraded:
        facts.append(f"{len(degraded)} degraded")
    if report.abandoned:
        facts.append(f"{_plural(report.abandoned, 'scanner')} still running when the run ended")
    if report.speedup >= 1.1:  # noqa: PLR2004 - below that, no speed-up worth claiming
        facts.append(f"{report.speedup:.1f}x faster than back to back")
    return [
        '<section id="summary">',
        "<h2>Summary</h2>",
        f'<ul class="counts">{"".join(items)}</ul>',
        f'<p class="note" id="facts">{" · ".join(facts)}</p>',
        "</section>",
    ]


def _ticks(span: float) -> list[float]:
    """Round tick positions over *span* seconds: about five to ten of them."""
    step = 10 ** _magnitude(span / 5)
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= 8:  # noqa: PLR2004
            step *= factor
            break
    count = int(span / step)
    return [step * n for n in range(count + 1)]


def _magnitude(value: float) -> int:
    exponent = 0
    while value >= 10:  # noqa: PLR2004
        value /= 10
        exponent += 1
    while value < 1 and exponent > -6:  # noqa: PLR2004
        value *= 10
        exponent -= 1
    return exponent


def _tick_label(value: float, span: float) -> str:
    if span < 1:
        return f"{value * 1000:g} ms"
    return f"{value:g} s"


def _timeline(report: ScanReport, span: float) -> list[str]:
    ticks = "".join(
        f'<span class="tick" style="left:{_pct(tick / span * 100)}">'
        f"{_tick_label(round(tick, 6), span)}</span>"
        for tick in _ticks(span)
    )
    scale = f'<div class="scale">{ticks}</div>'
    rows = [_row(result, span) for result in report.results]
    legend = [
        *(
            f'<li><span class="sw s-{status}"></span>{words}</li>'
            for status, words in STATUS_WORDS.items()
        ),
        '<li><span class="wait"></span>waiting to retry</li>',
        *(f'<li><span class="ev ev-{kind}"></span>{words}</li>' for kind, words in _KINDS.items()),
    ]
    return [
        '<section id="timeline">',
        "<h2>Timeline</h2>",
        '<div class="timeline">',
        f'<div class="axis"><span class="note">scanner</span>{scale}</div>',
        f'<ol class="rows">{"".join(rows)}</ol>',
        "</div>",
        f'<ul class="legend">{"".join(legend)}</ul>',
        "</section>",
    ]


def _row(result: ScanResult, span: float) -> str:
    status = result.status.value
    name = _text(result.name, 200)
    sub = [_plural(result.attempts, "attempt")] if result.attempts else []
    if result.cache_hits:
        sub.append(_plural(result.cache_hits, "cache hit"))
    if result.degraded:
        sub.append("degraded")
    label = (
        f'<div class="label s-{status}"><span class="mark">{_MARKS.get(status, "?")}</span>'
        f'<span class="name">{name}</span>'
        f'<span class="sub">{_text(STATUS_WORDS.get(status, status))}'
        f"{' · ' if sub else ''}{' · '.join(sub)}</span></div>"
    )
    inner: list[str] = []
    if status in ("skipped", "cancelled"):  # never ran: no time on the timeline
        why = f"{status}: {result.reason}" if result.reason else status
        inner.append(
            f'<div class="bar notrun s-{status}" data-scanner="{name}" data-status="{status}"'
            f' style="left:0;width:0"></div><span class="notrun">{_text(why)}</span>'
        )
    else:
        left = result.started_at / span * 100
        width = max(_MIN_BAR, result.duration / span * 100)
        degraded = " degraded" if result.degraded else ""
        tip = f"{result.name}: {STATUS_WORDS.get(status, status)}, {_seconds(result.duration)}"
        if result.error:
            tip += f" — {result.error}"
        inner.append(
            f'<div class="bar s-{status}{degraded}" data-scanner="{name}"'
            f' data-status="{status}" style="left:{_pct(left)};width:{_pct(width)}"'
            f' title="{_text(tip)}"><span class="dur">{_seconds(result.duration)}</span></div>'
        )
        inner.extend(_moments(result, span))
    return (
        f'<li class="row" data-scanner="{name}" data-status="{status}">'
        f'{label}<div class="track">{"".join(inner)}</div></li>'
    )


def _moments(result: ScanResult, span: float) -> list[str]:
    found: list[str] = []
    entries: Iterable[TimelineEntry] = result.timeline
    for entry in entries:
        at = result.started_at + entry.at
        kind = entry.kind if entry.kind in _KINDS else "other"
        if entry.kind == "retry" and entry.duration > 0:
            found.append(
                f'<span class="wait" data-kind="wait" style="left:{_pct(at / span * 100)};'
                f'width:{_pct(entry.duration / span * 100)}"'
                f' title="{_text(f"waiting {entry.duration:.2f} s to retry")}"></span>'
            )
        found.append(
            f'<span class="ev ev-{kind}" data-kind="{_text(entry.kind, 40)}"'
            f' style="left:{_pct(at / span * 100)}"'
            f' title="{_text(f"{_seconds(entry.at)} in: {entry.detail}")}"></span>'
        )
    if result.status.value == "timeout":
        end = result.started_at + result.duration
        limit = result.timeout_seconds
        words = f"timed out after {limit:g} s" if limit else "timed out"
        found.append(
            f'<span class="ev ev-scanner_timeout" data-kind="scanner_timeout"'
            f' style="left:{_pct(end / span * 100)}" title="{_text(words)}"></span>'
        )
    return found


_RESULTS_HEAD: Final = (
    "<table><thead><tr><th>scanner</th><th>status</th><th class=num>candidates</th>"
    "<th class=num>attempts</th><th class=num>cache hits</th><th class=num>duration</th>"
    "<th>error or note</th></tr></thead>"
)


def _results(report: ScanReport) -> list[str]:
    rows = []
    for result in report.results:
        status = result.status.value
        note = result.error or result.reason or ""
        if result.degraded:
            note = f"degraded: {result.degraded_reason}"
        elif status == "ok" and result.dropped:
            note = f"{_plural(result.dropped, 'invalid finding')} dropped"
        rows.append(
            f'<tr data-scanner="{_text(result.name, 200)}" data-status="{status}">'
            f'<td class="name">{_text(result.name, 200)}</td>'
            f'<td class="s-{status}"><span class="status">{_MARKS.get(status, "?")}'
            f" {_text(STATUS_WORDS.get(status, status))}</span></td>"
            f'<td class="num">{len(result.candidates)}</td>'
            f'<td class="num">{result.attempts}</td>'
            f'<td class="num">{result.cache_hits}</td>'
            f'<td class="num">{_seconds(result.duration)}</td>'
            f'<td class="text">{_text(note)}</td></tr>'
        )
    return [
        '<section id="results">',
        "<h2>Scanners</h2>",
        _RESULTS_HEAD,
        f"<tbody>{''.join(rows)}</tbody></table>",
        "</section>",
    ]


_SHOWN_FIELDS: Final = frozenset(
    {
        "ticker",
        "priority",
        "source",
        "sources",
        "all_sources",
        "context",
        "contexts",
        "all_contexts",
    }
)


def _sources(candidate: Mapping[str, Any]) -> str:
    for key in ("all_sources", "sources"):
        value = candidate.get(key)
        if isinstance(value, Sequence) and not isinstance(value, str):
            return ", ".join(safe_str(item) for item in value)
    return safe_str(candidate.get("source", ""))


def _candidates(candidates: Sequence[object]) -> list[str]:
    rows = []
    for candidate in candidates[:CANDIDATE_LIMIT]:
        if not isinstance(candidate, Mapping):
            continue
        priority = safe_str(candidate.get("priority", ""))
        extra = {key: value for key, value in candidate.items() if key not in _SHOWN_FIELDS}
        rows.append(
            f'<tr data-ticker="{_text(candidate.get("ticker"), 40)}">'
            f'<td class="mono">{_text(candidate.get("ticker"), 40)}</td>'
            f'<td><span class="prio prio-{_text(priority, 20)}">{_text(priority, 20)}</span></td>'
            f'<td class="text">{_text(_sources(candidate))}</td>'
            f'<td class="text">{_text(candidate.get("context", ""))}</td>'
            f'<td class="text mono">{_text(dumps(extra, indent=None)) if extra else ""}</td></tr>'
        )
    more = len(candidates) - CANDIDATE_LIMIT
    note = (
        f'<p class="note">… and {more} more (the JSON report has them all).</p>' if more > 0 else ""
    )
    body = (
        "<table><thead><tr><th>ticker</th><th>priority</th><th>found by</th><th>why</th>"
        f"<th>more</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"
        if rows
        else '<p class="note">No candidates.</p>'
    )
    return [
        '<section id="candidates">',
        f"<h2>Candidates ({len(candidates)})</h2>",
        body,
        "</section>",
    ]
