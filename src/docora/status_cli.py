"""`docora status`: the console's overview and failing watches in a terminal, for an
operator on a host over ssh. It reads Postgres as the console does (docora.admin), so the
two never disagree; `--json` prints the operator API's bodies for scripts."""

from __future__ import annotations

import shutil
from datetime import UTC

import msgspec
import psycopg

from docora.admin import queries
from docora.admin.models import AdminWatchItem, OverviewBody
from docora.config import Settings


class StatusReport(msgspec.Struct):
    overview: OverviewBody
    failing: list[AdminWatchItem]
    failing_total: int


async def read_status(settings: Settings, *, limit: int) -> StatusReport:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as db:
        overview = await queries.overview(db, settings)
        failing = await queries.failing_watches(db, limit=limit)
    total = overview.watches["failed"] + overview.watches["retrying"]
    return StatusReport(
        overview=overview,
        failing=failing.items,
        failing_total=total,
    )


def as_json(report: StatusReport) -> str:
    return msgspec.json.encode(report).decode()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def as_text(report: StatusReport, width: int | None = None) -> str:
    """What an operator reads first: the counts, then what is failing, one line each."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    o = report.overview
    w = o.watches
    at = o.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    lines = [
        f"Docora status at {at} UTC",
        "",
        f"Watches     {w['failed']} failed · {w['retrying']} retrying · {w['scanning']} "
        f"scanning · {w['pending_snapshot']} pending · {w['synced']} synced",
        f"System      {o.apps} apps · {o.repositories} repositories · "
        f"{o.circuit_breakers_open} circuit breakers open",
        f"Queue       {o.queue['todo']} waiting · {o.queue['doing']} running · "
        f"{o.queue['failed']} failed",
        f"Workers     {o.workers_alive} alive · rescan lag {o.rescan_lag_seconds:g} s",
        f"Deliveries  {o.deliveries_last_hour['succeeded']} delivered · "
        f"{o.deliveries_last_hour['failed']} failed in the last hour",
        "",
    ]
    if not report.failing:
        lines.append("Nothing is failing.")
        return "\n".join(lines)
    lines.append(f"Failing watches ({report.failing_total})")
    rows = [
        (
            item.status,
            item.app_name,
            f"{item.github_url} ({item.branch})",
            str(item.retry_count),
            (item.last_error or "").replace("\n", " "),
        )
        for item in report.failing
    ]
    header = ("STATUS", "APP", "REPOSITORY", "TRIES", "LAST ERROR")
    sizes = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(4)]
    sizes[1], sizes[2] = min(sizes[1], 24), min(sizes[2], 60)
    for row in (header, *rows):
        fixed = "  ".join(_clip(row[i], sizes[i]).ljust(sizes[i]) for i in range(4))
        lines.append(fixed + "  " + _clip(row[4], max(20, width - len(fixed) - 2)))
    if report.failing_total > len(report.failing):
        more = report.failing_total - len(report.failing)
        lines.append(f"… and {more} more (--limit, or the console's Failures page)")
    return "\n".join(lines)
