"""genimg.yaml's ``speed:`` on a pipeline, and ``batch_size: auto``.

Each option is what the fastest diffusers setups use: ``torch.compile`` of the UNet
(regionally, its repeated transformer blocks, so it compiles in seconds to a minute),
channels-last memory format, fused attention projections, a chosen SDPA kernel, TF32.
What an option does to the pixels decides whether it is in the cache key
(``schema.SPEED``'s roles): compile, channels-last, another attention kernel and TF32
change the bits (measured on CPU for the first three, tests/test_speed.py); fused
projections do not. torch is imported inside functions only, like every renderer.

``batch_size: auto`` is ``auto_batch_size``: a pure function of free GPU memory, the
model's widths and the picture's size, so its numbers are tested without a GPU.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import GenimgError
from ..progress import note
from ..schema import BATCH_AUTO_MOST

if TYPE_CHECKING:
    from ..config import SpeedConfig

#: ``batch_size: auto`` on a CPU or Apple GPU (no free-memory figure to go by): the default.
AUTO_CPU = 4
AUTO_MOST = BATCH_AUTO_MOST
#: Of the free memory, what ``auto`` leaves for the allocator's fragments and CUDA's own.
MARGIN_FRACTION, MARGIN_BYTES = 0.15, 512 * 2**20
#: Live activations while the UNet runs, per latent pixel and channel of its first block
#: (for two rows per picture: classifier-free guidance); while the VAE decodes, per
#: pixel and channel of its last block. Estimates from the networks' shapes (the largest
#: tensors alive at once, SDPA's memory-efficient attention): the GPU bench's peak memory
#: (bench/bench_render.py) is what checks them.
UNET_LIVE, VAE_LIVE = 40, 12
#: With ``vae_tiling``, diffusers decodes 512-pixel tiles: a picture costs one tile.
TILE = 512


@dataclass(frozen=True)
class Footprint:
    """What one picture costs while it renders, from the model's config."""

    unet_channels: int  # the UNet's first block (SD 1.5 and SDXL: 320)
    unet_bytes: int  # its dtype's size
    vae_channels: int  # the VAE decoder's full-resolution block (128)
    vae_bytes: int  # the VAE's dtype's size, 4 where diffusers upcasts it (SDXL in fp16)

    def per_picture(self, width: int, height: int, tiling: bool = False) -> int:
        unet = UNET_LIVE * 2 * (width // 8) * (height // 8) * self.unet_channels * self.unet_bytes
        pixels = min(width * height, TILE * TILE) if tiling else width * height
        vae = VAE_LIVE * pixels * self.vae_channels * self.vae_bytes
        return max(unet, vae)


def auto_batch_size(free: int, footprint: Footprint, width: int, height: int,
                    tiling: bool = False) -> int:
    """The largest batch (1 … ``AUTO_MOST``) whose pictures fit ``free`` bytes of GPU
    memory, the model's weights already in place."""
    usable = free * (1 - MARGIN_FRACTION) - MARGIN_BYTES
    fits = int(usable // footprint.per_picture(width, height, tiling))
    return max(1, min(AUTO_MOST, fits))


def footprint_of(pipe: Any) -> Footprint:
    """The footprint of a loaded pipeline (diffusers upcasts an fp16 VAE whose config
    says ``force_upcast``, in SDXL's pipelines)."""
    unet, vae = pipe.unet, pipe.vae
    vae_bytes = vae.dtype.itemsize
    if vae_bytes == 2 and hasattr(pipe, "upcast_vae") and vae.config.get("force_upcast", False):
        vae_bytes = 4
    return Footprint(unet.config.block_out_channels[0], unet.dtype.itemsize,
                     vae.config.block_out_channels[-1], vae_bytes)


def batch_size_for(pipe: Any, device: str, width: int, height: int, tiling: bool) -> int:
    """``batch_size: auto`` for this pipeline and size: from the free CUDA memory now (the
    model is on the GPU), else ``AUTO_CPU``."""
    if not device.startswith("cuda"):
        return AUTO_CPU
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return auto_batch_size(free, footprint_of(pipe), width, height, tiling)


_KERNELS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
            "cudnn": "CUDNN_ATTENTION", "math": "MATH"}


class Speed:
    """The ``speed:`` options for one renderer: applied to each model once, and around
    each pipeline call."""

    def __init__(self, options: SpeedConfig, device: str):
        self.options, self.device = options, device
        self._compiled: set[tuple[int, int, int, int]] = set()  # (UNet, width, height, batch)
        self._fused: set[int] = set()  # the UNets whose projections are fused now
        if options.tf32 and device.startswith("cuda"):
            import torch

            torch.set_float32_matmul_precision("high")  # TF32 matrix products
            torch.backends.cudnn.allow_tf32 = True  # convolutions (torch's default already)

    def prepare(self, pipe: Any) -> None:
        """A model just loaded: its memory format, and its UNet wrapped for compiling
        (torch compiles on the first call of each shape)."""
        import torch

        if self.options.channels_last:
            pipe.unet.to(memory_format=torch.channels_last)
            self.prepare_vae(pipe.vae)
        if self.options.compile:
            # Static shapes: one graph per size and batch size (dynamic ones ran 2x slower
            # on CPU); room for more of them than dynamo's default of 8 before it falls
            # back to running uncompiled.
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            if self.options.compile == "unet":
                pipe.unet.compile(fullgraph=True, dynamic=False)
            else:
                pipe.unet.compile_repeated_blocks(fullgraph=True, dynamic=False)

    def prepare_vae(self, vae: Any) -> None:
        """A VAE that decodes for a model (its own, or one that replaces it)."""
        if self.options.channels_last:
            import torch

            vae.to(memory_format=torch.channels_last)

    def fuse(self, pipe: Any, loras: bool) -> None:
        """The UNet's query/key/value projections fused, except while LoRAs are loaded: a
        LoRA adds to the separate projections, which the fused ones would bypass."""
        if not self.options.fuse_qkv:
            return
        unet = pipe.unet
        if id(unet) in self._fused and loras:
            unet.unfuse_qkv_projections()
            self._fused.discard(id(unet))
        elif id(unet) not in self._fused and not loras:
            unet.fuse_qkv_projections()  # the weights as they are now: LoRAs unloaded
            self._fused.add(id(unet))

    @contextmanager
    def calling(self, pipe: Any, width: int, height: int, batch: int) -> Iterator[None]:
        """Around one pipeline call: the attention kernel asked for, and a line while the
        UNet compiles for a shape it has not run yet."""
        shape = (id(pipe.unet), width, height, batch)
        compiling = bool(self.options.compile) and shape not in self._compiled
        if compiling:
            note(f"compiling the UNet for {width}×{height}, {batch} at a time (once per model "
                 "and size in a build; the first batch waits for it) …")
        started = time.perf_counter()
        with self.kernel():
            yield
        if compiling:
            self._compiled.add(shape)
            note(f"compiled, first batch rendered in {time.perf_counter() - started:.0f} s")

    @contextmanager
    def kernel(self) -> Iterator[None]:
        """The attention kernel asked for (``auto``: torch's choice, nothing done)."""
        name = self.options.attention
        if name == "auto":
            yield
            return
        from torch.nn.attention import SDPBackend, sdpa_kernel

        try:
            with sdpa_kernel(getattr(SDPBackend, _KERNELS[name])):
                yield
        except RuntimeError as exc:
            if "No available kernel" not in str(exc) and "No viable backend" not in str(exc):
                raise
            raise GenimgError(f"speed: attention {name!r} cannot run on {self.device} with "
                              "this model and dtype; use 'auto' or another kernel") from None
