"""Whole-site build times of genimg against Pelican on the same synthetic blog.

    python bench/bench_site.py                 # 100 and 1000 posts
    python bench/bench_site.py --posts 100 --repeats 5 --no-pelican

For each size N it writes a blog of N Markdown posts (paragraphs, headings, lists,
links) with two ``gallery`` blocks of 5 txt2img pictures each, fills genimg's cache
with small real PNGs through genimg's own API (``load_site`` for the keys,
``Cache.put``), then times the ``genimg build --frozen`` command:

* cold:            no ``site/`` and no WebP derivatives in the cache (first build ever);
* cold site/:      no ``site/``, derivatives already cached (a fresh clone of a blog
                   whose ``.genimg/`` is committed, or ``rm -rf site``);
* no-change:       build again, nothing changed;
* one-post edit:   append a paragraph to one post, build.

Pelican (in its own virtualenv, created on first use) builds the same posts with the
gallery blocks left out, so its job is strictly smaller. Goals (issue 8): no-change
rebuild of 1000 posts under 1 s, one-post edit under 0.5 s, cold build faster than
Pelican's. When a goal is missed the build is profiled (cProfile, in a fresh process
like the CLI) and the time per stage and the hottest functions are printed.

The blogs live under ``--workdir`` and are reused between runs (setup is not timed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import pstats
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _util import (
    REPO,
    env_for_checkout,
    fmt_s,
    genimg_cmd,
    machine_line,
    median,
    run_timed,
    table,
)

GOAL_NOCHANGE_S = 1.0  # issue 8, up to 1000 posts
GOAL_EDIT_S = 0.5  # issue 8, 100 posts
GOAL_NOCHANGE_10K_S = 2.0  # issue 20, 10,000 posts
GOAL_EDIT_1K_S = 0.3  # issue 20, from 1000 posts (10,000 pictures) on
PICTURES_PER_POST = 10
PICTURE_SIZE = 128

WORDS = (  # noqa: SIM905
    "image model prompt seed sampler photo anime portrait river moon house light shadow "
    "colour detail noise step latent render cache gallery canvas brush paint pixel style "
    "forest mountain city night morning window street garden flower cloud rain snow sea "
    "quiet bright warm cold soft sharp early late small large quick slow first last "
    "we see try make find keep change show write read build compare choose learn notice "
    "the a of and to in with for on by from about after before between under over"
).split()
TAGS = ["stable-diffusion", "photo", "anime", "samplers", "faces", "landscape", "portrait",
        "notes", "tools", "img2img", "prompts", "colour"]
SAMPLERS = ["Euler a", "Euler", "DPM++ 2M Karras", "DDIM", "Heun"]


# --------------------------------------------------------------------------- the blog


def _sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 18))
    if rng.random() < 0.3:
        i = rng.randrange(len(words))
        words[i] = f"*{words[i]}*"
    if rng.random() < 0.2:
        i = rng.randrange(len(words))
        words[i] = f"`{words[i]}`"
    if rng.random() < 0.15:
        i = rng.randrange(len(words))
        words[i] = f"[{words[i]}](https://example.org/{words[i]}.html)"
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))


def _gallery(rng: random.Random, start: int, mapping: bool) -> str:
    lines = []
    for n in range(5):
        prompt = ", ".join(["high quality photo", *rng.sample(WORDS[:48], 4)])
        lines += [f"- prompt: {prompt}", f"  seed: {rng.randrange(2**32)}"]
        if rng.random() < 0.4:
            lines.append(f"  sampler: {rng.choice(SAMPLERS)}")
        lines.append(f"  caption: picture {start + n}")
    if mapping:
        body = "\n".join("  " + line for line in lines)
        caption = " ".join(rng.choices(WORDS, k=8)).capitalize()
        return f"```gallery\ncolumns: 5\ncaption: {caption}\nimages:\n{body}\n```"
    return "```gallery\n" + "\n".join(lines) + "\n```"


def post_parts(i: int) -> dict:
    """Title, date, tags and body blocks of post ``i`` (deterministic)."""
    rng = random.Random(i)
    title = " ".join(rng.choices(WORDS[:60], k=rng.randint(3, 6))).capitalize()
    date = dt.date(2015, 1, 1) + dt.timedelta(days=i)
    blocks = [
        _paragraph(rng),
        f"## {_sentence(rng)[:-1]}",
        _paragraph(rng),
        ("GALLERY", _gallery(rng, 1, mapping=False)),
        f"### {_sentence(rng)[:-1]}",
        "\n".join(f"- {_sentence(rng)}" for _ in range(4)),
        _paragraph(rng),
        "\n".join(f"{n}. {_sentence(rng)}" for n in range(1, 4)),
        f"## {_sentence(rng)[:-1]}",
        _paragraph(rng),
        ("GALLERY", _gallery(rng, 6, mapping=True)),
        _paragraph(rng),
    ]
    return {"title": title, "date": date, "slug": f"post-{i:05d}",
            "tags": rng.sample(TAGS, 2), "blocks": blocks}


def genimg_post(parts: dict) -> str:
    body = "\n\n".join(b[1] if isinstance(b, tuple) else b for b in parts["blocks"])
    tags = ", ".join(f'"{t}"' for t in parts["tags"])
    return (f'---\ntitle: "{parts["title"]}"\ndate: {parts["date"]}\n'
            f'slug: {parts["slug"]}\ntags: [{tags}]\n---\n\n{body}\n')


def pelican_post(parts: dict) -> str:
    body = "\n\n".join(b for b in parts["blocks"] if not isinstance(b, tuple))
    return (f'Title: {parts["title"]}\nDate: {parts["date"]}\nSlug: {parts["slug"]}\n'
            f'Tags: {", ".join(parts["tags"])}\nCategory: blog\n\n{body}\n')


def config_text() -> str:
    """genimg.yaml of the bench blog (pictures of ``PICTURE_SIZE``, set by ``--size``)."""
    return f"""\
