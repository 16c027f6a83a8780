"""The noise of a picture, as A1111 draws it: its "NV" generator, variation seeds, ENSD.

A1111's default noise is ``torch.randn`` on a CUDA GPU: Philox4x32-10 (Random123)
keyed by the seed, each number from the first two words of one Philox block through
Box-Muller. Its "NV" option computes the same numbers on any device; ``Philox`` is that
generator (NumPy, float64 math, float32 results, exactly as A1111's), so ``noise: nv``
gives the same noise on a CPU, a CUDA GPU or a Mac.

Each picture owns a ``PictureNoise``: its first draw is the initial latent (slerped
toward the variation seed's noise by ``subseed_strength``), every later draw is an
ancestral step's noise, from the same generator or, with ENSD, from one seeded with
``seed + ENSD``. Pictures never share a generator, so batching changes nothing.

diffusers draws its noise through ``randn_tensor``; ``drawing_from`` lets it draw
from ``PictureNoise`` objects handed over as the pipeline's ``generator`` list. The
default ``noise: cpu`` without variation or ENSD never comes here: it stays
diffusers' own CPU ``torch.Generator``, exactly as before.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # the round multipliers
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # the key's increments (golden ratio, sqrt(3) - 1)
_INV_2_32 = 2.3283064e-10  # A1111's constants, taken as float32 as its NV generator does
_TWO_PI = 6.2831855


def philox4x32(counter: Any, key: Any, rounds: int = 10) -> Any:
    """Philox4x32-``rounds`` of each column: ``counter`` (4, n) and ``key`` (2, n) uint32."""
    import numpy as np

    mask, high = np.uint64(0xFFFFFFFF), np.uint64(32)
    c = [counter[i].astype(np.uint64) for i in range(4)]
    k = [key[0].astype(np.uint64), key[1].astype(np.uint64)]
    for index in range(rounds):
        if index:
            k = [(k[0] + np.uint64(PHILOX_W[0])) & mask, (k[1] + np.uint64(PHILOX_W[1])) & mask]
        p0, p1 = c[0] * np.uint64(PHILOX_M[0]), c[2] * np.uint64(PHILOX_M[1])
        c = [(p1 >> high) ^ c[1] ^ k[0], p1 & mask, (p0 >> high) ^ c[3] ^ k[1], p0 & mask]
    return np.stack(c).astype(np.uint32)


class Philox:
    """A1111's "NV" generator: ``randn`` as ``torch.randn`` on CUDA gives it."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.offset = 0  # one per call, as torch's CUDA generator advances

    def randn(self, shape: Sequence[int]) -> Any:
        """float32 normal numbers of ``shape``; the next call draws the next ones."""
        import numpy as np

        n = int(np.prod(shape))
        counter = np.zeros((4, n), dtype=np.uint32)
        counter[0] = self.offset
        counter[2] = np.arange(n, dtype=np.uint32)
        self.offset += 1
        key = np.array([self.seed & 0xFFFFFFFF, self.seed >> 32], dtype=np.uint32)
        block = philox4x32(counter, np.repeat(key[:, None], n, axis=1))
        # Box-Muller, the first of its two results (float64 math, as A1111's NumPy)
        inv, inv_2pi = np.float32(_INV_2_32), np.float32(_INV_2_32 * _TWO_PI)
        u = block[0] * inv + inv / 2
        v = block[1] * inv_2pi + inv_2pi / 2
        return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32).reshape(shape)


def slerp(strength: float, low: Any, high: Any) -> Any:
    """A1111's variation: ``low`` turned toward ``high`` by ``strength`` (its exact math,
    norms over dimension 1 and the linear fall-back's order included)."""
    import torch

    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * strength + high * (1 - strength)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return ((torch.sin((1.0 - strength) * omega) / so).unsqueeze(1) * low
            + (torch.sin(strength * omega) / so).unsqueeze(1) * high)


class PictureNoise:
    """One picture's noise: the initial latent first, then each ancestral step's."""

    def __init__(self, seed: int, kind: str = "nv", subseed: int = 0,
                 subseed_strength: float = 0.0, ensd: int = 0, cpu: Any = None) -> None:
        """``cpu``: for ``kind="cpu"``, the picture's CPU generator when something (the
        VAE's sample of an img2img parent) already drew from it, as diffusers has it."""
        self.seed, self.kind, self.ensd = seed, kind, ensd
        self.subseed, self.subseed_strength = subseed, subseed_strength
        self._generator = cpu if cpu is not None and kind == "cpu" else self._new(seed)
        self._first = True

    def _new(self, seed: int) -> Any:
        import torch

        return Philox(seed) if self.kind == "nv" else torch.Generator("cpu").manual_seed(seed)

    def _draw(self, generator: Any, shape: Sequence[int]) -> Any:
        import torch

        if isinstance(generator, Philox):
            return torch.from_numpy(generator.randn(shape))
        return torch.randn(tuple(shape), generator=generator)

    def randn(self, shape: Sequence[int]) -> Any:
        """``shape`` (one picture's latent) float32 noise on the CPU."""
        if not self._first:
            return self._draw(self._generator, shape)
        self._first = False
        noise = self._draw(self._generator, shape)
        if self.subseed_strength:
            noise = slerp(self.subseed_strength, noise,
                          self._draw(self._new(self.subseed), shape))
        if self.ensd:
            self._generator = self._new(self.seed + self.ensd)
        return noise


@contextmanager
def drawing_from() -> Iterator[None]:
    """While open, diffusers' ``randn_tensor`` draws from ``PictureNoise`` generators."""
    from diffusers.utils import torch_utils

    original = torch_utils.randn_tensor

    def randn_tensor(shape: Any, generator: Any = None, device: Any = None, dtype: Any = None,
                     layout: Any = None) -> Any:
        import torch

        own = generator if isinstance(generator, list) else [generator]
        if not own or not all(isinstance(g, PictureNoise) for g in own):
            return original(shape, generator=generator, device=device, dtype=dtype,
                            layout=layout)
        if len(own) != shape[0]:
            raise ValueError(f"{len(own)} noise generators for a batch of {shape[0]}")
        rows = [g.randn(tuple(shape[1:])) for g in own]
        return torch.stack(rows).to(device=device or "cpu", dtype=dtype)

    patched = [module for module in list(sys.modules.values())
               if getattr(module, "__name__", "").startswith("diffusers")
               and getattr(module, "randn_tensor", None) is original]
    for module in patched:
        module.randn_tensor = randn_tensor  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in patched:
            module.randn_tensor = original  # type: ignore[attr-defined]
