"""The plugin hook between scanning and delivery.

A transform takes the scanned files of a commit and returns the files to snapshot
(filtered, renamed, or with derived entries added). The list is empty by default; the
pipeline applies every registered transform in order, so derived representations can
be added later without touching the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable

from docora.scan.hashing import ScannedFile

Transform = Callable[[list[ScannedFile]], list[ScannedFile]]

TRANSFORMS: list[Transform] = []


def apply_transforms(
    files: list[ScannedFile], transforms: list[Transform] | None = None
) -> list[ScannedFile]:
    for transform in TRANSFORMS if transforms is None else transforms:
        files = transform(files)
    return files
