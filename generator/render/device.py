"""Where rendering runs: one choice of device and dtype for every renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import GenimgError


def pick_device(requested: str, config_file: Path | None = None) -> str:
    """``auto``: CUDA, else Apple MPS, else CPU. An explicit device must exist."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise GenimgError(f"genimg.yaml asks for device {requested!r}, but torch sees no "
                          "CUDA GPU here (use 'device: auto' or 'cpu')", config_file)
    if requested == "mps" and not has_mps:
        raise GenimgError("genimg.yaml asks for device 'mps', but torch has no MPS support here",
                          config_file)
    return requested


def pick_dtype(requested: str, device: str) -> Any:
    """``auto``: float16 on CUDA (half the memory, same pictures to the eye), else float32.

    MPS stays float32: half precision there has given black or NaN pictures on some
    torch versions; ``dtype: float16`` in genimg.yaml overrides.
    """
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    return torch.float16 if device.startswith("cuda") else torch.float32
