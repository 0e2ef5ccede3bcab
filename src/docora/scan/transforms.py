"""The plugin hook between scanning and delivery.

A transform sees each tree entry on its way into the snapshot and returns it (possibly
changed) or None to leave it out. The list is empty by default; every registered
transform runs in order, so derived representations can be added later without
touching the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec


class TreeEntry(msgspec.Struct, frozen=True):
    path: str
    blob_id: str
    size: int


Transform = Callable[[TreeEntry], TreeEntry | None]

TRANSFORMS: list[Transform] = []


def apply_transforms(
    entry: TreeEntry, transforms: list[Transform] | None = None
) -> TreeEntry | None:
    for transform in TRANSFORMS if transforms is None else transforms:
        result = transform(entry)
        if result is None:
            return None
        entry = result
    return entry
