"""Where a model's weights sit, and diffusers' options that trade speed for GPU memory.

Only the active model is on the accelerator: a build with several models parks the
previous one in host memory when it switches (``park``), with every module it holds —
both pipelines' parts, its own VAE while another replaces it, and the VAE files loaded
for it — since a module missed here would stay on the GPU for the rest of the build.

genimg.yaml's memory options (``apply``): ``cpu_offload`` (diffusers' model offload:
each part is moved to the GPU when it runs), ``vae_tiling`` (decode in overlapping
tiles: other pixels, only above the VAE's own sample size) and ``vae_slicing`` (decode a
batch one picture at a time: the same pixels).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import SiteConfig

#: Where a parked model goes: host memory (tests park on ``meta`` to see what moved).
PARKING = "cpu"


def offloading(config: SiteConfig) -> bool:
    """Does diffusers move the parts (``cpu_offload``)? On a CPU it moves nothing, but
    runs the same hooks, so the option can be tried anywhere."""
    return bool(config.cpu_offload)


def apply(pipes: Iterable[Any], config: SiteConfig, device: str) -> None:
    """genimg.yaml's options on a freshly loaded model's pipelines (sharing their parts)."""
    pipes = list(pipes)
    for pipe in pipes:
        if offloading(config):
            pipe.enable_model_cpu_offload(device=device)
    tune_vae(pipes[0].vae, config)


def tune_vae(vae: Any, config: SiteConfig) -> None:
    """Tiling and slicing, on a model's own VAE and on every VAE file replacing it."""
    if config.vae_tiling:
        vae.enable_tiling()
    if config.vae_slicing:
        vae.enable_slicing()


def rehook(pipes: Iterable[Any], config: SiteConfig, device: str) -> None:
    """After a part is swapped (a VAE file), offload hooks must cover the new one."""
    if offloading(config):
        for pipe in pipes:
            pipe.enable_model_cpu_offload(device=device)


def modules_of(pipes: Iterable[Any], *others: Any) -> Iterator[Any]:
    """Every torch module of ``pipes`` and ``others`` (None skipped), each once."""
    import torch

    seen: set[int] = set()
    candidates = [part for pipe in pipes for part in pipe.components.values()]
    for module in [*candidates, *others]:
        if isinstance(module, torch.nn.Module) and id(module) not in seen:
            seen.add(id(module))
            yield module


def park(modules: Iterable[Any], device: str) -> None:
    """Move ``modules`` off ``device`` to ``PARKING`` (nothing to do on a CPU)."""
    if device == PARKING:
        return
    for module in modules:
        module.to(PARKING)


def bytes_on(modules: Iterable[Any], device_type: str) -> int:
    """Bytes of the modules' parameters and buffers on a device type (``cuda``, ``cpu``)."""
    return sum(t.numel() * t.element_size() for module in modules
               for t in [*module.parameters(), *module.buffers()]
               if t.device.type == device_type)
