"""`.docoraignore`: gitignore semantics through pathspec."""

from __future__ import annotations

from collections.abc import Callable

import pathspec

IGNORE_FILE = ".docoraignore"


def ignore_matcher(text: str | None) -> Callable[[str], bool]:
    """A predicate telling whether a repository-relative path is ignored."""
    if not text:
        return lambda path: False
    spec = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
    return spec.match_file
