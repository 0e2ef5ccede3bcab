"""Statements whose filters are optional: built so that each one the planner sees can use
its index, and run a page at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from psycopg import AsyncConnection
from psycopg.rows import class_row

Row = TypeVar("Row")


def where(filters: Mapping[str, str], given: Mapping[str, object]) -> str:
    """The conditions of `filters` whose value was given, joined with AND ("true" for none).

    Conditions are put in only when given, rather than `(%(x)s IS NULL OR ...)`, so that
    every statement the planner sees can use its index."""
    parts = [sql for name, sql in filters.items() if given.get(name) is not None]
    return " AND ".join(parts) or "true"


def filtered(template: str, filters: Mapping[str, str], given: Mapping[str, object]) -> str:
    """`template` with `{conditions}` replaced by the conditions of the given filters."""
    return template.replace("{conditions}", where(filters, given))


async def filtered_page(
    conn: AsyncConnection,
    row: type[Row],
    template: str,
    filters: Mapping[str, str],
    given: Mapping[str, object],
    limit: int,
) -> list[Row]:
    """One page of `template` (which takes `%(limit)s`), its rows as `row`; `given` holds
    the filters' parameters, None for a filter not asked for."""
    async with conn.cursor(row_factory=class_row(row)) as cur:
        await cur.execute(
            filtered(template, filters, given),
            {**dict.fromkeys(filters), **given, "limit": limit},
        )
        return await cur.fetchall()
