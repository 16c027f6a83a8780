"""Which pictures a build must render: the plan's shown pictures against the cache.

An entry whose bytes will be read (a source of img2img or restore, or a picture to
copy into the site) is verified first; a corrupt one is discarded, reported, and
rendered again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .cache import Cache, CorruptEntry
from .errors import ErrorList, GenimgError
from .figures import web_image
from .modes import MODES
from .plan import Node, Plan


def find_misses(plan: Plan, cache: Cache, repaired: list[str]) -> list[Node]:
    """Nodes to render: shown pictures not cached, plus uncached ancestors of those."""
    missing: set[str] = set()
    # (key, will its bytes be read?) Entries read as a source are verified first.
    stack = [(key, False) for key in dict.fromkeys(plan.shown_key.values())]
    while stack:
        key, read = stack.pop()
        if key in missing or (cache.has(key) and (not read or _sound(cache, key, repaired))):
            continue
        missing.add(key)
        parent = plan.nodes[key].parent
        if parent:
            stack.append((parent, True))
    return [node for key, node in plan.nodes.items() if key in missing]


def _sound(cache: Cache, key: str, repaired: list[str]) -> bool:
    """Verify an entry whose bytes will be read (once per state of its file: see
    ``Cache.verify``); a corrupt one is discarded and reported."""
    try:
        cache.verify(key, again=False)
    except CorruptEntry:
        cache.discard(key)
        repaired.append(key)
        return False
    return True


def verify_for_site(plan: Plan, cache: Cache, present: Mapping[str, Any],
                    repaired: list[str], original: str = "png") -> None:
    """Shown entries whose site files must be (re)written are verified before the copy
    (in threads: reading and hashing release the GIL)."""
    todo = []
    for key in dict.fromkeys(plan.shown_key.values()):
        brief = cache.brief(key)
        if brief is not None and not all(
                f in present for f in web_image(plan, key, brief, original).site_files):
            todo.append(key)
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda key: _sound(cache, key, repaired), todo))
    repaired.sort()


def frozen_error(plan: Plan, misses: list[Node]) -> ErrorList:
    """``--frozen`` found pictures missing from the cache: name each (post, line, prompt)."""
    shown_keys = set(plan.shown_key.values())
    errors = []
    for node in misses:
        if node.key in shown_keys:
            spec = node.shown
            what = (f"{spec.mode} {spec.prompt[:60]!r} (seed {spec.seed})"
                    if MODES[spec.mode].generates else f"{spec.mode} of {spec.source!r}")
            errors.append(spec.location.error(f"not in the cache: {what}"))
    return ErrorList(errors or [GenimgError(f"{len(misses)} pictures are not in the cache")])
