"""The search index's size and build time per 1,000 pictures, and what one query fetches.

    python bench/search_index.py                 # 1000 and 10000 pictures
    python bench/search_index.py --pictures 1000

Records are made as a build makes them (``search.records``: prompt, negative prompt,
seed, model, sampler, mode, caption, post title and tags), from prompts of 8-14 words
drawn from a vocabulary of 400 English words and 100 two-character Chinese words, 10
pictures a post. Pagefind (``genimg[search]``) writes the bundle; reported: its size
(all files; the index chunks; the fragments, one per record), the build time, and for a
query of one common word, the bytes of the index chunk it loads plus 24 fragments (the
first page of results) beside the fixed cost (pagefind.js, its worker and wasm).
"""

from __future__ import annotations

import argparse
import random
import time

from _util import REPO  # noqa: F401  (puts this checkout first on sys.path)

from generator import search

ASCII = [f"{a}{b}" for a in ("red", "old", "sea", "sky", "cat", "man", "sun", "ink")
         for b in ("", "s", "ly", "er", "ish", "en", "ing", "ed", "ness", "ful",
                   "light", "stone", "wood", "fire", "wind", "rain", "moon", "star",
                   "field", "house", "road", "gate", "hill", "lake", "tree", "bird",
                   "fish", "boat", "song", "dream", "night", "day", "glass", "paper",
                   "iron", "silk", "salt", "snow", "leaf", "root", "wing", "tower",
                   "bridge", "garden", "river", "market", "temple", "valley", "harbor",
                   "forest")]
CJK = [a + b for a in "山水花鸟人猫月风雨云" for b in "色光影声香林海城门路"]


def records(pictures: int) -> list[dict]:
    rng = random.Random(0)
    found = []
    for n in range(pictures):
        words = rng.sample(ASCII, rng.randint(6, 10)) + rng.sample(CJK, rng.randint(2, 4))
        post = n // 10
        found.append({
            "url": f"/blog/posts/post-{post}/#img-{n:08x}",
            "content": "\n".join([", ".join(words), "lowres, blurry", str(rng.getrandbits(32)),
                                  "default", "Euler a", "txt2img", f"Post {post}", "photo"]),
            "meta": {"kind": "picture", "title": f"Post {post}", "post": f"Post {post}",
                     "image": f"/blog/images/{n}-{words[0]}-{n:08x}-512.webp",
                     "image_alt": ", ".join(words), "width": "512", "height": "512"},
        })
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    if not search.available():
        raise SystemExit("needs Pagefind: pip install -e '.[search]'")
    print(f"{'pictures':>8} {'seconds':>8} {'files':>6} {'bundle KB':>10} {'index KB':>9} "
          f"{'fragments KB':>12} {'fixed KB':>9} {'one query KB':>12}")
    for count in args.pictures:
        found = records(count)
        started = time.perf_counter()
        files = search.index_files(found, "zh-CN")
        seconds = time.perf_counter() - started
        index = {p: len(b) for p, b in files.items() if "/index/" in p}
        fragments = {p: len(b) for p, b in files.items() if "/fragment/" in p}
        fixed = sum(len(b) for p, b in files.items()
                    if p.endswith(("pagefind.js", "pagefind-worker.js", "pagefind-entry.json"))
                    or ".pf_meta" in p or "wasm." in p)
        # a query of one word loads one index chunk (of those, the largest is the worst
        # case) and the fragments of the results shown (24, about 1 KB each)
        query = max(index.values()) + 24 * sum(fragments.values()) // len(fragments)
        total = sum(len(b) for b in files.values())
        print(f"{count:8} {seconds:8.2f} {len(files):6} {total / 1024:10.0f} "
              f"{sum(index.values()) / 1024:9.0f} {sum(fragments.values()) / 1024:12.0f} "
              f"{fixed / 1024:9.0f} {query / 1024:12.0f}")


if __name__ == "__main__":
    main()
