"""genimg's three hashes of JSON, side by side, and why they must stay different.

Each was fixed when the data it names was first written, and changing one changes
what it names: ``canonical_key`` and ``derive_seed`` are pinned byte for byte
(``tests/test_pinned_keys.py``); ``digest`` only names machine-local build state,
which a change merely invalidates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: ``json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":"))``, made once
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_key(fields: Mapping[str, Any]) -> str:
    """A cache key: SHA-256 of the canonical JSON of everything that changes the pixels.

    Sorted keys and compact separators: the same fields give the same key whatever
    order code builds them in. Values are JSON data only (no fallback): a value JSON
    cannot say is a bug, not something to hash by its ``repr``."""
    return hashlib.sha256(_CANONICAL.encode(fields).encode("utf-8")).hexdigest()


def derive_seed(basis: Mapping[str, Any]) -> int:
    """A stable seed for a spec that gives none (the first 4 bytes of a SHA-256).

    ``json.dumps``' default separators and ``default=str``: what the first release
    hashed; every seed a blog relies on depends on them."""
    blob = json.dumps(dict(basis), sort_keys=True, ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:4], "big")


def digest(*parts: Any) -> str:
    """Names build state (``state.py``): SHA-256 of the JSON of ``parts``, in order.

    Unsorted (order is part of what it names), ``repr`` for what JSON cannot say
    (dates, paths), and lone surrogates passed through: it must never fail, and a
    difference only costs a re-render of a page or re-parse of a post."""
    blob = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), default=repr)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()