title: genimg bench
base_url: https://example.org/
author: bench
per_page: 10
models:
  default: model.safetensors
defaults:
  width: {PICTURE_SIZE}
  height: {PICTURE_SIZE}
"""


def _base_images(count: int) -> list:
    """Small RGB pictures with gradients and grain, so PNG/WebP sizes are plausible."""
    from PIL import Image, ImageChops, ImageFilter

    rng = random.Random(0)
    size = (PICTURE_SIZE, PICTURE_SIZE)
    out = []
    for n in range(count):
        grad = Image.linear_gradient("L").resize(size).rotate(rng.randrange(360))
        radial = Image.radial_gradient("L").resize(size)
        noise = Image.effect_noise(size, 40 + n % 30).filter(ImageFilter.GaussianBlur(1))
        r = ImageChops.add(grad, noise, scale=1.6)
        g = ImageChops.multiply(radial.point(lambda v, n=n: (v + 13 * n) % 256), grad)
        b = ImageChops.blend(noise, radial, 0.5 + (n % 5) / 10)
        out.append(Image.merge("RGB", (r, g, b)))
    return out


def make_blog(root: Path, posts: int) -> tuple[int, float]:
    """Write (or refresh) the blog and fill its cache; returns (pictures stored, seconds)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "genimg.yaml").write_text(config_text(), encoding="utf-8")
    model = root / "model.safetensors"
    if not model.exists():
        model.write_bytes(random.Random(1).randbytes(1024))
    post_dir = root / "posts"
    post_dir.mkdir(exist_ok=True)
    wanted = set()
    for i in range(posts):
        parts = post_parts(i)
        path = post_dir / f"{parts['date']}-{parts['slug']}.md"
        wanted.add(path.name)
        text = genimg_post(parts)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    for stale in post_dir.glob("*.md"):
        if stale.name not in wanted:
            stale.unlink()
    return fill_cache(root)


