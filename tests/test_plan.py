"""The plan: site-wide from: references, restore split, errors, dependency order."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from generator.build import BuildOptions, load_site
from generator.errors import GenimgError
from tests.helpers import MakeBlog


def plan_of(root: Path):
    return load_site(root, BuildOptions(preview=True)).plan


def test_from_across_posts_and_topological_order(make_blog: MakeBlog) -> None:
    root = make_blog({
        "2022-01-01-a.md": "```gallery\n- id: base\n  prompt: photo\n```\n",
        "2022-01-02-b.md": "```gallery\n- mode: img2img\n  from: base\n  prompt: anime\n"
                           "  restore_faces: true\n```\n",
    })
    plan = plan_of(root)
    order = list(plan.nodes)
    base, child = plan.id_key["base"], plan.shown_key[next(
        loc for loc in plan.shown_key if loc.file.endswith("b.md"))]
    raw = plan.nodes[child].parent
    assert plan.nodes[child].spec.mode == "restore"
    assert plan.nodes[raw].parent == base
    assert order.index(base) < order.index(raw) < order.index(child)
    assert plan.descendants(base) == {raw, child}


def test_identical_specs_share_one_node(make_blog: MakeBlog) -> None:
    root = make_blog({"2022-01-01-a.md":
                      "```gallery\n- prompt: photo\n  seed: 1\n- prompt: photo\n  seed: 1\n```\n"})
    plan = plan_of(root)
    assert len(plan.nodes) == 1 and len(plan.shown_key) == 2


def test_from_a_user_file(make_blog: MakeBlog) -> None:
    gallery = "- mode: img2img\n  from: pics/photo.png\n  prompt: anime\n"
    root = make_blog({"2022-01-01-a.md": f"```gallery\n{gallery}```\n"})
    (root / "posts" / "pics").mkdir()
    Image.new("RGB", (64, 64), "red").save(root / "posts" / "pics" / "photo.png")
    plan = plan_of(root)
    (node,) = plan.nodes.values()
    assert node.file == root / "posts" / "pics" / "photo.png"
    first = node.key
    Image.new("RGB", (64, 64), "blue").save(root / "posts" / "pics" / "photo.png")
    assert next(iter(plan_of(root).nodes)) != first  # the file's content is in the key


@pytest.mark.parametrize(
    ("gallery", "message"),
    [
        ("- mode: img2img\n  from: nothing\n  prompt: x\n",
         "posts/2022-01-01-a.md:3: 'from: nothing' is neither an image id nor a file"),
        ("- mode: img2img\n  from: ../../../etc/passwd\n  prompt: x\n",
         "points outside the blog folder"),
        ("- mode: img2img\n  from: /etc/hostname\n  prompt: x\n",
         "points outside the blog folder"),
        ("- id: a\n  mode: img2img\n  from: b\n  prompt: x\n"
         "- id: b\n  mode: img2img\n  from: a\n  prompt: y\n", "form a cycle: a -> b -> a"),
        ("- id: a\n  prompt: x\n- id: a\n  prompt: y\n", "duplicate image id 'a'"),
        ("- mode: img2img\n  from: 2022-01-01-a.md\n  prompt: x\n", "is not a readable image"),
        ("- prompt: x\n  model: animee\n", "unknown model 'animee'"),
    ],
)
def test_plan_errors(make_blog: MakeBlog, gallery: str, message: str) -> None:
    root = make_blog({"2022-01-01-a.md": f"```gallery\n{gallery}```\n"},
                     config="models:\n  anime: some/hub-model\n")
    with pytest.raises(GenimgError) as info:
        plan_of(root)
    assert message in str(info.value)
    assert str(info.value).startswith("posts/2022-01-01-a.md:")
