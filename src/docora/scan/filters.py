"""Per-watch path filters (SPEC 11): gitignore-style patterns read as includes, evaluated by
Postgres in the per-watch diff so that the shared fetch and hashing stay one pass.

The patterns are compiled by pathspec exactly as `.docoraignore` is (GitIgnoreSpec), and
each compiled regex is handed to Postgres with the one construct its regex dialect lacks,
the named group marking a directory match, turned into a plain group. The SQL function
`docora_path_included` (migrations/0008) then replays GitIgnoreSpec's decision as pathspec
makes it: the last pattern that matches the file itself decides; failing that, the last
one that matches a directory above it; failing that, the file is not included.
"""

from __future__ import annotations

import pathspec

from docora.errors import InvalidInput
from docora.store.watches import FilterColumns

MAX_PATTERNS = 50
MAX_PATTERN_LENGTH = 1024
_DIR_GROUP = "(?P<ps_d>"


def compile_filter(patterns: list[str] | None) -> FilterColumns | None:
    """The filter as a watch stores it (None: every file); InvalidInput (422) for a list that
    is not 1-50 patterns, each a non-empty string that selects something (a comment or a
    blank line does not)."""
    if patterns is None:
        return None
    if not 1 <= len(patterns) <= MAX_PATTERNS:
        raise InvalidInput(f"paths must hold 1 to {MAX_PATTERNS} patterns (null: every file)")
    regexes: list[str] = []
    includes: list[bool] = []
    for text in patterns:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("paths: every pattern must be a non-empty string")
        if len(text) > MAX_PATTERN_LENGTH or "\n" in text or "\r" in text:
            raise InvalidInput(f"paths: a pattern is one line of at most {MAX_PATTERN_LENGTH}")
        try:
            compiled = pathspec.GitIgnoreSpec.from_lines([text]).patterns
        except ValueError as exc:
            raise InvalidInput(f"paths: {text!r} is not a valid pattern ({exc})") from None
        pattern = compiled[0] if compiled else None
        if pattern is None or pattern.include is None or pattern.regex is None:
            raise InvalidInput(f"paths: {text!r} selects nothing (a comment or blank pattern)")
        regexes.append(postgres_regex(pattern.regex.pattern))
        includes.append(bool(pattern.include))
    return FilterColumns(paths=list(patterns), path_regexes=regexes, path_includes=includes)


def postgres_regex(python_regex: str) -> str:
    """pathspec's regex in Postgres' dialect, with exactly one capturing group, which
    `substring()` reports: the directory marker `(/)` where pathspec has one (it captures
    "/" when the match was a directory above the file), else an empty `()` at the end."""
    if _DIR_GROUP in python_regex:
        converted = python_regex.replace(_DIR_GROUP, "(")
    else:
        converted = python_regex + "()"
    if "(?P" in converted:  # pathspec changed how it writes regexes: refuse, do not guess
        raise InvalidInput("paths: this pattern cannot be evaluated by the database")
    return converted
