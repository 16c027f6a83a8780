"""Issue 20: an unchanged post's keys come from the plan memo, and nothing that shapes a
key can leave a stale one there.

Every check plans the blog twice, with the memo and without (a fresh ``Planner``), and
asks for the same keys and the same hashed dictionaries; then says which pictures'
keys were reused.
"""

from __future__ import annotations

import os
from pathlib import Path

import generator.state
from generator.build import BuildMemory, BuildOptions, LoadedSite, build_site, load_site
from generator.hashing import canonical_key
from generator.models import ModelResolver
from generator.plan import Planner
from tests.helpers import MakeBlog

CONFIG = """\
    title: Memo
    base_url: /
    models:
      default: model.safetensors
      other: other.safetensors
    """


def picture(prompt: str, extra: str = "") -> str:
    return f"- prompt: {prompt}\n  seed: 1\n  width: 64\n  height: 64\n  steps: 2\n{extra}"


def post(day: int, gallery: str, body: str = "Text.") -> str:
    return f"---\ntitle: Post {day}\ndate: 2022-10-{day:02d}\n---\n\n{body}\n\n" \
           f"```gallery\n{gallery}```\n"


def blog(make_blog: MakeBlog, posts: dict[str, str]) -> Path:
    root = make_blog({}, config=CONFIG)
    (root / "model.safetensors").write_bytes(b"model one" * 100)
    (root / "other.safetensors").write_bytes(b"model two" * 100)
    write(root, posts)
    return root


def write(root: Path, posts: dict[str, str]) -> None:
    for name, text in posts.items():
        (root / "posts" / name).write_text(text, encoding="utf-8")


def planned(root: Path) -> tuple[LoadedSite, set[str]]:
    """Plan with the memo (then save it, as a build does); check the keys against a plan
    made without it; return the site and the prompts whose keys were reused."""
    site = load_site(root)
    fresh = Planner(site.config.root, ModelResolver(site.config)).plan(site.images)
    assert site.plan.shown_key == fresh.shown_key
    assert list(site.plan.nodes) == list(fresh.nodes)
    for key, node in site.plan.nodes.items():
        assert node.key_dict() == fresh.nodes[key].fields
        assert canonical_key(node.key_dict()) == key
    site.post_cache.save()
    reused = {node.shown.prompt for node in site.plan.nodes.values() if not node.fields}
    return site, reused


A = "2022-10-01-a.md"
B = "2022-10-02-b.md"
TWO = {A: post(1, picture("apple") + picture("pear")), B: post(2, picture("bird"))}


def test_unchanged_posts_reuse_their_keys_and_an_edited_one_is_planned_again(
        make_blog: MakeBlog) -> None:
    root = blog(make_blog, TWO)
    assert planned(root)[1] == set()  # nothing remembered yet
    assert planned(root)[1] == {"apple", "pear", "bird"}
    write(root, {A: post(1, picture("apple") + picture("pear"), body="Edited text.")})
    assert planned(root)[1] == {"bird"}  # the text of A changed: its keys are made anew
    write(root, {A: post(1, picture("apple") + picture("plum"))})
    site, reused = planned(root)
    assert reused == {"bird"}
    assert "plum" in {n.shown.prompt for n in site.plan.nodes.values()}


def test_gallery_and_site_defaults_change_keys(make_blog: MakeBlog) -> None:
    root = blog(make_blog, TWO)
    before = planned(root)[0].plan.shown_key
    planned(root)
    write(root, {B: post(2, "defaults:\n  cfg: 5\nimages:\n" + "".join(
        "  " + line + "\n" for line in picture("bird").splitlines()))})
    site, reused = planned(root)
    assert reused == {"apple", "pear"}
    assert set(site.plan.shown_key.values()) != set(before.values())
    config = (root / "genimg.yaml").read_text(encoding="utf-8")
    (root / "genimg.yaml").write_text(config + "defaults:\n  sampler: Euler\n", "utf-8")
    site, reused = planned(root)
    assert reused == set()
    assert not set(site.plan.shown_key.values()) & set(before.values())


