"""The pinned cache keys: what ``tests/test_pinned_keys.py`` checks, and how it was made.

Every cache key and derived seed of the example blog and of a wide sample of specs was
computed once, on the code before the architecture change (issue 11), and stored in
``tests/data/pinned_keys.json``. A change of code must never change one of them: a
changed key re-renders every picture of every blog. When a key *must* change (the
recipe version is bumped on purpose), regenerate with::

    .venv/bin/python -m tests.pinned_keys --write

and say why in the commit. The sample is drawn by hypothesis (derandomized) and
written into ``tests/data/pinned_blog/posts/``, so the inputs are files, not a draw
that a new hypothesis release could change.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
PINNED_BLOG = DATA / "pinned_blog"
PINNED_KEYS = DATA / "pinned_keys.json"
#: The example blog's posts as they were pinned. Issue 16 made its samplers post a grid
#: (more pictures, other lines), so the pins check this copy; ``tests/test_grids.py``
#: checks that the grid's cells of equal specs keep the pinned keys.
PINNED_EXAMPLE_POSTS = DATA / "pinned_example" / "posts"


def keys_of(root: Path, preview: bool) -> dict[str, Any]:
    """``file:line`` -> [key, seed] of every picture shown, and the key of every node."""
    from generator.build import BuildOptions, load_site

    with tempfile.TemporaryDirectory() as tmp:  # state and hashes stay out of the fixture
        copy = Path(tmp) / "blog"
        for part in ("posts", "models"):
            source = PINNED_EXAMPLE_POSTS if (root, part) == (REPO, "posts") else root / part
            if source.is_dir():
                shutil.copytree(source, copy / part)
        shutil.copy(root / "genimg.yaml", copy / "genimg.yaml")
        site = load_site(copy, BuildOptions(preview=preview))
    images = {f"{s.location.file}:{s.location.line}": [site.plan.shown_key[s.location], s.seed]
              for s in site.images}
    return {"images": dict(sorted(images.items())), "nodes": sorted(site.plan.nodes)}


def all_keys() -> dict[str, Any]:
    return {
        "example_preview": keys_of(REPO, preview=True),
        "example": keys_of(REPO, preview=False),
        "sample": keys_of(PINNED_BLOG, preview=False),
        "sample_preview": keys_of(PINNED_BLOG, preview=True),
    }


# ------------------------------------------------------------------ the sample's posts


def _strategies() -> Any:
    from hypothesis import strategies as st

    from generator.samplers import SAMPLERS

    text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                   min_size=1, max_size=40).filter(lambda s: s.strip() == s and s.strip())
    size = st.integers(8, 512).map(lambda n: n * 8)
    common = {
        "negative_prompt": st.one_of(st.just(""), text),
        "seed": st.integers(0, 2**32 - 1),
        "model": st.sampled_from(["default", "anime"]),
        "sampler": st.sampled_from(list(SAMPLERS)),
        "steps": st.integers(1, 500),
        "cfg": st.one_of(st.integers(0, 50), st.floats(0, 50, allow_nan=False).map(
            lambda f: round(f, 3))),
        "width": size,
        "height": size,
        "strength": st.floats(0.001, 1).map(lambda f: round(f, 4)).filter(lambda f: f > 0),
        "restore_faces": st.booleans(),
        "face_weight": st.floats(0, 1).map(lambda f: round(f, 3)),
        "caption": text,
        "alt": text,
    }
    optional = st.fixed_dictionaries({}, optional=common)
    return st, text, optional


def _draw_posts() -> dict[str, str]:
    """Twenty-four posts of twelve galleries, drawn by hypothesis with a fixed seed."""
    import yaml
    from hypothesis import HealthCheck, given, settings

    st, text, optional = _strategies()
    image = st.tuples(st.sampled_from(["txt2img", None, "img2img", "restore"]), text, optional,
                      st.booleans(), st.integers(0, 99))
    gallery = st.tuples(st.lists(image, min_size=1, max_size=5),
                        st.one_of(st.none(), st.fixed_dictionaries({}, optional={
                            "steps": st.integers(1, 60), "sampler": st.sampled_from(
                                ["DDIM", "Euler", "DPM++ 2M Karras"]),
                            "negative_prompt": text, "restore_faces": st.booleans()})))
    drawn: list[Any] = []

    @settings(max_examples=300, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(gallery)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    posts: dict[str, str] = {}
    ids: list[str] = []
    for index, (images, defaults) in enumerate(drawn[:288]):
        items = []
        for mode, prompt, extra, give_id, pick in images:
            item: dict[str, Any] = {}
            if mode is not None:
                item["mode"] = mode
            if mode != "restore" or pick % 2:
                item["prompt"] = prompt
            item.update(extra)
            if mode in ("img2img", "restore"):
                item["from"] = ids[pick % len(ids)] if ids and pick % 3 else "source.png"
                if mode == "restore":
                    item.pop("restore_faces", None)
            elif mode is not None or pick % 4 == 0:
                pass
            if give_id:
                ids.append(f"img-{len(ids)}")
                item = {"id": ids[-1], **item}
            items.append(item)
        body = (yaml.safe_dump({"defaults": defaults, "images": items}, allow_unicode=True,
                               sort_keys=False, width=10**6) if defaults
                else yaml.safe_dump(items, allow_unicode=True, sort_keys=False, width=10**6))
        post = f"2024-01-{index // 12 + 1:02d}-sample-{index // 12}.md"
        posts[post] = posts.get(post, f"---\ntitle: Sample {index // 12}\n---\n") + (
            f"\n```gallery\n{body}```\n")
    return posts


def _write_sample() -> None:
    from PIL import Image

    posts_dir = PINNED_BLOG / "posts"
    shutil.rmtree(posts_dir, ignore_errors=True)
    posts_dir.mkdir(parents=True)
    Image.new("RGB", (16, 16), (200, 100, 50)).save(posts_dir / "source.png")
    for name, text in _draw_posts().items():
        (posts_dir / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python -m tests.pinned_keys --write   (see the docstring first)")
    if "--sample" in sys.argv:
        _write_sample()
    PINNED_KEYS.write_text(json.dumps(all_keys(), indent=0, ensure_ascii=False) + "\n",
                           encoding="utf-8")
    print(f"wrote {PINNED_KEYS}")
