"""ImageNet-1k class names and WordNet synset ids, shipped in the package (torchvision's order)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

_FILE = Path(__file__).with_name("imagenet_classes.json")


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(_FILE.read_text())


def imagenet_labels() -> list[str]:
    """The 1000 short class names (e.g. 340 -> 'zebra', 859 -> 'toaster')."""
    return list(_table()["names"])


def imagenet_synsets() -> list[str]:
    """The 1000 WordNet ids (e.g. 340 -> 'n02391049')."""
    return list(_table()["synsets"])


def imagenet_full_names() -> list[str]:
    """The 1000 full WordNet descriptions with synonyms."""
    return list(_table()["full_names"])


def synset_index(synset: str) -> int | None:
    """Index of a WordNet id such as 'n02391049', or None."""
    try:
        return imagenet_synsets().index(synset.strip())
    except ValueError:
        return None