def test_model_file_and_model_mapping_change_keys(make_blog: MakeBlog) -> None:
    root = blog(make_blog, TWO)
    first = planned(root)[0].plan.shown_key
    planned(root)
    model = root / "model.safetensors"
    model.write_bytes(b"retrained" * 100)
    os.utime(model, ns=(1, 1))  # a new mtime, whatever the clock's resolution
    site, reused = planned(root)
    assert reused == set()
    assert not set(site.plan.shown_key.values()) & set(first.values())
    second = site.plan.shown_key
    config = (root / "genimg.yaml").read_text(encoding="utf-8")
    (root / "genimg.yaml").write_text(
        config.replace("default: model.safetensors", "default: other.safetensors"), "utf-8")
    site, reused = planned(root)
    assert reused == set()
    assert not set(site.plan.shown_key.values()) & set(second.values())


def test_speed_ups_that_change_bits_change_keys(make_blog: MakeBlog) -> None:
    root = blog(make_blog, TWO)
    first = planned(root)[0].plan.shown_key
    planned(root)
    config = (root / "genimg.yaml").read_text(encoding="utf-8")
    (root / "genimg.yaml").write_text(config + "speed:\n  channels_last: true\n", "utf-8")
    site, reused = planned(root)
    assert reused == set()
    assert not set(site.plan.shown_key.values()) & set(first.values())
    assert planned(root)[1] == {"apple", "pear", "bird"}


def test_a_parent_in_another_post_changes_the_child_key(make_blog: MakeBlog) -> None:
    child = picture("bird, painted", "  mode: img2img\n  from: base\n  strength: 0.5\n")
    root = blog(make_blog, {A: post(1, picture("bird", "  id: base\n")), B: post(2, child)})
    planned(root)
    site, reused = planned(root)
    assert reused == {"bird", "bird, painted"}
    old_child = site.plan.id_key["base"], site.plan.shown_key
    write(root, {A: post(1, picture("a blue bird", "  id: base\n"))})
    site, reused = planned(root)
    assert reused == set()  # B's text is the same, but the picture it reads is not
    assert site.plan.id_key["base"] != old_child[0]
    assert set(site.plan.shown_key.values()).isdisjoint(old_child[1].values())


def test_a_source_file_next_to_the_post_changes_the_key(make_blog: MakeBlog) -> None:
    from PIL import Image

    spec = picture("from a photo", "  mode: img2img\n  from: photo.png\n  strength: 0.5\n")
    root = blog(make_blog, {A: post(1, spec)})
    Image.new("RGB", (8, 8), "red").save(root / "posts" / "photo.png")
    planned(root)
    key = planned(root)[0].plan.shown_key
    Image.new("RGB", (8, 8), "blue").save(root / "posts" / "photo.png")
    os.utime(root / "posts" / "photo.png", ns=(1, 1))
    site, reused = planned(root)
    assert reused == set()
    assert site.plan.shown_key != key


def test_a_damaged_memo_is_planned_again(make_blog: MakeBlog) -> None:
    root = blog(make_blog, TWO)
    planned(root)
    site = load_site(root)
    site.post_cache._plans.clear()  # what this planning remembered: not saved
    for file in site.post_cache._entries:
        entry = site.post_cache._entries[file]
        entry["plan"] = {slot: made_of[:-64] + "not a key"
                         for slot, made_of in entry["plan"].items()}
        site.post_cache._new[site.post_cache._file(file)] = entry
    site.post_cache.save()
    assert planned(root)[1] == set()  # planned again, and right (``planned`` checks)
    assert planned(root)[1] == {"apple", "pear", "bird"}


def test_serve_memory_parses_only_the_changed_post(make_blog: MakeBlog, monkeypatch) -> None:
    root = blog(make_blog, TWO)
    memory = BuildMemory()
    options = BuildOptions(preview=True)
    build_site(root, options, memory=memory)
    parsed: list[str] = []
    read: list[Path] = []
    load_post, read_state = generator.state.load_post, generator.state.read_state
    monkeypatch.setattr(generator.state, "load_post",
                        lambda path, *a: parsed.append(path.name) or load_post(path, *a))
    monkeypatch.setattr(generator.state, "read_state",
                        lambda path, context: read.append(path) or read_state(path, context))
    build_site(root, options, memory=memory)
    assert parsed == [] and [p for p in read if p.parent.name == "posts"] == []
    write(root, {B: post(2, picture("bird"), body="Saved again.")})
    report = build_site(root, options, memory=memory)
    assert parsed == [B] and report.files_written >= 1
    html = (root / "site" / "posts" / "b" / "index.html").read_text(encoding="utf-8")
    assert "Saved again." in html
