"""``genimg init`` and ``genimg new``: the files a writer starts from.

Both refuse to overwrite anything: a scaffold that clobbers a hand-edited config or
post would destroy work, and a half-written blog is worse than a clear refusal, so
every target is checked before the first file is written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

import generator

from .config import CONFIG_NAME, dump_default_config, load_config
from .content import slugify
from .errors import GenimgError, text_problem

WORKFLOW_PATH = ".github/workflows/genimg.yml"

# The cache (objects + recorded model fingerprints) is committed on purpose: CI runs
# `genimg build --frozen` from it without a GPU. Only machine-local files are ignored.
GITIGNORE = """\
# Built by genimg: published to gh-pages or by the workflow, never committed here.
/site/
# Machine-local parts of the cache. .genimg/objects/ and .genimg/fingerprints.json
# ARE committed: `genimg build --frozen` builds the site from them without a GPU.
/.genimg/lock
/.genimg/hashes.json
/.genimg/derived/
/.genimg/state/
/.genimg/**/*.tmp
"""

# Cache pictures go to Git LFS: a ~400 KB PNG per picture is 4 GB of history at 10,000
# pictures, far past what a git host takes comfortably; LFS keeps the repository small
# and only the checked-out version on disk. Sidecars (small JSON) stay in git.
GITATTRIBUTES = """\
# genimg: cache pictures in Git LFS (`git lfs install` once per machine).
.genimg/objects/**/*.png filter=lfs diff=lfs merge=lfs -text
"""

WORKFLOW = """\
# Builds the blog from the committed picture cache (no GPU, no model) and deploys
# it to GitHub Pages. In the repository settings, set Pages -> Source to
# "GitHub Actions". Render new pictures locally with `genimg build` and commit
# .genimg/ with your posts: `--frozen` fails naming any picture that is missing.
name: genimg

on:
  push:
    branches: [main]
  workflow_dispatch:

permissions:
  contents: read
  pages: write
  id-token: write

concurrency:
  group: pages
  cancel-in-progress: false

jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          lfs: true  # the cache's pictures are in Git LFS (.gitattributes)
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - name: Install genimg
        # Pinned: cache keys include genimg's recipe version. Until genimg is published
        # on PyPI, set the repository variable GENIMG_PIP_SPEC to where you install it
        # from, e.g. "genimg @ git+https://github.com/<owner>/genimg@<tag>".
        env:
          GENIMG_PIP_SPEC: ${{{{ vars.GENIMG_PIP_SPEC }}}}
        run: python -m pip install "${{GENIMG_PIP_SPEC:-genimg=={version}}}"
      - name: Restore the web pictures derived by earlier runs
        # WebP encoding is most of a cold build: keep it between runs. The key changes
        # with genimg's version and the cache's sidecars, so new pictures are encoded
        # once; restore-keys reuse the last run's files for everything else.
        uses: actions/cache@v4
        with:
          path: .genimg/derived
          key: genimg-derived-{version}-${{{{ hashFiles('.genimg/objects/**/*.json') }}}}
          restore-keys: genimg-derived-{version}-
      - name: Build from the committed cache
        run: genimg build --frozen
      - uses: actions/configure-pages@v5
      - uses: actions/upload-pages-artifact@v3
        with:
          path: site

  deploy:
    needs: build
    runs-on: ubuntu-latest
    environment:
      name: github-pages
      url: ${{{{ steps.deployment.outputs.page_url }}}}
    steps:
      - id: deployment
        uses: actions/deploy-pages@v4
"""

SAMPLE_POST = """\
---
title: Hello, genimg
date: {date}
tags: [genimg]
---

This post was written by `genimg init`. Each `gallery` block lists pictures shown
side by side; genimg renders the ones missing from its cache and reuses the rest.

```gallery
- id: lighthouse
  prompt: a lighthouse on a cliff at sunset, oil painting
  seed: 1234
- mode: img2img
  from: lighthouse
  prompt: a lighthouse on a cliff at night, oil painting, starry sky
  seed: 5678
  strength: 0.6
  caption: The same lighthouse, at night
```

`genimg build --preview` draws placeholders without any model; `genimg build`
renders with the model named in `genimg.yaml`; `genimg serve` previews while you write.
"""


def _write_new(files: dict[Path, str]) -> list[Path]:
    """Write every file, or none if any already exists."""
    existing = [path for path in files if path.exists()]
    if existing:
        names = ", ".join(str(p) for p in existing)
        raise GenimgError(f"refusing to overwrite existing files: {names}")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as fh:  # "x": never clobber, even in a race
            fh.write(text)
    return list(files)


def init_blog(root: Path, title: str = "My genimg blog",
              today: dt.date | None = None) -> list[Path]:
    """Scaffold a blog in ``root`` (which may exist); returns the files written."""
    date = (today or dt.date.today()).isoformat()
    return _write_new({
        root / CONFIG_NAME: dump_default_config(title),
        root / "posts" / f"{date}-hello-genimg.md": SAMPLE_POST.format(date=date),
        root / ".gitignore": GITIGNORE,
        root / ".gitattributes": GITATTRIBUTES,
        root / WORKFLOW_PATH: WORKFLOW.format(version=generator.__version__),
    })


def new_post(root: Path, title: str, today: dt.date | None = None,
             draft: bool = True) -> Path:
    """Create ``posts/YYYY-MM-DD-<slug>.md`` with front matter; returns its path.

    The title is made one line (a title has no line breaks, and a line of its own
    could end the front matter); one that is not text (a terminal that is not UTF-8
    gives lone surrogates) is refused."""
    title = " ".join(title.split())
    if not title:
        raise GenimgError("a post needs a title")
    problem = text_problem(title)
    if problem:
        raise GenimgError(f"the title holds {problem}, which is not text; is the terminal "
                          "set to UTF-8?")
    if not (root / CONFIG_NAME).is_file() and not (root / "posts").is_dir():
        raise GenimgError(f"not a genimg blog (no {CONFIG_NAME}); run `genimg init` "
                          "or pass -C BLOG", root)
    config = load_config(root)
    date = (today or dt.date.today()).isoformat()
    path = config.posts_dir / f"{date}-{slugify(title)}.md"
    front = yaml.safe_dump({"title": title}, allow_unicode=True, width=1000)
    front += f"date: {date}\ntags: []\ndraft: {'true' if draft else 'false'}\n"
    _write_new({path: f"---\n{front}---\n\nWrite here.\n"})
    return path
