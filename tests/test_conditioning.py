"""A1111 prompts as embeddings (``render/conditioning.py``): 75-token chunks, BREAK,
weights, clip_skip, and the promise that a plain short prompt renders as before."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generator.render.conditioning import CHUNK, framed, split_chunks
from generator.render.diffusion import DiffusionRenderer
from tests.test_diffusion import make_config, max_diff, pixels, render_all, task
from tests.tinymodels import tiny_model  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")

COMMA = 9


def run(n: int, weight: float = 1.0, start: int = 100) -> tuple[list[int], float]:
    return list(range(start, start + n)), weight


# --- chunks (pure) --------------------------------------------------------------------


def test_a_long_prompt_is_cut_every_75_tokens():
    chunks = split_chunks([run(80)], COMMA)
    assert [len(tokens) for tokens, _ in chunks] == [75, 5]
    assert chunks[0][0] + chunks[1][0] == list(range(100, 180))


def test_words_after_a_late_comma_move_to_the_next_chunk():
    tokens = [*range(100, 160), COMMA, *range(200, 230)]  # a comma at 60: 15 from the end
    chunks = split_chunks([(tokens, 1.2)], COMMA)
    assert chunks[0][0] == tokens[:61] and chunks[1][0] == tokens[61:]
    assert chunks[1][1] == [1.2] * len(tokens[61:])
    early = [*range(100, 150), COMMA, *range(200, 240)]  # 25 from the end: no move
    assert [len(t) for t, _ in split_chunks([(early, 1.0)], COMMA)] == [75, 16]


def test_break_starts_a_chunk_and_an_empty_prompt_is_one_chunk():
    assert split_chunks([run(3), ([], -1.0), run(2)], COMMA) == [
        ([100, 101, 102], [1.0] * 3), ([100, 101], [1.0] * 2)]
    assert split_chunks([([], 1.0)], COMMA) == [([], [])]
    assert len(split_chunks([run(75)], COMMA)) == 1
    assert framed(([5, 6], [1.5, 1.0]), 1, 2, 0) == (
        [1, 5, 6, 2, *[0] * 73], [1.0, 1.5, 1.0, 1.0, *[1.0] * 73])


@given(st.lists(st.tuples(st.lists(st.integers(0, 20), max_size=90),
                          st.sampled_from([1.0, 1.1, -1.0])), max_size=6))
def test_chunks_keep_every_token_in_order(pieces):
    pieces = [(ids, w) if w != -1.0 else ([], w) for ids, w in pieces]
    chunks = split_chunks(pieces, COMMA)
    assert [t for tokens, _ in chunks for t in tokens] == [t for ids, _ in pieces for t in ids]
    assert all(len(tokens) <= CHUNK and len(tokens) == len(w) for tokens, w in chunks)
    assert chunks


# --- embeddings and pictures with the tiny model (slow) -------------------------------


@pytest.fixture(scope="module")
def setup(tiny_model, tmp_path_factory):  # noqa: F811
    from generator.models import ModelResolver

    root = tmp_path_factory.mktemp("cond")
    renderer = DiffusionRenderer(make_config(root, tiny_model, batch_size=4))
    ref = ModelResolver(make_config(root, tiny_model)).model("default")
    pipe = renderer._activate(ref).txt2img
    yield renderer, ref, pipe
    renderer.close()


@pytest.mark.slow
@pytest.mark.render
@pytest.mark.parametrize("clip_skip", [1, 2])
def test_a_plain_short_prompt_is_embedded_as_diffusers_does(setup, clip_skip):
    import torch

    from generator.render.conditioning import encode

    _, _, pipe = setup
    prompt = "high quality photo, beautiful girl, red cheek, smile"
    ours = encode(prompt, pipe, clip_skip)
    theirs, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
    if clip_skip > 1:  # diffusers' own clip_skip needs a ``text_model`` transformers 5.6 lacks
        ids = pipe.tokenizer(prompt, padding="max_length", max_length=77, truncation=True,
                             return_tensors="pt").input_ids
        hidden = pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-clip_skip]
        theirs = pipe.text_encoder.final_layer_norm(hidden)
    assert ours.shape == theirs.shape == (1, 77, 32)
    assert torch.equal(ours, theirs)
    assert torch.equal(encode(prompt, pipe, clip_skip, "plain"), theirs)
    assert not torch.equal(encode(prompt, pipe, 1), encode(prompt, pipe, 2))


@pytest.mark.slow
@pytest.mark.render
def test_weights_multiply_and_keep_the_mean(setup):
    import torch

    from generator.render.conditioning import encode

    _, _, pipe = setup
    plain = encode("a red cat", pipe, 1)
    assert torch.equal(encode("a (red cat:1.0)", pipe, 1), plain)
    assert not torch.equal(encode("a \\(red cat\\)", pipe, 1), encode("a (red cat)", pipe, 1))
    heavy = encode("a (red cat:1.5)", pipe, 1)
    assert heavy.mean().item() == pytest.approx(plain.mean().item(), abs=1e-6)
    # the weighted tokens (positions 2, 3 after BOS and "a") grew against the rest
    ratio = (heavy / plain)[0, :, 0]
    assert ratio[2].item() == pytest.approx(1.5 * ratio[1].item(), rel=1e-4)
    assert ratio[3].item() == pytest.approx(ratio[2].item(), rel=1e-4)
    assert ratio[1].item() == pytest.approx(ratio[5].item(), rel=1e-4)


@pytest.mark.slow
@pytest.mark.render
def test_long_prompts_and_break_make_more_chunks(setup):
    from generator.render.conditioning import encode

    _, _, pipe = setup
    long = ", ".join(["photo girl smile"] * 30)  # about 120 tokens: never cut
    assert encode(long, pipe, 1).shape == (1, 154, 32)
    assert encode("a cat BREAK a dog", pipe, 1).shape == (1, 154, 32)
    assert not (encode(long, pipe, 1)[:, :77] == encode(long[:150], pipe, 1)).all()


@pytest.mark.slow
@pytest.mark.render
def test_a1111_renders_plain_short_prompts_as_before(setup):
    renderer, ref, _ = setup
    first = None
    for fields in ({"steps": 2}, {"steps": 2, "clip_skip": 2, "negative_prompt": "blurry"}):
        plain = render_all(renderer, [task(ref, **fields)])[0]
        a1111 = render_all(renderer, [task(ref, prompt_syntax="a1111", **fields)])[0]
        assert pixels(plain) == pixels(a1111), fields
        first = first or plain
    weighted = render_all(renderer, [task(ref, prompt="a photo of a (girl:1.6)", steps=2,
                                          prompt_syntax="a1111")])[0]
    assert first is not None and pixels(weighted) != pixels(first)


@pytest.mark.slow
@pytest.mark.render
def test_a1111_pictures_do_not_depend_on_their_batch(setup, tiny_model, tmp_path):  # noqa: F811
    renderer, ref, _ = setup
    long = ", ".join(["photo girl smile"] * 30)
    tasks = [task(ref, "long", prompt=long, prompt_syntax="a1111", seed=3, steps=2),
             task(ref, "short", prompt="a (cat:1.2)", prompt_syntax="a1111", seed=4, steps=2)]
    together = render_all(renderer, tasks)  # one batch, two pipeline calls (154, 77 tokens)
    single = DiffusionRenderer(make_config(tmp_path, tiny_model, batch_size=1))
    alone = render_all(single, tasks)
    for a, b in zip(together, alone, strict=True):
        assert max_diff(a, b) <= 2


# --- SDXL: two encoders, a pooled embedding ------------------------------------------


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    from generator.models import ModelRef
    from tests.tinymodels import save_tiny_sdxl

    root = tmp_path_factory.mktemp("sdxl")
    folder = save_tiny_sdxl(root)
    renderer = DiffusionRenderer(make_config(root, batch_size=4))
    ref = ModelRef("xl", "folder", str(folder), "sha256:tiny-sdxl")
    yield renderer, ref, renderer._activate(ref).txt2img
    renderer.close()


@pytest.mark.slow
@pytest.mark.render
def test_sdxl_prompts_are_embedded_as_diffusers_and_a1111_do(sdxl):
    import torch

    from generator.render.conditioning import encode_sdxl

    renderer, ref, pipe = sdxl
    prompt = "high quality photo, beautiful girl"
    ours, pooled = encode_sdxl(prompt, pipe)
    theirs, _, their_pooled, _ = pipe.encode_prompt(prompt, device="cpu",
                                                    do_classifier_free_guidance=False)
    assert ours.shape == (1, 77, 64) and torch.equal(ours, theirs)
    assert torch.equal(pooled, their_pooled)
    long, _ = encode_sdxl(", ".join(["photo girl smile"] * 30), pipe)
    assert long.shape == (1, 154, 64)
    fields = {"steps": 2, "negative_prompt": "blurry"}
    plain = render_all(renderer, [task(ref, **fields)])[0]
    assert pixels(plain) == pixels(render_all(renderer, [task(ref, prompt_syntax="a1111",
                                                              **fields)])[0])
    weighted = render_all(renderer, [task(ref, prompt="a (photo:1.4) of a girl BREAK smile",
                                          prompt_syntax="a1111", steps=2)])[0]
    assert weighted.size == (64, 64) and pixels(weighted) != pixels(plain)
