"""A1111's noise (``render/noise.py``): Philox4x32-10 against Random123's known answers,
the NV generator against A1111's documented output and the stored vectors, variation
seeds, ENSD, and ``noise: nv`` pictures that do not depend on their batch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generator.render.noise import Philox, philox4x32
from tests.helpers import REPO
from tests.tinymodels import tiny_model  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")

# Random123's kat_vectors for philox4x32 with 10 rounds: counter, key -> output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_philox_known_answers(counter, key, expected):
    out = philox4x32(np.array(counter, dtype=np.uint32)[:, None],
                     np.array(key, dtype=np.uint32)[:, None])
    assert tuple(int(x) for x in out[:, 0]) == expected


def test_philox_is_a_function_of_each_column():
    counters = np.array([c for c, _, _ in KAT], dtype=np.uint32).T
    keys = np.array([k for _, k, _ in KAT], dtype=np.uint32).T
    assert [tuple(int(x) for x in col) for col in philox4x32(counters, keys).T] == [
        e for _, _, e in KAT]


def test_nv_noise_is_a1111s_documented_output():
    """A1111's rng_philox docstring: ``Generator(seed=0).randn((3, 4))`` (torch.randn on
    CUDA for seed 0 rounds to the same four decimals); within float32 rounding."""
    documented = [[-0.92466259, -0.42534415, -2.6438457, 0.14518388],
                  [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
                  [-1.07454231, -0.36314407, -1.67105067, 2.26550497]]
    got = Philox(0).randn((3, 4))
    assert got.dtype == np.float32
    assert np.abs(got - np.array(documented)).max() < 3e-7


def test_nv_noise_matches_the_stored_vectors():
    """``tests/data/nv_noise.json`` (bench/cuda_noise.py compares it with a CUDA GPU)."""
    for case in json.loads((REPO / "tests/data/nv_noise.json").read_text())["cases"]:
        generator = Philox(case["seed"])
        first = generator.randn(case["shape"])
        assert first.shape == tuple(case["shape"])
        assert first.reshape(-1)[:16].tolist() == case["first_16"]
        assert float(first.astype(np.float64).sum()) == pytest.approx(case["sum"], abs=1e-9)
        assert generator.randn(case["shape"]).reshape(-1)[:8].tolist() == case[
            "second_call_first_8"]


def test_nv_noise_is_normal_and_advances_per_call():
    generator = Philox(42)
    a, b = generator.randn((4, 64, 64)), generator.randn((4, 64, 64))
    assert not np.array_equal(a, b)
    assert abs(a.mean()) < 0.05 and abs(a.std() - 1) < 0.05
    assert np.array_equal(Philox(42).randn((4, 64, 64)), a)
    # one picture's noise does not depend on the shape of what else is drawn
    assert np.array_equal(Philox(42).randn((2, 4, 64, 64))[0], a)


# --- a picture's noise (torch) --------------------------------------------------------


@pytest.mark.render
def test_picture_noise_first_draw_variation_and_ensd():
    import torch

    from generator.render.noise import PictureNoise, slerp

    shape = (4, 8, 8)
    plain = PictureNoise(7)
    first = plain.randn(shape)
    assert torch.equal(first, torch.from_numpy(Philox(7).randn(shape)))
    later = Philox(7)
    later.randn(shape)
    assert torch.equal(plain.randn(shape), torch.from_numpy(later.randn(shape)))
    ensd = PictureNoise(7, ensd=31337)
    assert torch.equal(ensd.randn(shape), first)  # the initial latent keeps the seed
    assert torch.equal(ensd.randn(shape), torch.from_numpy(Philox(7 + 31337).randn(shape)))
    cpu = PictureNoise(7, "cpu")
    assert torch.equal(cpu.randn(shape), torch.randn(shape,
                                                     generator=torch.Generator().manual_seed(7)))
    # variation: strength 0 is the seed's noise, 1 the variation seed's, between a slerp
    other = torch.from_numpy(Philox(99).randn(shape))
    assert torch.equal(PictureNoise(7, subseed=99, subseed_strength=0.0).randn(shape), first)
    assert torch.allclose(PictureNoise(7, subseed=99, subseed_strength=1.0).randn(shape),
                          other, atol=1e-5)
    mixed = PictureNoise(7, subseed=99, subseed_strength=0.3).randn(shape)
    assert torch.equal(mixed, slerp(0.3, first, other))
    assert abs(float(mixed.std()) - 1) < 0.2  # a slerp keeps the noise's scale
    assert torch.equal(slerp(0.25, first, first), first * 0.25 + first * 0.75)


# --- pictures with the tiny model (slow) ----------------------------------------------


@pytest.fixture(scope="module")
def setup(tiny_model, tmp_path_factory):  # noqa: F811
    from generator.models import ModelResolver
    from generator.render.diffusion import DiffusionRenderer
    from tests.test_diffusion import make_config

    root = tmp_path_factory.mktemp("noise")
    renderer = DiffusionRenderer(make_config(root, tiny_model, batch_size=4))
    yield renderer, ModelResolver(make_config(root, tiny_model)).model("default")
    renderer.close()


@pytest.mark.slow
@pytest.mark.render
def test_cpu_noise_through_genimg_is_diffusers_noise(setup):
    """ENSD on a sampler without fresh noise (a spec drops it: here it is forced) routes
    through ``render/noise.py`` and must change nothing: the same CPU noise, the same
    img2img encoding."""
    from dataclasses import replace

    from PIL import Image

    from tests.test_diffusion import pixels, render_all, task

    renderer, ref = setup
    parent = Image.new("RGB", (64, 64), (200, 80, 40))
    for fields in ({"sampler": "Euler"},
                   {"sampler": "Euler", "mode": "img2img", "from": "x", "strength": 0.6}):
        source = parent if "from" in fields else None
        before = task(ref, source=source, steps=2, **fields)
        routed = replace(before, spec=replace(before.spec, eta_noise_seed_delta=31337))
        assert pixels(render_all(renderer, [before])[0]) == pixels(
            render_all(renderer, [routed])[0]), fields
    ensd = render_all(renderer, [task(ref, steps=2, eta_noise_seed_delta=31337)])[0]
    assert pixels(ensd) != pixels(render_all(renderer, [task(ref, steps=2)])[0])


@pytest.mark.slow
@pytest.mark.render
def test_nv_pictures_do_not_depend_on_their_batch(setup, tiny_model, tmp_path):  # noqa: F811
    from generator.render.diffusion import DiffusionRenderer
    from tests.test_diffusion import make_config, max_diff, pixels, render_all, task

    renderer, ref = setup
    tasks = [task(ref, "a", seed=5, steps=2, noise="nv"),
             task(ref, "b", seed=6, steps=2, noise="nv", subseed=9, subseed_strength=0.4)]
    together = render_all(renderer, tasks)
    alone = render_all(DiffusionRenderer(make_config(tmp_path, tiny_model, batch_size=1)),
                       tasks)
    for a, b in zip(together, alone, strict=True):
        assert max_diff(a, b) <= 2
    cpu = render_all(renderer, [task(ref, seed=5, steps=2)])[0]
    assert pixels(cpu) != pixels(together[0])
