"""Building statements whose filters are optional (pure)."""

from __future__ import annotations

from collections.abc import Mapping


def where(filters: Mapping[str, str], given: Mapping[str, object]) -> str:
    """The conditions of `filters` whose value was given, joined with AND ("true" for none).

    Conditions are put in only when given, rather than `(%(x)s IS NULL OR ...)`, so that
    every statement the planner sees can use its index."""
    parts = [sql for name, sql in filters.items() if given.get(name) is not None]
    return " AND ".join(parts) or "true"
