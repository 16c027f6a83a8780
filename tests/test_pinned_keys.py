"""Cache keys and derived seeds never change by accident (see ``tests/pinned_keys.py``).

The keys were computed on the code before the architecture change of issue 11; a
changed key would re-render every picture of every blog that has it.
"""

from __future__ import annotations

import json

import pytest

from tests.pinned_keys import PINNED_BLOG, PINNED_KEYS, REPO, keys_of

PINNED = json.loads(PINNED_KEYS.read_text(encoding="utf-8"))
CASES = {
    "example_preview": (REPO, True),
    "example": (REPO, False),
    "sample": (PINNED_BLOG, False),
    "sample_preview": (PINNED_BLOG, True),
}


def test_the_pins_cover_every_mode_and_reference_kind() -> None:
    """A wide sample: hundreds of pictures, every mode, ids and files as sources."""
    sample = PINNED["sample"]
    assert len(sample["images"]) > 900 and len(sample["nodes"]) > 350
    text = "".join(p.read_text(encoding="utf-8") for p in (PINNED_BLOG / "posts").glob("*.md"))
    for needle in ("mode: img2img", "mode: restore", "from: source.png", "from: img-",
                   "restore_faces: true", "defaults:", "seed:", "model: anime"):
        assert needle in text


@pytest.mark.parametrize("case", sorted(CASES))
def test_keys_and_seeds_are_as_pinned(case: str) -> None:
    root, preview = CASES[case]
    now = keys_of(root, preview)
    pinned = PINNED[case]
    changed = {at: (pinned["images"].get(at), got) for at, got in now["images"].items()
               if pinned["images"].get(at) != got}
    assert not changed, f"{len(changed)} keys or seeds changed, e.g. {next(iter(changed.items()))}"
    assert now["images"].keys() == pinned["images"].keys()
    assert now["nodes"] == pinned["nodes"]
