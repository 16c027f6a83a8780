"""Issue 7: fuzzing the input side, and properties of the spec parser and cache keys.

Random YAML text, random data dumped as YAML, random front matter and random specs go
through ``parse_gallery``, ``load_post``, ``load_posts``, ``load_config`` and the
``Planner``: only ``GenimgError`` may escape (never KeyError, TypeError, a yaml error,
RecursionError...), and every error is one short line per problem naming file and line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from generator.config import load_config
from generator.content import load_post, load_posts, parse_gallery
from generator.errors import NOT_TEXT, ErrorList, GenimgError, Location, text_problem
from generator.models import ModelResolver
from generator.pages import PageRenderer
from generator.plan import Planner
from generator.samplers import ANCESTRAL, SAMPLERS
from generator.schema import CONFIG, FRONT_MATTER, GALLERY, PRESENTATION_KEYS, PUBLISH, SPEC
from generator.specs import DEFAULTS, ImageSpec, parse_image
from tests.helpers import plan_key

#: GENIMG_FUZZ_EXAMPLES=5000 for a longer hunt than CI's.
FUZZ = settings(max_examples=int(os.environ.get("GENIMG_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- strategies ---------------------------------------------------------------------

KEYS = [*SPEC, "images", "defaults", "columns", "title", "date", "tags", "draft", "slug",
        "summary", "extra", "promt", "<<", "models", "source", "grid", "x", "y", "z",
        "prompt_matrix", "limit", "prompt_sr", "compare"]

#: Pieces of YAML, good and bad, that random text is glued together from.
FRAGMENTS = [
    *(f"{k}: " for k in KEYS), "- ", "\n", "\n  ", "\n    ", "\n- ", "  ", ": ", ", ", "&a ",
    "*a", "&b ", "*b", "!!int ", "!!float ", "!!bool ", "!!timestamp ", "!!binary ", "!!set ",
    "!!python/object:os.system ", "!!omap ", "!foo ", "[", "]", "{", "}", "'", '"', "|", ">",
    "? ", "#", "%YAML 1.1\n", "---\n", "...\n", "2022-02-30", "2022-10-30", "-1", "0",
    "4294967296", "512", "500", "0.6", "1.5", ".nan", ".inf", "true", "no", "null", "~",
    "img2img", "restore", "txt2img", "Euler a", "girl", "photo.png", "notes.txt",
    "../../etc/passwd", "/etc/passwd", "\t", "\x00", "\x07", "\u2028", "\x85", "\ufeff",
    "\\", "\\0", "é", "美丽", "x" * 300, "```", "```gallery\n", "<<: *a",
    "1-10 (+2)", "10-100 [5]", "5-1", "0.1-0.3 (+0.1)", "1-9999999999", "a|b|c", "steps", "slider",
]

yaml_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40), st.sampled_from([2**32 - 1, 2**32, 512]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["img2img", "restore", "girl", "Euler a", "anime",
                                           "photo.png", "../x.png", "/etc/passwd", "a\x00b"]),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 1, 1)),
)
data_trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers()),
                        children, max_size=6),
    ),
    max_leaves=25,
)


def dumped(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


gallery_yaml = st.one_of(yaml_text, data_trees.map(dumped))

# --- invariants on errors -------------------------------------------------------------


def check_error(exc: GenimgError, file: str) -> None:
    """One line per problem, each ``file:line: message``, each short."""
    text = str(exc)
    lines = text.split("\n")
    assert len(lines) == (len(exc.errors) if isinstance(exc, ErrorList) else 1)
    pattern = re.compile(rf"^{re.escape(file)}:[1-9][0-9]*: \S")
    for line in lines:
        assert pattern.match(line), line
        assert len(line) < 400, line
        assert not NOT_TEXT.search(line), line  # printable whatever it quotes


@pytest.fixture(scope="module")
def blog() -> Iterator[Path]:
    """A blog folder with a picture, a text file and tricky links next to the posts."""
    root = Path(tempfile.mkdtemp(prefix="genimg-fuzz-"))
    posts = root / "posts"
    posts.mkdir()
    (root / "genimg.yaml").write_text("title: Fuzz\nmodels:\n  default: a/b\n  anime: c/d\n")
    Image.new("RGB", (64, 64), "blue").save(posts / "photo.png")
    (posts / "notes.txt").write_text("not a picture")
    (posts / "sub").mkdir()
    os.symlink("/etc/passwd", posts / "link.png")
    os.symlink(posts / "loop.png", posts / "loop.png")
    os.symlink(posts / "missing.png", posts / "dangling.png")
    yield root
    shutil.rmtree(root)


# --- the fuzz ---------------------------------------------------------------------------

@FUZZ
@given(text=gallery_yaml)
@example(text="[" * 400 + "]" * 400)
@example(text="- prompt: &a [x, x]\n  caption: *a\n")
@example(text="- &a\n  prompt: x\n  caption: *a\n")
@example(text="- prompt: x\n  seed: !!int abc\n")
@example(text="- prompt: x\n  seed: 2022-02-30\n")
@example(text="- prompt: x\n  caption: !!bool maybe\n")
@example(text="defaults: {seed: abc}\nimages: [{prompt: x}]\n")
@example(text="defaults: [1]\nimages: [{prompt: x}]\n")
@example(text="images: {prompt: x}\n")
@example(text="grid: {prompt: x}\nx: {steps: 1-10 (+2)}\ny: {prompt_sr: [x, y]}\n")
@example(text="grid: {prompt: a|b|c}\nprompt_matrix: true\nz: {seed: 1-99999999999}\n")
@example(text="grid: {prompt: x}\nx: {steps: [1-3 [2], 1.5, abc, null]}\n")
@example(text="- {prompt: x, from: y, mode: txt2img}\n")
@example(text="- prompt: x\n  \x07\n")
@example(text="!!float " + "x" * 300 + "\n")
def test_parse_gallery_raises_only_genimg_errors(text):
    try:
        gallery = parse_gallery(text, Location("posts/x.md", 10), {})
    except GenimgError as exc:
        check_error(exc, "posts/x.md")
    else:
        assert gallery.images
        assert all(isinstance(image, ImageSpec) for image in gallery.images)


front_matter = st.one_of(
    yaml_text,
    st.dictionaries(st.sampled_from(["title", "date", "tags", "draft", "slug", "summary",
                                     "extra", "titel"]), data_trees, max_size=5).map(dumped),
    data_trees.map(dumped),
)
bodies = st.lists(st.one_of(
    st.sampled_from(["Some *text*.\n", "> quote\n", "    code\n", "````\n", "```\n", "~~~\n",
                     "```python\n", "[^1]\n\n[^1]: note\n", "| a | b |\n|---|---|\n",
                     "<div>\n", "\r\n", "---\n", "<!--genimg-gallery:0-->\n", ">" * 50 + "\n"]),
    gallery_yaml.map(lambda y: f"```gallery\n{y}\n```\n"),
), max_size=5).map("".join)


@FUZZ
@given(meta=front_matter, body=bodies, raw=st.binary(max_size=30))
@example(meta="date: 2022-13-45\n", body="", raw=b"")
@example(meta="extra: [1]\n", body="", raw=b"")
@example(meta="title: x\n", body="```gallery\n```\n\n```gallery\n- prompt: a\n```\n", raw=b"")
@example(meta="title: x\n", body="", raw=b"\xff\xfe")
def test_load_post_raises_only_genimg_errors(blog, meta, body, raw):
    path = blog / "posts" / "2022-10-30-fuzz.md"
    path.write_bytes(f"---\n{meta}\n---\n{body}".encode("utf-8", "surrogatepass") + raw)
    try:
        post = load_post(path, {}, "posts/2022-10-30-fuzz.md")
    except GenimgError as exc:
        check_error(exc, "posts/2022-10-30-fuzz.md")
    else:
        assert isinstance(post.html, str)
        assert isinstance(post.date, dt.date)


post_names = st.sampled_from(["2022-10-30-a.md", "2022-13-45-b.md", "c.md", "2022-01-01-.md",
                              "sub/2023-02-03-d.md", "_draft.md", ".hidden.md"])


@FUZZ
@given(posts=st.dictionaries(post_names, st.tuples(front_matter, bodies), max_size=4))
def test_load_posts_raises_only_genimg_errors(posts):
    root = Path(tempfile.mkdtemp(prefix="genimg-fuzz-posts-"))
    try:
        for name, (meta, body) in posts.items():
            path = root / "posts" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"---\n{meta}\n---\n{body}".encode("utf-8", "surrogatepass"))
        try:
            loaded = load_posts(root / "posts", root, {}, drafts=True)
        except GenimgError as exc:
            for line in str(exc).split("\n"):
                assert re.match(r"^posts/\S+\.md:[1-9][0-9]*: \S", line), line
        else:
            assert len({p.slug for p in loaded}) == len(loaded)
    finally:
        shutil.rmtree(root)


config_text = st.one_of(
    yaml_text,
    st.dictionaries(st.sampled_from(["title", "base_url", "per_page", "models", "defaults",
                                     "face_restorer", "publish", "output_dir", "cache_dir",
                                     "device", "dtype", "posts_dir", "bogus"]),
                    data_trees, max_size=5).map(dumped),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)


@FUZZ
@given(text=config_text)
@example(text="models:\n  a: {source: x, revision: 1}\n")
@example(text="face_restorer: {model: a, detection: b, parsing: c, options: [1]}\n")
@example(text="publish: {remote: 1}\n")
@example(text="output_dir: ..\n")
@example(text="*a" + "x" * 500)
@example(text="posts_dir: \"a\\0b\"\n")
def test_load_config_raises_only_genimg_errors(text):
    root = Path(tempfile.mkdtemp(prefix="genimg-fuzz-config-"))
    try:
        (root / "genimg.yaml").write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            load_config(root)
        except GenimgError as exc:
            check_error(exc, "genimg.yaml")
    finally:
        shutil.rmtree(root)


IDS = ["a", "b", "c", "girl"]
FROMS = [*IDS, "photo.png", "notes.txt", "sub", "link.png", "loop.png", "dangling.png",
         "missing.png", "../genimg.yaml", "../../etc/passwd", "/etc/passwd", "a\x00b",
         "x" * 5000, "", "./photo.png", "sub/../photo.png"]

raw_specs = st.fixed_dictionaries(
    {"prompt": st.sampled_from(["a cat", "a dog"])},
    optional={
        "id": st.sampled_from(IDS),
        "mode": st.sampled_from(["txt2img", "img2img", "restore"]),
        "from": st.sampled_from(FROMS),
        "model": st.sampled_from(["default", "anime", "anme", "x/y", "m.safetensors"]),
        "seed": st.integers(min_value=0, max_value=2**32 - 1),
        "restore_faces": st.booleans(),
        "strength": st.sampled_from([0.3, 1]),
    },
)


@FUZZ
@given(raw=st.lists(raw_specs, max_size=8))
@example(raw=[{"prompt": "x", "id": "a", "mode": "img2img", "from": "a"}])
@example(raw=[{"prompt": "x", "id": "a", "mode": "img2img", "from": "b"},
              {"prompt": "x", "id": "b", "mode": "img2img", "from": "a"}])
@example(raw=[{"prompt": "x", "mode": "restore", "from": "loop.png"}])
def test_planner_raises_only_genimg_errors(blog, raw):
    specs = []
    for line, item in enumerate(raw, start=10):
        try:
            specs.append(parse_image(item, Location("posts/2022-10-30-fuzz.md", line)))
        except GenimgError as exc:
            check_error(exc, "posts/2022-10-30-fuzz.md")
    resolver = ModelResolver(load_config(blog), preview=True)
    try:
        plan = Planner(blog, resolver).plan(specs)
    except GenimgError as exc:
        check_error(exc, "posts/2022-10-30-fuzz.md")
    else:
        assert set(plan.shown_key) == {s.location for s in specs}
        order = list(plan.nodes)
        for node in plan.nodes.values():  # parents come before their children
            if node.parent:
                assert order.index(node.parent) < order.index(node.key)


# --- properties of the spec parser and the cache key ----------------------------------

PIXEL_VALUES: dict[str, list[Any]] = {
    "prompt": ["a cat", "a dog"], "negative_prompt": ["", "blurry"], "seed": [1, 2**32 - 1],
    "sampler": ["Euler a", "DDIM"], "steps": [20, 21], "cfg": [7, 7.5], "width": [512, 64],
    "height": [512, 4096], "strength": [0.75, 0.5], "face_weight": [0.5, 1],
    "prompt_syntax": ["plain", "a1111"], "clip_skip": [1, 2], "noise": ["cpu", "nv"],
    "subseed": [0, 5], "subseed_strength": [0, 0.5], "eta_noise_seed_delta": [0, 31337],
}


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(["txt2img", "img2img", "restore"]))
    spec: dict[str, Any] = {"mode": mode}
    if mode != "txt2img":
        spec["from"] = draw(st.sampled_from(["girl", "photo.png"]))
    keys = draw(st.lists(st.sampled_from(list(PIXEL_VALUES)), unique=True))
    for key in keys:
        spec[key] = draw(st.sampled_from(PIXEL_VALUES[key]))
    if mode != "restore":
        spec.setdefault("prompt", draw(st.sampled_from(PIXEL_VALUES["prompt"])))
        if draw(st.booleans()):
            spec["restore_faces"] = draw(st.booleans())
    return spec


def key_of(raw: dict[str, Any], model_fp: str = "m1", source: str = "s1",
           restorer_fp: str = "r1") -> str:
    """Parse ``raw`` and hash it the way the plan does."""
    spec = parse_image(raw, Location("posts/x.md", 5))
    return plan_key(spec, model_fp, source if spec.source else None, restorer_fp)


def _pixel_keys(mode: str, restore_faces: bool) -> list[str]:
    if mode == "restore":
        return ["face_weight"]
    keys = ["prompt", "negative_prompt", "seed", "sampler", "steps", "cfg", "width", "height",
            "prompt_syntax", "clip_skip", "noise", "subseed", "subseed_strength",
            "eta_noise_seed_delta"]
    if mode == "img2img":
        keys.append("strength")
    if restore_faces:
        keys.append("face_weight")
    return keys


@FUZZ
@given(spec=valid_specs())
def test_key_changes_with_every_pixel_key_and_nothing_else(spec):
    base = key_of(spec)
    full = parse_image(spec, Location("posts/x.md", 5))
    pixel = _pixel_keys(full.mode, full.restore_faces)
    if not full.subseed_strength:  # a variation seed of strength 0 does nothing
        pixel = [key for key in pixel if key != "subseed"]
    if full.sampler not in ANCESTRAL:  # nor does ENSD without fresh noise at each step
        pixel = [key for key in pixel if key != "eta_noise_seed_delta"]
    for key, values in PIXEL_VALUES.items():
        current = getattr(full, key)
        other = next(v for v in values if v != current)
        changed = key_of({**spec, key: other})
        if key in pixel:
            assert changed != base, f"{key} must change the key"
        else:
            assert changed == base, f"{key} must not change the key of a {full.mode}"
    # what the spec is made from: the model, the source picture, the face restorer
    if full.mode == "restore":
        assert key_of(spec, model_fp="m2") == base
        assert key_of(spec, restorer_fp="r2") != base
    else:
        assert key_of(spec, model_fp="m2") != base
    if full.mode != "txt2img":
        assert key_of(spec, source="s2") != base
    assert key_of({**spec, "model": "anime"}, model_fp="m1") == base  # the name is no pixel


def test_every_pixel_key_is_covered():
    """If a key is added to specs, this file must learn whether it changes pixels."""
    # loras, vae: keyed by their files' hashes, like model (tests/test_loras.py);
    # schedule_type is valid with some samplers only: tests/test_schedules.py has its keys;
    # hires, refiner, refiner_switch: tests/test_passes.py
    # sampling is kept for some samplers only: tests/test_ksamplers.py has its keys
    known = set(PIXEL_VALUES) | set(PRESENTATION_KEYS) | {"mode", "from", "model", "restore_faces",
                                                          "loras", "vae", "schedule_type", "hires",
                                                          "refiner", "refiner_switch", "sampling"}
    assert known == set(SPEC)
    assert set(DEFAULTS) <= set(SPEC)
    assert set(PIXEL_VALUES["sampler"]) <= set(SAMPLERS)


@FUZZ
@given(spec=valid_specs())
def test_derived_seed_is_stable_and_ignores_names(spec):
    spec.pop("seed", None)
    first = parse_image(spec, Location("posts/x.md", 5))
    again = parse_image({**spec, "id": "zz", "caption": "c"}, Location("posts/y.md", 9))
    assert first.seed == again.seed
    assert 0 <= first.seed <= 2**32 - 1
    if "from" in spec:  # renaming what it comes from must not change its pixels
        renamed = parse_image({**spec, "from": spec["from"] + "-renamed"},
                              Location("posts/x.md", 5))
        assert renamed.seed == first.seed


@FUZZ
@given(chain=st.lists(st.sampled_from([0.3, 0.6, 1]), min_size=1, max_size=4),
       restore=st.booleans(), seeded=st.booleans())
def test_renaming_ids_changes_no_key(blog, chain, restore, seeded):
    """Ids are presentation: renaming one (and every from: naming it) re-renders nothing."""

    def specs(prefix: str) -> list[ImageSpec]:
        out = [parse_image({"id": f"{prefix}0", "prompt": "root", "restore_faces": restore},
                           Location("posts/2022-10-30-a.md", 1))]
        for i, strength in enumerate(chain, start=1):
            raw = {"id": f"{prefix}{i}", "mode": "img2img", "from": f"{prefix}{i - 1}",
                   "prompt": "next", "strength": strength}
            if seeded:
                raw["seed"] = i
            out.append(parse_image(raw, Location("posts/2022-10-30-a.md", 1 + i)))
        return out

    def keys(prefix: str) -> list[str]:
        resolver = ModelResolver(load_config(blog), preview=True)
        plan = Planner(blog, resolver).plan(specs(prefix))
        return [plan.shown_key[s.location] for s in specs(prefix)]

    assert keys("first-") == keys("other-")


@pytest.mark.parametrize("seed", [{"seed": 1}, {}])
def test_restore_faces_adds_a_step_and_keeps_the_base(blog, seed):
    resolver = ModelResolver(load_config(blog), preview=True)
    plain = parse_image({"prompt": "x", **seed}, Location("posts/a.md", 1))
    restored = parse_image({"prompt": "x", "restore_faces": True, "face_weight": 0.9, **seed},
                           Location("posts/a.md", 2))
    plan = Planner(blog, resolver).plan([plain, restored])
    shown_plain, shown_restored = plan.shown_key[plain.location], plan.shown_key[restored.location]
    assert shown_plain != shown_restored
    assert plan.nodes[shown_restored].parent == shown_plain  # toggling it never re-diffuses


def test_fragments_cover_every_spec_key():
    """The random YAML is glued from KEYS: every key of a gallery block and of front matter
    must be there too (those of an image are, by construction), or the fuzz never writes it."""
    assert {*GALLERY, *FRONT_MATTER} <= set(KEYS)


# --- issue 19: text that is not text, folders, deep chains ---------------------------------

#: Text with what is no text mixed in: lone surrogates, C0 and C1 controls, DEL.
hostile_text = st.text(alphabet=st.one_of(
    st.characters(categories=["Cs", "Cc"]), st.sampled_from("ab é美\t\n#[]:-")), max_size=12)


def _string_keys(table: Any) -> list[str]:
    return [name for name, key in table.items() if str in key.types]


def _assert_refused_if_not_text(value: str, call: Any, file: str) -> None:
    """``call()`` refuses ``value`` when it is not text (naming file and line), and what
    it reports is one printable line per problem."""
    try:
        call()
    except GenimgError as exc:
        check_error(exc, file)
        if text_problem(value):
            assert "which is not text" in str(exc), str(exc)
    else:
        assert text_problem(value) is None, repr(value)


@FUZZ
@given(key=st.sampled_from(_string_keys(SPEC)), value=hostile_text)
def test_every_spec_string_refuses_what_is_not_text(blog, key, value):
    spec = {"prompt": "x", "mode": "restore" if key == "from" else "txt2img", key: value}
    text = "```gallery\n- " + "\n  ".join(f"{k}: {json.dumps(v)}" for k, v in spec.items())
    path = blog / "posts" / "2022-10-30-text.md"
    path.write_text(f"---\ntitle: T\n---\n\n{text}\n```\n", encoding="utf-8")
    if key == "from":
        (blog / "posts" / "x.png").unlink(missing_ok=True)
    _assert_refused_if_not_text(value, lambda: load_post(path, {}, "posts/p.md"), "posts/p.md")


@FUZZ
@given(key=st.sampled_from([*_string_keys(FRONT_MATTER), "tags", "extra"]), value=hostile_text)
def test_every_front_matter_string_refuses_what_is_not_text(blog, key, value):
    shown = {"tags": [value], "extra": {"k": [value]}}.get(key, value)
    path = blog / "posts" / "2022-10-30-front.md"
    path.write_text(f"---\n{key}: {json.dumps(shown)}\n---\n\nText.\n", encoding="utf-8")
    _assert_refused_if_not_text(value, lambda: load_post(path, {}, "posts/p.md"), "posts/p.md")


CONFIG_STRINGS = [(None, k) for k in _string_keys(CONFIG)] + [
    ("publish", k) for k in _string_keys(PUBLISH)] + [("models", "m")]


@FUZZ
@given(where=st.sampled_from(CONFIG_STRINGS), value=hostile_text)
def test_every_config_string_refuses_what_is_not_text(where, value):
    section, key = where
    data = {key: value} if section is None else {section: {key: value}}
    root = Path(tempfile.mkdtemp(prefix="genimg-fuzz-text-"))
    try:
        (root / "genimg.yaml").write_text(json.dumps(data), encoding="utf-8")
        _assert_refused_if_not_text(value, lambda: load_config(root), "genimg.yaml")
    finally:
        shutil.rmtree(root)


@FUZZ
@given(title=st.text(max_size=20).filter(lambda t: t.strip() and not text_problem(t)),
       body=st.text(alphabet=st.one_of(st.characters(codec="utf-8"),
                                       st.sampled_from("&#12;\x0b\x0c\x1b")), max_size=60))
def test_feed_is_always_xml(blog, title, body):
    path = blog / "posts" / "2022-10-30-feed.md"
    path.write_text(f"---\ntitle: {json.dumps(title)}\n---\n\n{body}\n", encoding="utf-8",
                    errors="surrogatepass")
    try:
        post = load_post(path, {}, "posts/p.md")
    except GenimgError as exc:
        check_error(exc, "posts/p.md")
        return
    renderer = PageRenderer(load_config(blog), {})
    page = next(p for p in renderer.pages([post]) if p.path == "feed.xml")
    ElementTree.fromstring(renderer.render(page)[0])


FOLDER_VALUES = [".", "..", "/", "~", "~/elsewhere", "posts", "site", ".genimg", "theme",
                 "theme/static", "theme/static/site", "site/x", "posts/x", ".genimg/x",
                 "../elsewhere", "sub/../site", "theme/templates"]


@FUZZ
@given(folders=st.dictionaries(st.sampled_from(["posts_dir", "output_dir", "cache_dir",
                                                "theme_dir"]), st.sampled_from(FOLDER_VALUES)))
def test_every_config_folder_relation(folders, tmp_path_factory):
    """Whatever the four folders are, the config is refused (one line naming one of them)
    or none can harm another: nothing the build deletes or copies holds the blog, the
    posts, the cache or the theme, and no folder reaches above the blog to walk."""
    base = tmp_path_factory.mktemp("folders")
    root = base / "blog"
    root.mkdir()
    (root / "genimg.yaml").write_text(json.dumps(folders))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HOME", str(base / "home"))
            config = load_config(root)
    except GenimgError as exc:
        check_error(exc, "genimg.yaml")
        assert any(key in str(exc) for key in ("posts_dir", "output_dir", "cache_dir",
                                               "theme_dir")), str(exc)
        return
    posts, out = config.posts_dir.resolve(), config.output_dir.resolve()
    cache, theme = config.cache_dir.resolve(), config.theme_dir.resolve()
    assert all("~" not in p.parts for p in (posts, out, cache, theme))
    assert not root.is_relative_to(out) and not root.is_relative_to(cache)
    for other in (posts, cache, theme):
        assert not other.is_relative_to(out)
    assert not posts.is_relative_to(cache)
    for folder in (posts, theme):
        assert folder == root or not root.is_relative_to(folder)
    for folder in (out, cache):
        assert not folder.is_relative_to(theme / "static")


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 25))
@given(length=st.integers(min_value=1, max_value=1500), data=st.data())
def test_deep_chains_plan_or_fail_clearly(blog, length, data):
    """A ``from:`` chain of any length, listed in any order, with a cycle or a broken link
    anywhere: planned, or refused with one line per problem (never a RecursionError)."""
    specs = []
    order = data.draw(st.permutations(range(length))) if length < 50 else \
        data.draw(st.sampled_from([list(range(length)), list(reversed(range(length)))]))
    broken = data.draw(st.sampled_from([None, "model", "cycle"]))
    bad = data.draw(st.integers(min_value=0, max_value=length - 1))
    for line, i in enumerate(order, start=10):
        raw: dict[str, Any] = {"id": f"c{i}", "prompt": "p"}
        if i:
            raw.update({"mode": "img2img", "from": f"c{i - 1}"})
        if i == bad and broken == "model":
            raw["model"] = "nope"
        if i == 0 and broken == "cycle":
            raw.update({"mode": "img2img", "from": f"c{bad}"})
        specs.append(parse_image(raw, Location("posts/2022-10-30-fuzz.md", line)))
    try:
        plan = Planner(blog, ModelResolver(load_config(blog), preview=True)).plan(specs)
    except GenimgError as exc:
        check_error(exc, "posts/2022-10-30-fuzz.md")
        assert broken is not None
    else:
        assert broken is None and len(plan.nodes) == length