def fill_cache(root: Path) -> tuple[int, float]:
    """Put a real PNG (with its infotext) in the cache for every planned picture missing."""
    import time

    from generator.build import BuildOptions, load_site
    from generator.cache import Cache
    from generator.infotext import infotext_for
    from generator.metadata import png_bytes
    from generator.plan import key_fields

    started = time.perf_counter()
    site = load_site(root, BuildOptions(frozen=True))
    cache = Cache(site.config.cache_dir)
    todo = [node for key, node in site.plan.nodes.items() if not cache.has(key)]
    bases = _base_images(64)

    def put(item: tuple[int, object]) -> None:
        n, node = item
        image = bases[n % len(bases)]
        infotext = infotext_for(node, site.plan)
        meta = {
            "spec": key_fields(node.spec, node.model and node.model.fingerprint, None, None),
            "shown": node.shown.as_yaml_dict(),
            "infotext": infotext, "width": image.width, "height": image.height,
            "preview": False, "versions": {"bench": "1"}, "render_seconds": 0.0,
            "location": f"{node.shown.location.file}:{node.shown.location.line}",
        }
        cache.put(node.key, png_bytes(image, infotext), meta)

    fsync, os.fsync = os.fsync, lambda fd: None  # setup only: a power cut may lose it
    try:
        with cache.lock(), ThreadPoolExecutor(8) as pool:
            list(pool.map(put, enumerate(todo)))
    finally:
        os.fsync = fsync
    site.resolver.save()
    return len(todo), time.perf_counter() - started


def make_pelican(root: Path, posts: int) -> None:
    content = root / "content"
    if content.exists():
        shutil.rmtree(content)
    content.mkdir(parents=True)
    for i in range(posts):
        parts = post_parts(i)
        (content / f"{parts['slug']}.md").write_text(pelican_post(parts), encoding="utf-8")
    common = ('AUTHOR = "bench"\nSITENAME = "genimg bench"\nSITEURL = ""\n'
              'TIMEZONE = "UTC"\nDEFAULT_LANG = "en"\nDEFAULT_PAGINATION = 10\n'
              'RELATIVE_URLS = True\n')
    (root / "pelicanconf.py").write_text(common, encoding="utf-8")
    (root / "pelicanconf_cached.py").write_text(
        common + f'CACHE_CONTENT = True\nLOAD_CONTENT_CACHE = True\n'
                 f'CACHE_PATH = "{root / "cache"}"\n', encoding="utf-8")


# --------------------------------------------------------------------------- Pelican


