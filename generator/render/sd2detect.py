"""SD 2.x single files: does the UNet predict the noise (512-base) or v (768-v)?

Nothing in an SD 2.x checkpoint's tensors says which (ComfyUI alone adds a ``v_pred``
tensor), and file names lie, so genimg does what A1111 does
(``modules/sd_models_config.py``): it runs the UNet once at the noisiest step, on a
latent and a text context of constant 0.5, and compares the output with the input.
At that step the noisy latent is almost pure noise, so a model that predicts the noise
(ε) answers with about its input; a v model answers ``v ≈ -x0``, far below it. A1111
calls it v when the output's mean is more than 1 below the input's; genimg uses the same
test and threshold. The run is one UNet call on an 8x8 latent, in float32 (A1111's
precision, whatever dtype the model renders in), and its answer is remembered per file
fingerprint for the life of the process.

The test means something only for trained weights: a random UNet's output has nothing to
do with ε or v (``tests/test_sd2detect.py`` fits tiny UNets to each objective instead).
"""

from __future__ import annotations

from typing import Any

EPSILON, V = "epsilon", "v_prediction"
NOISIEST_STEP = 999
THRESHOLD = -1.0  # A1111's: output mean minus input mean below this means v
_SIZE = 8  # the test latent's side (A1111's)
_CONTEXT_TOKENS = 2

#: fingerprint -> prediction type, decided once per file in this process.
_decided: dict[str, str] = {}


def output_shift(unet: Any) -> float:
    """The mean of (UNet output - input) at the noisiest step on A1111's constant input,
    computed in float32 wherever the UNet sits (a float16 UNet is cast and cast back:
    exact both ways)."""
    import torch
    from diffusers.utils import logging

    first = next(unet.parameters())
    dtype = first.dtype
    before = logging.get_verbosity()
    logging.set_verbosity_error()  # casting a loaded model warns, needlessly here
    if dtype != torch.float32:
        unet.to(torch.float32)
    try:
        options = dict(device=first.device, dtype=torch.float32)
        latent = torch.full((1, unet.config.in_channels, _SIZE, _SIZE), 0.5, **options)
        context = torch.full((1, _CONTEXT_TOKENS, unet.config.cross_attention_dim), 0.5,
                             **options)
        step = torch.tensor([NOISIEST_STEP], device=first.device)
        with torch.no_grad():
            out = unet(latent, step, encoder_hidden_states=context).sample
        return float((out - latent).mean())
    finally:
        if dtype != torch.float32:
            unet.to(dtype)
        logging.set_verbosity(before)


def prediction_type(unet: Any, fingerprint: str) -> str:
    """ε or v for the SD 2.x UNet of the file ``fingerprint`` names (once per file; an
    empty fingerprint is never remembered)."""
    found = _decided.get(fingerprint) if fingerprint else None
    if found is None:
        found = V if output_shift(unet) < THRESHOLD else EPSILON
        if fingerprint:
            _decided[fingerprint] = found
    return found


def settle(pipe: Any, fingerprint: str) -> str:
    """Give ``pipe`` the scheduler of what its UNet predicts; returns the prediction type."""
    found = prediction_type(pipe.unet, fingerprint)
    if pipe.scheduler.config.prediction_type != found:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config,
                                                          prediction_type=found)
    return found
