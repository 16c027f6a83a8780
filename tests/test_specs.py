"""The spec parser and the cache key: validation, defaults, and key properties."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.errors import GenimgError, Location
from generator.hashing import canonical_key, derive_seed
from generator.plan import key_fields
from generator.samplers import SAMPLERS
from generator.schema import PRESENTATION_KEYS, SEED_MAX
from generator.specs import parse_image
from tests.helpers import plan_key

WHERE = Location("posts/a.md", 10)
MODEL_FP = "sha256:model"
RESTORER_FP = "sha256:gfpgan"


def key_of(raw: dict[str, Any], source: str | None = None) -> str:
    spec = parse_image(raw, WHERE)
    return canonical_key(key_fields(spec, MODEL_FP, source, RESTORER_FP))


def test_defaults_follow_a1111() -> None:
    spec = parse_image({"prompt": "a cat", "seed": 1}, WHERE)
    assert (spec.sampler, spec.steps, spec.cfg, spec.width, spec.height) == (
        "Euler a", 20, 7.0, 512, 512)
    assert spec.mode == "txt2img" and spec.model == "default" and not spec.restore_faces


def test_missing_seed_is_derived_deterministically() -> None:
    a = parse_image({"prompt": "a cat"}, WHERE)
    b = parse_image({"prompt": "a cat"}, Location("other.md", 99))
    c = parse_image({"prompt": "a dog"}, WHERE)
    assert a.seed == b.seed != c.seed
    assert 0 <= a.seed <= SEED_MAX
    assert derive_seed({"x": 1}) == derive_seed({"x": 1})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"prompt": "x", "sead": 1}, "unknown image key 'sead' (did you mean 'seed'?)"),
        ({"prompt": "x", "seed": -1}, "'seed' must be between 0 and 4294967295"),
        ({"prompt": "x", "seed": 2**32}, "'seed' must be between 0 and 4294967295"),
        ({"prompt": "x", "seed": "12"}, "'seed' must be an integer"),
        ({"prompt": "x", "seed": True}, "'seed' must be an integer"),
        ({"prompt": "x", "width": 500}, "'width' must be a multiple of 8"),
        ({"prompt": "x", "strength": 0}, "'strength' must be in (0, 1]"),
        ({"prompt": "x", "strength": 1.5}, "'strength' must be in (0, 1]"),
        ({"prompt": "x", "face_weight": 2}, "'face_weight' must be between 0 and 1"),
        ({"prompt": "x", "sampler": "Euler A"}, "unknown sampler 'Euler A' (did you mean"),
        ({"prompt": "x", "mode": "inpaint"}, "unknown mode 'inpaint'"),
        ({"prompt": "x", "mode": "img2img"}, "mode 'img2img' needs 'from:'"),
        ({"prompt": "x", "from": "a"}, "'from:' needs 'mode: img2img'"),
        ({"seed": 3}, "needs a 'prompt:'"),
        ({"mode": "restore", "from": "a", "restore_faces": True}, "implied by 'mode: restore'"),
        ({"prompt": "x", "id": "two words"}, "'id' must be one word"),
        ({"prompt": None}, "'prompt' has no value"),
        ("just a string", "an image must be a mapping"),
    ],
)
def test_invalid_specs_name_the_problem(raw: Any, message: str) -> None:
    with pytest.raises(GenimgError) as info:
        parse_image(raw, WHERE)
    assert message in str(info.value)
    assert str(info.value).startswith("posts/a.md:")


def test_error_names_the_line_of_the_key() -> None:
    with pytest.raises(GenimgError) as info:
        parse_image({"prompt": "x", "steps": 0}, WHERE, key_lines={"steps": 14})
    assert str(info.value).startswith("posts/a.md:14: 'steps' must be between")


def test_defaults_merge_under_the_image() -> None:
    spec = parse_image({"prompt": "x", "steps": 30}, WHERE, defaults={"steps": 10, "cfg": 5})
    assert spec.steps == 30 and spec.cfg == 5.0


# --- cache key properties -------------------------------------------------------------

#: Text as a value may hold it: no lone surrogates, no control characters (issue 19).
TEXT = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
prompts = st.text(TEXT, min_size=1, max_size=40).filter(lambda s: s.strip())
base_specs = st.fixed_dictionaries(
    {"prompt": prompts, "seed": st.integers(0, SEED_MAX)},
    optional={
        "negative_prompt": st.text(TEXT, max_size=20),
        "sampler": st.sampled_from(sorted(SAMPLERS)),
        "steps": st.integers(1, 150),
        "cfg": st.floats(0, 30, allow_nan=False),
        "width": st.integers(8, 128).map(lambda n: n * 8),
        "height": st.integers(8, 128).map(lambda n: n * 8),
        "restore_faces": st.booleans(),
        "face_weight": st.floats(0, 1, allow_nan=False),
    },
)
presentation = st.fixed_dictionaries(
    {}, optional={"id": st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
                  "caption": st.text(TEXT, max_size=20), "alt": st.text(TEXT, max_size=20)})


@settings(max_examples=200, deadline=None)
@given(base_specs, presentation, st.randoms(use_true_random=False))
def test_key_ignores_presentation_and_key_order(raw: dict, extra: dict, rnd: random.Random
                                                ) -> None:
    items = list({**raw, **extra}.items())
    rnd.shuffle(items)
    assert key_of(raw) == key_of(dict(items))
    assert set(PRESENTATION_KEYS) <= {"id", "caption", "alt"}  # ``presentation`` draws them all


PIXEL_CHANGES: dict[str, Any] = {
    "prompt": lambda v: v + "!",
    "negative_prompt": lambda v: v + "ugly",
    "seed": lambda v: (v + 1) % (SEED_MAX + 1),
    "sampler": lambda v: "DDIM" if v != "DDIM" else "Euler",
    "steps": lambda v: v % 150 + 1,
    "cfg": lambda v: v + 0.5,
    "width": lambda v: 64 if v != 64 else 72,
    "height": lambda v: 64 if v != 64 else 72,
    "model": lambda v: v + "-2",
    "restore_faces": lambda v: not v,
}


@settings(max_examples=100, deadline=None)
@given(base_specs, st.sampled_from(sorted(PIXEL_CHANGES)))
def test_key_changes_with_every_pixel_key(raw: dict, field: str) -> None:
    spec = parse_image(raw, WHERE)
    changed = replace(spec, **{field: PIXEL_CHANGES[field](getattr(spec, field))})
    model_fp = MODEL_FP + ("-2" if field == "model" else "")

    assert plan_key(spec, MODEL_FP, None, RESTORER_FP) != plan_key(
        changed, model_fp, None, RESTORER_FP)


@settings(max_examples=100, deadline=None)
@given(st.floats(0.01, 1), st.floats(0.01, 1), st.text(min_size=1, max_size=10))
def test_img2img_key_follows_strength_and_source(s1: float, s2: float, src: str) -> None:
    raw = {"prompt": "x", "mode": "img2img", "from": "a", "strength": s1}
    assert key_of(raw, "k1") != key_of(raw, "k2")
    if s1 != s2:
        assert key_of(raw, "k1") != key_of({**raw, "strength": s2}, "k1")


def test_restore_key_ignores_prompt_fields_but_not_weight() -> None:
    base = {"mode": "restore", "from": "a", "face_weight": 0.5}
    assert key_of(base, "k") == key_of({**base, "caption": "c"}, "k")
    assert key_of(base, "k") != key_of({**base, "face_weight": 0.6}, "k")
    assert key_of(base, "k") != key_of(base, "other")


def test_model_fingerprint_is_in_the_key() -> None:
    spec = parse_image({"prompt": "x", "seed": 1}, WHERE)
    assert canonical_key(key_fields(spec, "a", None, None)) != canonical_key(
        key_fields(spec, "b", None, None))