def pelican_python(venv: Path) -> Path:
    """The venv's python, creating the venv with Pelican + Markdown if it is missing."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "pelican").exists():
        print(f"creating {venv} with pelican and markdown (once)...", flush=True)
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "pelican", "markdown"],
                       check=True)
    return python


def pelican_version(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "pelican"), "--version"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def time_pelican(root: Path, venv: Path, repeats: int, cold_repeats: int) -> dict[str, float]:
    pelican = str(venv / "bin" / "pelican")
    out_dir = root / "output"

    def run(settings: str) -> float:
        seconds, _ = run_timed([pelican, str(root / "content"), "-o", str(out_dir),
                                "-s", str(root / settings), "-q"], cwd=root)
        return seconds

    cold = []
    for _ in range(cold_repeats):
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.rmtree(root / "cache", ignore_errors=True)
        cold.append(run("pelicanconf.py"))
    rebuild = [run("pelicanconf.py") for _ in range(repeats)]
    run("pelicanconf_cached.py")  # fill its content cache
    cached = [run("pelicanconf_cached.py") for _ in range(repeats)]
    files = sum(1 for p in out_dir.rglob("*") if p.is_file())
    return {"cold": median(cold), "rebuild": median(rebuild), "rebuild_cached": median(cached),
            "files": files}


# --------------------------------------------------------------------------- genimg

_SECONDS = re.compile(r" in ([0-9.]+)s(?:;[^\n]*)?\s*$")  # "…; site 35.0 MB" may follow


def build_cmd(root: Path) -> list[str]:
    return [*genimg_cmd(), "build", "--frozen", "-q", "-C", str(root)]


def genimg_build(root: Path) -> tuple[float, float, str]:
    """(wall seconds of the command, seconds genimg reports for the build, its line)."""
    wall, out = run_timed(build_cmd(root), env=env_for_checkout())
    line = out.strip().splitlines()[-1] if out.strip() else ""
    match = _SECONDS.search(line)
    return wall, float(match.group(1)) if match else float("nan"), line


def edit_post(root: Path, index: int, counter: int) -> Path:
    parts = post_parts(index)
    path = root / "posts" / f"{parts['date']}-{parts['slug']}.md"
    path.write_text(genimg_post(parts) + f"\nAn edited paragraph, version {counter}.\n",
                    encoding="utf-8")
    return path


def restore_post(root: Path, index: int) -> None:
    parts = post_parts(index)
    path = root / "posts" / f"{parts['date']}-{parts['slug']}.md"
    path.write_text(genimg_post(parts), encoding="utf-8")


def time_genimg(root: Path, posts: int, repeats: int, cold_repeats: int) -> dict[str, tuple]:
    """``cold_repeats`` 0: no cold builds timed; one untimed build brings the site up."""
    site, derived = root / "site", root / ".genimg" / "derived"
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in
                                                     ("cold", "cold_site", "nochange", "edit")}
    line = ""
    if not cold_repeats:
        line = genimg_build(root)[2]
        results["cold"] = results["cold_site"] = [(float("nan"), float("nan"))]
    for _ in range(cold_repeats):
        shutil.rmtree(site, ignore_errors=True)
        shutil.rmtree(derived, ignore_errors=True)
        wall, inner, line = genimg_build(root)
        results["cold"].append((wall, inner))
    cold_line = line
    for _ in range(cold_repeats):
        shutil.rmtree(site, ignore_errors=True)
        wall, inner, _ = genimg_build(root)
        results["cold_site"].append((wall, inner))
    for _ in range(repeats):
        wall, inner, line = genimg_build(root)
        results["nochange"].append((wall, inner))
    nochange_line = line
    index = posts // 2
    for n in range(repeats):
        edit_post(root, index, n)
        wall, inner, line = genimg_build(root)
        results["edit"].append((wall, inner))
    edit_line = line
    restore_post(root, index)
    genimg_build(root)
    files = sum(1 for p in site.rglob("*") if p.is_file())
    out: dict[str, tuple] = {
        k: (median([w for w, _ in v]), median([i for _, i in v])) for k, v in results.items()
    }
    out["files"] = (files,)
    out["lines"] = (cold_line, nochange_line, edit_line)
    return out


# --------------------------------------------------------------------------- profiling

#: Stages of a build, timed by wrapping these functions (label, module, attribute).
#: Nested stages are indented; "[threads]" rows are summed over ImageWriter's workers.
STAGES = [
    ("load_site: config, posts, plan", "generator.build", "load_site"),
    ("  load_posts: read, Markdown, galleries", "generator.content", "load_posts"),
    ("    PostCache.load (hash, maybe parse)", "generator.state", "PostCache.load"),
    ("    Markdown.convert (incl. galleries)", "markdown.core", "Markdown.convert"),
    ("      parse_gallery (YAML + specs)", "generator.content", "parse_gallery"),
    ("  Planner.plan (cache keys)", "generator.plan", "Planner.plan"),
    ("output.walk (scandir site/)", "generator.output", "walk"),
    ("verify_for_site (stat site files)", "generator.build", "verify_for_site"),
    ("find_misses (cache lookups)", "generator.build", "find_misses"),
    ("Figures (template data inputs)", "generator.figures", "Figures.__init__"),
    ("ImageWriter.write (web images)", "generator.images", "ImageWriter.write"),
    ("render_changed_pages (digests + Jinja2)", "generator.build", "render_changed_pages"),
    ("  PageRenderer.render (Jinja2)", "generator.pages", "PageRenderer.render"),
    ("  post_html (gallery rows)", "generator.pages", "PageRenderer.post_html"),
    ("output.write_site (compare + write pages)", "generator.output", "write_site"),
    ("  _remove_stale", "generator.output", "_remove_stale"),
    ("PageState.save", "generator.state", "PageState.save"),
    ("PostCache.save", "generator.state", "PostCache.save"),
    ("Cache.save_index", "generator.cache", "Cache.save_index"),
    ("Cache.brief (stat, index)", "generator.cache", "Cache.brief"),
    ("Cache.meta (all calls: JSON sidecars)", "generator.cache", "Cache.meta"),
    ("Cache.read_bytes (read + SHA-256)", "generator.cache", "Cache.read_bytes"),
    ("write_atomic (temp + fsync + rename)", "generator.atomic", "write_atomic"),
    ("_decode (PNG to pixels, once per picture)", "generator.images", "_decode"),
    ("_thumbnail_bytes (resize, WebP)", "generator.images", "_thumbnail_bytes"),
]

_CHILD = r"""
import functools, importlib, json, sys, threading, time
root, out, mode, stages = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
started = time.perf_counter()
import generator.cli, generator.build, markdown.core
imports = time.perf_counter() - started
main_thread = threading.main_thread()
acc = {}
profiles = []
local = threading.local()

