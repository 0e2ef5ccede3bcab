"""The console's charts as server-rendered SVG: no JavaScript, no charting library, nothing
from another origin. Each chart is a figure with a one-sentence summary and a data table
(the text alternative, in the same numbers as the operator API); the SVG is drawn on a
fixed grid and stretched to the page's width (`preserveAspectRatio="none"`, strokes that
do not scale), with its labels in HTML around it so they stay legible at 390 px.

Colours come from console.css through classes: the console's CSP allows no inline style.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from markupsafe import Markup, escape

from docora.admin.models import DeliveryTrend, RepositoryTrend

WIDTH = 1000
HEIGHT = 200


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # the class its marks take (console.css gives the colour)
    values: Sequence[float | None]


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    summary: str  # the text alternative's first sentence
    svg: Markup
    y_max: str  # the value of the top of the plot, with its unit
    x_first: str
    x_last: str
    legend: list[tuple[str, str]]  # (name, css)
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _svg(chart_id: str, title: str, marks: list[str]) -> Markup:
    body = "".join(marks)
    return Markup(
        f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" '
        f'role="img" aria-labelledby="{chart_id}-title" focusable="false">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<line class="grid" x1="0" y1="{HEIGHT / 2}" x2="{WIDTH}" y2="{HEIGHT / 2}"/>'
        f'<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/>'
        f"{body}</svg>"
    )


def _y(value: float, top: float) -> float:
    return round(HEIGHT - HEIGHT * min(value, top) / top, 2)


def stacked_bars(steps: int, series: list[Series], top: float) -> list[str]:
    """One bar per step, the series stacked in order from the baseline."""
    width = WIDTH / steps
    marks = []
    for i in range(steps):
        base = 0.0
        for s in series:
            value = s.values[i] or 0
            if value <= 0:
                continue
            y_top, y_base = _y(base + value, top), _y(base, top)
            x = round(i * width + width * 0.1, 2)
            marks.append(
                f'<rect class="{s.css}" x="{x}" y="{y_top}" width="{round(width * 0.8, 2)}" '
                f'height="{round(y_base - y_top, 2)}"/>'
            )
            base += value
    return marks


def polylines(steps: int, series: list[Series], top: float) -> list[str]:
    """A line per series through the middle of each step; a missing value breaks it."""
    width = WIDTH / steps
    marks = []
    for s in series:
        run: list[tuple[float, float]] = []
        for i, value in enumerate([*s.values, None]):
            if value is not None:
                run.append(((i + 0.5) * width, _y(value, top)))
                continue
            if len(run) == 1:  # a lone point still shows, as a short flat stroke
                run.append((run[0][0] + width * 0.4, run[0][1]))
            if run:
                points = " ".join(f"{x:.2f},{y}" for x, y in run)
                marks.append(f'<polyline class="{s.css}" points="{points}"/>')
            run = []
    return marks


def _chart(
    chart_id: str,
    title: str,
    window: str,
    summary: str,
    marks: list[str],
    y_max: str,
    labels: list[str],
    legend: list[tuple[str, str]],
    table: tuple[list[str], list[list[str]]],
) -> Chart:
    return Chart(
        id=chart_id,
        title=title,
        summary=summary,
        svg=_svg(chart_id, f"{title}, {window}", marks),
        y_max=y_max,
        x_first=labels[0],
        x_last=labels[-1] + " UTC",
        legend=legend,
        columns=table[0],
        rows=table[1],
    )


def step_label(at: datetime, step_seconds: int) -> str:
    return at.strftime("%m-%d %H:%M" if step_seconds >= 3600 else "%H:%M")


WINDOW_WORDS = {"1h": "the last hour", "24h": "the last 24 hours", "7d": "the last 7 days"}


def step_words(step_seconds: int) -> str:
    return {60: "minute", 600: "10 minutes", 3600: "hour"}.get(step_seconds, f"{step_seconds} s")


def delivery_charts(trend: DeliveryTrend, prefix: str) -> tuple[Chart, Chart]:
    """Attempts per step by outcome, and p50/p95 latency per step."""
    points = trend.points
    labels = [step_label(p.at, trend.step_seconds) for p in points]
    per = step_words(trend.step_seconds)
    window = WINDOW_WORDS[trend.window]
    outcome_series = [
        Series("delivered", "ok", [p.delivered for p in points]),
        Series("failed", "bad", [p.failed for p in points]),
    ]
    top = nice_ceiling(max((p.delivered + p.failed for p in points), default=0))
    total = trend.delivered + trend.failed
    counts_summary = (
        f"{number(trend.delivered)} delivered and {number(trend.failed)} failed in {window}."
        if total
        else f"No deliveries in {window}."
    )
    counts = _chart(
        f"{prefix}-deliveries",
        f"Delivery attempts per {per}",
        window,
        counts_summary,
        stacked_bars(len(points), outcome_series, top),
        number(top),
        labels,
        [("delivered", "ok"), ("failed", "bad")],
        (
            ["Step (UTC)", "Delivered", "Failed"],
            [[labels[i], number(p.delivered), number(p.failed)] for i, p in enumerate(points)],
        ),
    )
    latency_series = [
        Series("p50", "p50", [p.p50_ms for p in points]),
        Series("p95", "p95", [p.p95_ms for p in points]),
    ]
    slowest = max((p.p95_ms or 0 for p in points), default=0)
    latency_top = nice_ceiling(slowest)
    latency_summary = (
        f"Over {window}: p50 {number(trend.p50_ms)} ms, p95 {number(trend.p95_ms)} ms."
        if total
        else f"No deliveries in {window}, so no latency."
    )
    latency = _chart(
        f"{prefix}-latency",
        f"Delivery latency per {per} (ms)",
        window,
        latency_summary,
        polylines(len(points), latency_series, latency_top),
        f"{number(latency_top)} ms",
        labels,
        [("p50", "p50"), ("p95", "p95")],
        (
            ["Step (UTC)", "p50 ms", "p95 ms"],
            [[labels[i], number(p.p50_ms), number(p.p95_ms)] for i, p in enumerate(points)],
        ),
    )
    return counts, latency


def repository_charts(trend: RepositoryTrend, prefix: str) -> tuple[Chart, Chart]:
    """Each sync's duration where it ended in the window, and the rescan lag per step."""
    window = WINDOW_WORDS[trend.window]
    start = trend.lag[0].at.timestamp()
    span = trend.step_seconds * len(trend.lag)
    slowest = max((s.duration_ms for s in trend.syncs), default=0)
    top = nice_ceiling(slowest)
    marks = []
    for sync in trend.syncs:
        x = round(WIDTH * (sync.finished_at.timestamp() - start) / span, 2)
        y = _y(sync.duration_ms, top)
        css = "bad" if sync.outcome == "failed" else "ok"
        marks.append(f'<line class="{css} stem" x1="{x}" y1="{HEIGHT}" x2="{x}" y2="{y}"/>')
    failed = sum(1 for s in trend.syncs if s.outcome == "failed")
    if trend.syncs:
        durations = sorted(s.duration_ms for s in trend.syncs)
        sync_summary = (
            f"{len(durations)} syncs in {window} ({failed} failed): median "
            f"{number(durations[len(durations) // 2])} ms, longest {number(durations[-1])} ms."
        )
    else:
        sync_summary = f"No syncs in {window}."
    labels = [step_label(p.at, trend.step_seconds) for p in trend.lag]
    syncs = _chart(
        f"{prefix}-syncs",
        "Sync durations (ms)",
        window,
        sync_summary,
        marks,
        f"{number(top)} ms",
        labels,
        [("synced or unchanged", "ok"), ("failed", "bad")],
        (
            ["Finished (UTC)", "Duration ms", "Outcome", "Commit"],
            [
                [
                    s.finished_at.strftime("%m-%d %H:%M:%S"),
                    number(s.duration_ms),
                    s.outcome,
                    (s.commit_sha or "")[:12],
                ]
                for s in trend.syncs
            ],
        ),
    )
    lags = [p.max_lag_seconds for p in trend.lag]
    worst = max(lags, default=0)
    lag_top = nice_ceiling(worst)
    lag = _chart(
        f"{prefix}-lag",
        f"Rescan lag per {step_words(trend.step_seconds)} (s), all repositories",
        window,
        (
            f"The most overdue check in {window} had waited {number(worst)} s."
            if any(p.checks for p in trend.lag)
            else f"No rescan checks recorded in {window}."
        ),
        stacked_bars(len(lags), [Series("lag", "warn", lags)], lag_top),
        f"{number(lag_top)} s",
        labels,
        [("most overdue check", "warn")],
        (
            ["Step (UTC)", "Checks", "Max lag s"],
            [
                [labels[i], number(p.checks), number(p.max_lag_seconds)]
                for i, p in enumerate(trend.lag)
            ],
        ),
    )
    return syncs, lag