def timed(label, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            key = label + (" [threads]" if threading.current_thread() is not main_thread else "")
            entry = acc.setdefault(key, [0.0, 0])
            entry[0] += time.perf_counter() - t
            entry[1] += 1
    return wrapper

def profiled_in_workers(fn):
    import cProfile
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is main_thread:
            return fn(*args, **kwargs)
        prof = getattr(local, "prof", None)
        if prof is None:
            prof = local.prof = cProfile.Profile()
            profiles.append(prof)
        prof.enable()
        try:
            return fn(*args, **kwargs)
        finally:
            prof.disable()
    return wrapper

def patch(module_name, attr, make):
    module = importlib.import_module(module_name)
    if "." in attr:
        cls_name, name = attr.split(".")
        cls = getattr(module, cls_name)
        setattr(cls, name, make(getattr(cls, name)))
        return
    original = getattr(module, attr)
    wrapped = make(original)
    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith(("generator", module_name)):
            if getattr(mod, attr, None) is original:
                setattr(mod, attr, wrapped)

sys.argv = ["genimg", "build", "--frozen", "-q", "-C", root]
if mode == "timers":
    for label, module_name, attr in stages:
        patch(module_name, attr, functools.partial(timed, label))
    t = time.perf_counter()
    try:
        generator.cli.main()
    except SystemExit:
        pass
    total = time.perf_counter() - t
    with open(out, "w") as fh:
        json.dump({"imports": imports, "total": total, "stages": acc}, fh)
else:
    import cProfile, pstats
    patch("generator.images", "ImageWriter._write_one", profiled_in_workers)
    prof = cProfile.Profile()
    prof.enable()
    try:
        generator.cli.main()
    except SystemExit:
        pass
    prof.disable()
    stats = pstats.Stats(prof)
    for worker in profiles:
        stats.add(worker)
    stats.dump_stats(out)
"""


def _child(root: Path, mode: str, out: Path) -> None:
    stages = json.dumps([list(stage) for stage in STAGES])
    subprocess.run([sys.executable, "-c", _CHILD, str(root), str(out), mode, stages],
                   env=env_for_checkout(), check=True, capture_output=True)


def _short(func: tuple[str, int, str]) -> str:
    file, line, name = func
    if file.startswith("<") or file == "~":
        return name
    parts = Path(file).parts
    for anchor in ("generator", "markdown", "jinja2", "yaml", "PIL", "click", "json"):
        if anchor in parts:
            rel = "/".join(parts[parts.index(anchor):])
            return f"{rel}:{line}({name})"
    return f"{Path(file).name}:{line}({name})"


def profile_build(root: Path, title: str, before: Callable[[], object] = lambda: None) -> str:
    """Where one ``genimg build --frozen`` spends its time, in a fresh interpreter.

    Two runs: one with a timer around each stage (real seconds, little overhead),
    one under cProfile (own time per function, ImageWriter's worker threads included).
    ``before`` sets the scene before each run (an edit, an empty ``site/``).
    """
    with tempfile.TemporaryDirectory() as tmp:
        timers_out, prof_out = Path(tmp) / "timers.json", Path(tmp) / "build.prof"
        before()
        _child(root, "timers", timers_out)
        timers = json.loads(timers_out.read_text())
        before()
        _child(root, "profile", prof_out)
        stats = pstats.Stats(str(prof_out), stream=io.StringIO())

    total = timers["total"]
    rows = [("imports before the build", f"{timers['imports']:.3f}", "", "")]
    for label, _, _ in STAGES:
        for key in (label, label + " [threads]"):
            if key in timers["stages"]:
                seconds, calls = timers["stages"][key]
                rows.append((key, f"{seconds:.3f}", f"{100 * seconds / total:.1f}%", calls))
    stage_table = table(("stage (nested; [threads]: summed over workers)", "s", "% of build",
                         "calls"), rows,
                        title=f"{title}: where the time goes ({total:.2f} s build, "
                              "timers around each stage)")

    raw = stats.stats  # type: ignore[attr-defined]
    waits = ("acquire", "wait")
    busy = {f: v for f, v in raw.items() if not (f[0] == "~" and any(w in f[2] for w in waits))}
    profiled = sum(v[2] for v in busy.values())
    own = sorted(busy.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    own_rows = [(_short(func), f"{tt:.3f}", f"{100 * tt / profiled:.1f}%", f"{nc}")
                for func, (_, nc, tt, _, _) in own]
    own_table = table(("hottest functions, own time (cProfile, all threads)", "s", "%", "calls"),
                      own_rows, title=f"cProfile: {profiled:.2f} s of busy thread time "
                                      "(profiler overhead inflates Python-heavy code)")
    return stage_table + "\n\n" + own_table


# --------------------------------------------------------------------------- main


def main() -> None:
    global PICTURE_SIZE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--size", type=int, default=PICTURE_SIZE,
                        help="pictures' width and height (512: SD-sized PNGs of ~400 KB)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="repeats of the cheap timings (median reported)")
    parser.add_argument("--cold-repeats", type=int, default=None,
                        help="repeats of the cold builds (default: --repeats up to 200 "
                             "posts, 1 above; 0: none, for 10,000 posts)")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "genimg-bench")
    parser.add_argument("--pelican-venv", type=Path,
                        default=Path(tempfile.gettempdir()) / "genimg-bench-venv")
    parser.add_argument("--no-pelican", action="store_true")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="profile the builds that miss a goal (auto), all, or none")
    args = parser.parse_args()
    PICTURE_SIZE = args.size

    print(f"bench_site: {machine_line()}")
    print(f"genimg command: {' '.join(genimg_cmd())} (PYTHONPATH={REPO})")
    venv = None
    if not args.no_pelican:
        venv = args.pelican_venv
        pelican_python(venv)
        print(f"pelican: {pelican_version(venv)} in {venv}")
    print()

    summary = []
    for posts in args.posts:
        cold_repeats = args.cold_repeats if args.cold_repeats is not None else (
            args.repeats if posts <= 200 else 1)
        root = args.workdir / (f"genimg-{posts}" if PICTURE_SIZE == 128 else
                               f"genimg-{posts}-{PICTURE_SIZE}px")
        stored, seconds = make_blog(root, posts)
        print(f"== {posts} posts, {posts * PICTURES_PER_POST} pictures "
              f"({PICTURE_SIZE}x{PICTURE_SIZE} PNG) in {root}"
              f" [setup: {stored} pictures put in the cache in {seconds:.1f} s]", flush=True)
        g = time_genimg(root, posts, args.repeats, cold_repeats)
        rows = [
            ("genimg cold (no site/, no thumbnails)", fmt_s(g["cold"][0]), fmt_s(g["cold"][1]),
             cold_repeats),
            ("genimg cold site/ (thumbnails cached)", fmt_s(g["cold_site"][0]),
             fmt_s(g["cold_site"][1]), cold_repeats),
            ("genimg no-change rebuild", fmt_s(g["nochange"][0]), fmt_s(g["nochange"][1]),
             args.repeats),
            ("genimg one-post edit", fmt_s(g["edit"][0]), fmt_s(g["edit"][1]), args.repeats),
        ]
        p = None
        if venv is not None:
            proot = args.workdir / f"pelican-{posts}"
            make_pelican(proot, posts)
            p = time_pelican(proot, venv, args.repeats, cold_repeats)
            rows += [
                ("pelican cold (no output/)", fmt_s(p["cold"]), "", cold_repeats),
                ("pelican rebuild, no change", fmt_s(p["rebuild"]), "", args.repeats),
                ("pelican rebuild, content cache on", fmt_s(p["rebuild_cached"]), "",
                 args.repeats),
            ]
        print(table(("build", "wall (median)", "genimg says", "runs"), rows))
        files = f"genimg wrote {g['files'][0]} files"
        if p is not None:
            files += f"; pelican wrote {p['files']} files (no pictures)"
        print(files)
        print(f"genimg: {g['lines'][0]}")
        if p is not None:
            for key, label in (("cold", "cold"), ("cold_site", "cold site/")):
                ratio = p["cold"] / g[key][0]
                verdict = "faster" if ratio >= 1 else "slower"
                print(f"ratio pelican cold / genimg {label} = {ratio:.2f} "
                      f"(genimg is {max(ratio, 1 / ratio):.2f}x {verdict})")
        nochange_goal = GOAL_NOCHANGE_S if posts <= 1000 else GOAL_NOCHANGE_10K_S
        edit_goal = GOAL_EDIT_S if posts < 1000 else GOAL_EDIT_1K_S
        goals = [
            (f"no-change rebuild < {nochange_goal:g} s", g["nochange"][0],
             g["nochange"][0] < nochange_goal),
            (f"one-post edit < {edit_goal:g} s", g["edit"][0], g["edit"][0] < edit_goal),
        ]
        if p is not None:
            goals.append(("cold build faster than pelican", g["cold"][0],
                          g["cold"][0] < p["cold"]))
        print(table(("goal", "measured", "met"),
                    [(name, fmt_s(v), "yes" if ok else "NO") for name, v, ok in goals]))
        print(flush=True)
        summary.append((posts, goals))

        missed = {name for name, _, ok in goals if not ok}
        if args.profile == "always" or (
                args.profile == "auto" and missed and posts == max(args.posts)):
            profile_scenarios(root, posts, missed if args.profile == "auto" else None)
    summary_rows = [(f"{posts} posts: {name}", fmt_s(v), "yes" if ok else "NO")
                    for posts, goals in summary for name, v, ok in goals]
    print(table(("summary", "measured", "met"), summary_rows))


def profile_scenarios(root: Path, posts: int, missed: set[str] | None) -> None:
    """Profile the scenarios whose goal was missed (``None``: all of them)."""
    index = posts // 2
    versions = iter(range(1000, 2000))

    def edit() -> None:
        edit_post(root, index, next(versions))

    def cold() -> None:
        shutil.rmtree(root / "site", ignore_errors=True)
        shutil.rmtree(root / ".genimg" / "derived", ignore_errors=True)

    scenarios = [
        ("no-change rebuild", "no-change rebuild", lambda: None),
        ("one-post edit", "one-post edit", edit),
        ("cold build faster than pelican", "cold build", cold),
    ]
    for goal, label, before in scenarios:
        if missed is None or any(name.startswith(goal) for name in missed):
            print(profile_build(root, f"{posts} posts, {label}", before))
            print(flush=True)
    restore_post(root, index)
    genimg_build(root)


if __name__ == "__main__":
    main()
