"""Tiny random-weight Stable Diffusion models, built from configs, never downloaded.

They have SD 1.x's shape (a CLIP text encoder, a UNet with cross-attention, a VAE
that scales by 8, the SD noise schedule) at a size that renders a 64x64 picture in
a fraction of a second on a CPU, so tests run the real loading and sampling code.

``save_tiny_model`` writes both forms genimg loads:

* ``folder``: a diffusers folder (``save_pretrained``), also the local ``config``
  that ``from_single_file`` needs for the checkpoint below;
* ``checkpoint``: one ``.safetensors`` file in the original CompVis/A1111 key layout
  (``model.diffusion_model.*``, ``first_stage_model.*``,
  ``cond_stage_model.transformer.*``). diffusers only converts the other way, so
  ``to_ldm_state_dict`` inverts its converters here and ``check_ldm_round_trip``
  proves the inversion by running diffusers' own converters on the result.

The fixture ``tiny_model`` (session scope) builds it once per test session; a test
file uses it with ``from tinymodels import tiny_model  # noqa: F401``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test must never reach the hub

#: Words the tiny tokenizer knows as whole tokens (others fall back to bytes).
WORDS = ("photo", "girl", "smile", "high", "quality", "anime", "beautiful", "red", "cheek", "cat")
LATENT_SCALE = 8  # like SD: a 64x64 picture is an 8x8 latent


@dataclass(frozen=True)
class TinyModel:
    folder: Path  # diffusers folder
    checkpoint: Path  # single .safetensors file, original SD layout; config: ``folder``


@lru_cache(maxsize=1)
def _byte_chars() -> list[str]:
    """GPT-2/CLIP byte-level alphabet: one printable character per byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def write_tokenizer_files(folder: Path) -> None:
    """A CLIP BPE vocabulary: every byte alone and word-final, plus merges for WORDS."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens = [*_byte_chars(), *(c + "</w>" for c in _byte_chars())]
    merges: list[str] = []
    for word in WORDS:
        left = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + ("</w>" if i == len(word) - 1 else "")
            merges.append(f"{left} {right}")
            left += right
            if left not in tokens:
                tokens.append(left)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n"
    (folder / "merges.txt").write_text(merges_text, encoding="utf-8")


TINY_UNET: dict[str, Any] = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
    layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
    attention_head_dim=8, norm_num_groups=32,
)
TINY_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, block_out_channels=(8, 16, 16, 16),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=64,
)
TINY_TEXT: dict[str, Any] = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                 num_attention_heads=4)

#: SD 1.5's architecture (its published configs): same compute as the real weights.
FULL_UNET: dict[str, Any] = dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
FULL_VAE: dict[str, Any] = dict(
    block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
    sample_size=512,
)
FULL_TEXT: dict[str, Any] = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                 num_attention_heads=12)


def build_pipeline(workdir: Path, unet: dict[str, Any], vae: dict[str, Any],
                   text: dict[str, Any], seed: int = 0) -> Any:
    """A StableDiffusionPipeline from configs, random weights fixed by ``seed``."""
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    write_tokenizer_files(workdir / "tokenizer-src")
    tokenizer = CLIPTokenizer.from_pretrained(str(workdir / "tokenizer-src"), model_max_length=77)
    torch.manual_seed(seed)
    unet_model = UNet2DConditionModel(**unet)
    vae_model = AutoencoderKL(**vae)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), max_position_embeddings=77, hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **text,
    ))
    # SD 1.5's own scheduler config.
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae_model.eval(), text_encoder=text_encoder.eval(), tokenizer=tokenizer,
        unet=unet_model.eval(), scheduler=scheduler, safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )


def build_tiny_pipeline(workdir: Path, seed: int = 0) -> Any:
    """A StableDiffusionPipeline with tiny random weights (fixed by ``seed``)."""
    return build_pipeline(workdir, TINY_UNET, TINY_VAE, TINY_TEXT, seed)


# --- diffusers -> original (LDM) key layout --------------------------------------------

_UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0",
                "conv2": "out_layers.3", "time_emb_proj": "emb_layers.1",
                "conv_shortcut": "skip_connection"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v",
                  "to_out.0": "proj_out"}


def _swap_prefix(rest: str, table: dict[str, str]) -> str:
    for new, old in table.items():
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def _unet_key(key: str, config: Any, has_attention: set[int]) -> str:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    fixed = {**DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"],
             **DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"]}  # SDXL's time ids
    if key in fixed:
        return fixed[key]
    per = config.layers_per_block + 1
    parts = key.split(".")
    if parts[0] == "down_blocks":
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        if kind == "resnets":
            return f"input_blocks.{block * per + index + 1}.0.{_swap_prefix(rest, _UNET_RESNET)}"
        if kind == "attentions":
            return f"input_blocks.{block * per + index + 1}.1.{rest}"
        return f"input_blocks.{(block + 1) * per}.0.op.{'.'.join(parts[5:])}"  # downsamplers
    if parts[0] == "mid_block":
        kind, index, rest = parts[1], int(parts[2]), ".".join(parts[3:])
        if kind == "resnets":
            return f"middle_block.{2 * index}.{_swap_prefix(rest, _UNET_RESNET)}"
        return f"middle_block.1.{rest}"
    if parts[0] == "up_blocks":
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        if kind == "resnets":
            return f"output_blocks.{block * per + index}.0.{_swap_prefix(rest, _UNET_RESNET)}"
        if kind == "attentions":
            return f"output_blocks.{block * per + index}.1.{rest}"
        slot = 2 if block in has_attention else 1  # upsamplers
        return f"output_blocks.{block * per + per - 1}.{slot}.{'.'.join(parts[4:])}"
    raise ValueError(f"unexpected UNet key {key}")


def _vae_key(key: str, blocks: int) -> str:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    fixed = DIFFUSERS_TO_LDM_MAPPING["vae"]
    if key in fixed:
        return fixed[key]
    parts = key.split(".")
    coder, what = parts[0], parts[1]
    if what in ("down_blocks", "up_blocks"):
        block = int(parts[2]) if what == "down_blocks" else blocks - 1 - int(parts[2])
        name = "down" if what == "down_blocks" else "up"
        if parts[3] == "resnets":
            rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
            return f"{coder}.{name}.{block}.block.{parts[4]}.{rest}"
        sampler = "downsample" if what == "down_blocks" else "upsample"
        return f"{coder}.{name}.{block}.{sampler}.{'.'.join(parts[5:])}"
    if what == "mid_block":
        rest = ".".join(parts[4:])
        if parts[2] == "resnets":
            rest = rest.replace("conv_shortcut", "nin_shortcut")
            return f"{coder}.mid.block_{int(parts[3]) + 1}.{rest}"
        return f"{coder}.mid.attn_1.{_swap_prefix(rest, _VAE_ATTENTION)}"
    raise ValueError(f"unexpected VAE key {key}")


def to_ldm_state_dict(pipe: Any) -> dict[str, Any]:
    """The pipeline's weights in the original SD checkpoint layout."""
    unet_config = pipe.unet.config
    has_attention = {
        i for i, kind in enumerate(unet_config.up_block_types) if "CrossAttn" in kind
    }
    out: dict[str, Any] = {}
    for key, value in pipe.unet.state_dict().items():
        out["model.diffusion_model." + _unet_key(key, unet_config, has_attention)] = value
    blocks = len(pipe.vae.config.block_out_channels)
    for key, value in pipe.vae.state_dict().items():
        ldm = _vae_key(key, blocks)
        if ".mid.attn_1." in ldm and value.ndim == 2:
            value = value[:, :, None, None]  # the original uses 1x1 convolutions
        out["first_stage_model." + ldm] = value
    for key, value in pipe.text_encoder.state_dict().items():
        if key.startswith("text_projection"):
            continue
        name = key if key.startswith("text_model.") else "text_model." + key
        out["cond_stage_model.transformer." + name] = value
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def check_ldm_round_trip(pipe: Any, ldm: dict[str, Any]) -> None:
    """diffusers' own converters must turn ``ldm`` back into the pipeline's weights."""
    import torch
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    def flat(state: dict[str, Any]) -> dict[str, Any]:  # transformers >= 5.6 has no text_model.
        return {k.removeprefix("text_model."): v for k, v in state.items()}

    pairs = [
        (convert_ldm_unet_checkpoint(ldm, dict(pipe.unet.config)), pipe.unet.state_dict()),
        (convert_ldm_vae_checkpoint(ldm, dict(pipe.vae.config)), pipe.vae.state_dict()),
        (flat(convert_ldm_clip_checkpoint(ldm)), flat(pipe.text_encoder.state_dict())),
    ]
    for converted, original in pairs:
        if converted.keys() != original.keys():
            diff = sorted(converted.keys() ^ original.keys())[:5]
            raise AssertionError(f"LDM round trip lost or invented keys: {diff}")
        for key, value in original.items():
            if not torch.equal(converted[key].reshape(value.shape), value):
                raise AssertionError(f"LDM round trip changed {key}")


def save_tiny_model(root: Path, seed: int = 0) -> TinyModel:
    """Write the tiny model as a diffusers folder and as a single original-layout file."""
    from safetensors.torch import save_file

    pipe = build_tiny_pipeline(root / "work", seed)
    folder = root / "tiny-sd"
    pipe.save_pretrained(folder, safe_serialization=True)
    ldm = to_ldm_state_dict(pipe)
    check_ldm_round_trip(pipe, ldm)
    checkpoint = root / "tiny-sd.safetensors"
    save_file(ldm, str(checkpoint))
    return TinyModel(folder=folder, checkpoint=checkpoint)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """The tiny SD model, saved once per session (folder + single file)."""
    return save_tiny_model(tmp_path_factory.mktemp("tinymodel"))


# --- SD 1.x, SD 2.x and SDXL with CLIP's real tokenizer: single files with no config ------
#
# genimg measures a single file's sizes and takes the rest from the architecture's
# published config (generator/render/configs/): these tiny models follow the same rules
# (CLIP's 49408-token vocabulary, heads of 64 channels, 32 norm groups), so their
# single files load with no ``config:`` at all.

_HEAD = 64  # CLIP and SD 2.x / SDXL attention heads have 64 channels


def _arch_configs(arch: str) -> dict[str, Any]:
    """Tiny configs of each architecture, written apart from genimg's own measuring."""
    from generator.render.singlefile import template

    base = template(arch)
    vae = dict(in_channels=3, out_channels=3, block_out_channels=(32, 32, 32, 32),
               down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4,
               norm_num_groups=32, sample_size=64,
               scaling_factor=base["vae"]["scaling_factor"])
    clip = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=1,
                max_position_embeddings=77, vocab_size=49408, bos_token_id=0, eos_token_id=2,
                pad_token_id=1)
    if arch == "sd1":
        unet = dict(TINY_UNET, cross_attention_dim=64)
        texts = {"text_encoder": dict(clip, hidden_act="quick_gelu")}
    elif arch == "sd2":
        unet = dict(TINY_UNET, block_out_channels=(64, 128), attention_head_dim=(1, 2),
                    cross_attention_dim=64, use_linear_projection=True, upcast_attention=True)
        texts = {"text_encoder": dict(clip, hidden_act="gelu")}
    else:
        unet = dict(TINY_UNET, block_out_channels=(64, 128), attention_head_dim=(1, 2),
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                    transformer_layers_per_block=(1, 2), cross_attention_dim=64 + 128,
                    use_linear_projection=True, addition_embed_type="text_time",
                    addition_time_embed_dim=8, projection_class_embeddings_input_dim=128 + 6 * 8)
        texts = {"text_encoder": dict(clip, hidden_act="quick_gelu"),
                 "text_encoder_2": dict(clip, hidden_act="gelu", hidden_size=128,
                                        num_attention_heads=2, projection_dim=128)}
    return dict(base=base, unet=unet, vae=vae, texts=texts)


def build_arch_pipeline(workdir: Path, arch: str, seed: int = 0) -> Any:
    """A tiny SD 1.x, SD 2.x ('sd2': its UNet's output fitted to predict v) or SDXL
    pipeline, random weights."""
    import diffusers
    import torch
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    from generator.render.singlefile import write_tokenizer

    cfg = _arch_configs(arch)
    base = cfg["base"]
    torch.manual_seed(seed)
    parts: dict[str, Any] = {
        "unet": diffusers.UNet2DConditionModel(**cfg["unet"]).eval(),
        "vae": diffusers.AutoencoderKL(**cfg["vae"]).eval(),
    }
    for name, text in cfg["texts"].items():
        model = CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel
        parts[name] = model(CLIPTextConfig(**text)).eval()
        tok_name = name.replace("text_encoder", "tokenizer")
        write_tokenizer(workdir / tok_name, base[tok_name])
        parts[tok_name] = CLIPTokenizer.from_pretrained(str(workdir / tok_name))
    if arch == "sd2":  # a v model indeed, as its scheduler says (genimg test-runs the file)
        fit_prediction(parts["unet"], "v_prediction", seed=seed)
    sched = {k: v for k, v in base["scheduler"].items() if not k.startswith("_")}
    parts["scheduler"] = getattr(diffusers, base["scheduler"]["_class_name"]).from_config(sched)
    if arch != "sdxl":
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return getattr(diffusers, base["pipeline"])(**parts)


def _open_clip_state(model: Any, extra_layer: bool, seed: int) -> dict[str, Any]:
    """A diffusers CLIP text model in OpenCLIP's layout (SD 2.x, SDXL's second encoder)."""
    import torch

    table = {"embeddings.token_embedding.weight": "token_embedding.weight",
             "embeddings.position_embedding.weight": "positional_embedding",
             "final_layer_norm.weight": "ln_final.weight", "final_layer_norm.bias": "ln_final.bias"}
    parts = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc",
             "mlp.fc2": "mlp.c_proj", "self_attn.out_proj": "attn.out_proj"}
    state = {k.removeprefix("text_model."): v for k, v in model.state_dict().items()}
    out: dict[str, Any] = {}
    layers = model.config.num_hidden_layers
    for key, value in state.items():
        if key in table:
            out[table[key]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.T
        elif key.startswith("encoder.layers."):
            _, _, index, rest = key.split(".", 3)
            if ".q_proj." in rest or ".k_proj." in rest or ".v_proj." in rest:
                continue
            part, _, leaf = rest.rpartition(".")
            out[f"transformer.resblocks.{index}.{parts[part]}.{leaf}"] = value
    for index in range(layers):
        for leaf in ("weight", "bias"):
            qkv = [state[f"encoder.layers.{index}.self_attn.{p}_proj.{leaf}"] for p in "qkv"]
            out[f"transformer.resblocks.{index}.attn.in_proj_{leaf}"] = torch.cat(qkv)
    hidden = model.config.hidden_size
    if extra_layer:  # SD 2.x files hold the last layer, which SD 2.x never reads
        gen = torch.Generator().manual_seed(seed)
        for key in [k for k in out if k.startswith("transformer.resblocks.0.")]:
            out[key.replace(".0.", f".{layers}.", 1)] = torch.randn(
                out[key].shape, generator=gen)
        out.setdefault("text_projection", torch.eye(hidden))
    return out


def to_ldm_arch_state_dict(pipe: Any, arch: str) -> dict[str, Any]:
    """Any tiny architecture's weights in its original single-file layout."""
    out = {k: v for k, v in to_ldm_state_dict(pipe).items()
           if not k.startswith("cond_stage_model.")}
    text = {k.removeprefix("text_model."): v for k, v in pipe.text_encoder.state_dict().items()}
    if arch == "sd1":
        out.update({"cond_stage_model.transformer.text_model." + k: v for k, v in text.items()})
    elif arch == "sd2":
        out.update({"cond_stage_model.model." + k: v
                    for k, v in _open_clip_state(pipe.text_encoder, True, 1).items()})
    else:
        out.update({"conditioner.embedders.0.transformer.text_model." + k: v
                    for k, v in text.items()})
        out.update({"conditioner.embedders.1.model." + k: v
                    for k, v in _open_clip_state(pipe.text_encoder_2, False, 1).items()})
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def save_arch_model(root: Path, arch: str, seed: int = 0) -> TinyModel:
    """A tiny model of ``arch`` as a diffusers folder and as an original-layout file."""
    from safetensors.torch import save_file

    pipe = build_arch_pipeline(root / f"work-{arch}", arch, seed)
    folder = root / f"tiny-{arch}"
    pipe.save_pretrained(folder, safe_serialization=True)
    checkpoint = root / f"tiny-{arch}.safetensors"
    save_file(to_ldm_arch_state_dict(pipe, arch), str(checkpoint))
    return TinyModel(folder=folder, checkpoint=checkpoint)


@pytest.fixture(scope="session")
def arch_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TinyModel]:
    """Tiny SD 1.x, SD 2.x and SDXL models with CLIP's tokenizer, saved once per session."""
    root = tmp_path_factory.mktemp("archmodels")
    return {arch: save_arch_model(root, arch) for arch in ("sd1", "sd2", "sdxl")}


# --- tiny LoRAs, in kohya/A1111 layout and in diffusers' own ------------------------------

_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "q_proj", "k_proj", "v_proj", "out_proj")


def _lora_modules(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    import torch

    return [(prefix + name, module) for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.endswith(_LORA_TARGETS)]


def save_tiny_lora(pipe: Any, path: Path, layout: str = "kohya", seed: int = 0,
                   rank: int = 4, scale: float = 0.3) -> Path:
    """A random LoRA for ``pipe``'s UNet and text encoder(s), written as kohya's sd-scripts
    do (``lora_unet_…``/``lora_te…_``, ``lora_down``/``lora_up``/``alpha``) or as diffusers
    saves it (``unet.….lora_A.weight``)."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    parts = [("unet", "lora_unet", pipe.unet, "")]
    two = getattr(pipe, "text_encoder_2", None) is not None
    for index, name in enumerate(("text_encoder", "text_encoder_2")):
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            inner = "" if hasattr(encoder, "text_model") else "text_model."
            parts.append((name, f"lora_te{index + 1}" if two else "lora_te", encoder, inner))
    state: dict[str, Any] = {}
    for diffusers_name, kohya_name, model, inner in parts:
        for module_name, module in _lora_modules(model, inner):
            down = torch.randn(rank, module.in_features, generator=gen) * scale
            up = torch.randn(module.out_features, rank, generator=gen) * scale
            if layout == "kohya":
                key = f"{kohya_name}_{module_name.replace('.', '_')}"
                state.update({f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up,
                              f"{key}.alpha": torch.tensor(float(rank))})
            else:
                key = f"{diffusers_name}.{module_name}"
                state.update({f"{key}.lora_A.weight": down, f"{key}.lora_B.weight": up})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def save_tiny_vae(vae: Any, path: Path) -> Path:
    """A VAE file as A1111 keeps them in ``models/VAE``: the original layout, unprefixed."""
    from safetensors.torch import save_file

    blocks = len(vae.config.block_out_channels)
    state = {}
    for key, value in vae.state_dict().items():
        ldm = _vae_key(key, blocks)
        if ".mid.attn_1." in ldm and value.ndim == 2:
            value = value[:, :, None, None]
        state[ldm] = value.detach().contiguous().clone()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def save_tiny_sdxl(root: Path, seed: int = 0) -> Path:
    """A tiny SDXL (two text encoders, pooled and size conditioning) as a diffusers folder."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    write_tokenizer_files(root / "tokenizer-src")
    tokenizer = CLIPTokenizer.from_pretrained(str(root / "tokenizer-src"), model_max_length=77)
    tokenizer_2 = CLIPTokenizer.from_pretrained(str(root / "tokenizer-src"), model_max_length=77,
                                                pad_token="!")  # as SDXL's second one
    torch.manual_seed(seed)
    text = dict(vocab_size=len(tokenizer), max_position_embeddings=77, hidden_act="gelu",
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=1, projection_dim=32, **TINY_TEXT)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=64,
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80, norm_num_groups=32)
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL(**TINY_VAE).eval(),
        text_encoder=CLIPTextModel(CLIPTextConfig(**text)).eval(),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text)).eval(),
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet.eval(),
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            steps_offset=1, timestep_spacing="leading"))
    folder = root / "tiny-sdxl"
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


# --- a tiny SDXL refiner: only SDXL's second text encoder, aesthetic-score conditioning ---


def build_refiner_pipeline(workdir: Path, seed: int = 0) -> Any:
    """A tiny SDXL refiner fitting ``build_arch_pipeline(…, "sdxl")`` (its second text
    encoder's size): the refiner's layout (a last level without attention, more transformer
    layers in the middle block), random weights."""
    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    from generator.render.singlefile import template, write_tokenizer

    cfg = _arch_configs("sdxl")
    base = template("sdxl_refiner")
    torch.manual_seed(seed + 1)
    unet = diffusers.UNet2DConditionModel(**dict(
        TINY_UNET, block_out_channels=(64, 128), attention_head_dim=(1, 2),
        transformer_layers_per_block=2, cross_attention_dim=128, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=128 + 5 * 8)).eval()
    write_tokenizer(workdir / "tokenizer_2", base["tokenizer_2"])
    sched = {k: v for k, v in base["scheduler"].items() if not k.startswith("_")}
    return diffusers.StableDiffusionXLImg2ImgPipeline(
        vae=diffusers.AutoencoderKL(**cfg["vae"]).eval(), text_encoder=None, tokenizer=None,
        text_encoder_2=CLIPTextModelWithProjection(
            CLIPTextConfig(**cfg["texts"]["text_encoder_2"])).eval(),
        tokenizer_2=CLIPTokenizer.from_pretrained(str(workdir / "tokenizer_2")), unet=unet,
        scheduler=diffusers.EulerDiscreteScheduler.from_config(sched),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)


def save_tiny_refiner(root: Path, seed: int = 0) -> TinyModel:
    """The tiny refiner as a diffusers folder and as an original-layout single file (its
    text encoder as ``conditioner.embedders.0.model.``, as Stability's refiner file)."""
    from types import SimpleNamespace

    import torch
    from safetensors.torch import save_file

    pipe = build_refiner_pipeline(root / "work-refiner", seed)
    folder = root / "tiny-refiner"
    pipe.save_pretrained(folder, safe_serialization=True)
    shim = SimpleNamespace(unet=pipe.unet, vae=pipe.vae, text_encoder=torch.nn.Module())
    state = to_ldm_state_dict(shim)
    state.update({"conditioner.embedders.0.model." + k: v.detach().contiguous().clone()
                  for k, v in _open_clip_state(pipe.text_encoder_2, False, 1).items()})
    checkpoint = root / "tiny-refiner.safetensors"
    save_file(state, str(checkpoint))
    return TinyModel(folder=folder, checkpoint=checkpoint)


def save_tiny_esrgan(path: Path, seed: int = 0) -> Path:
    """A tiny random ESRGAN (RRDBNet, 4×) in the original ESRGAN key layout, as a
    ``.safetensors`` or ``.pth`` file: what A1111 keeps in ``models/ESRGAN``."""
    import torch
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)
    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def tiny_refiner(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """The tiny SDXL refiner, saved once per session (folder + single file)."""
    return save_tiny_refiner(tmp_path_factory.mktemp("refiner"))


# --- tiny SD 2.x UNets that really predict ε or v (for the SD 2.x test run) --------------


def fit_prediction(unet: Any, kind: str, samples: int = 256, seed: int = 0) -> None:
    """Make a random UNet predict ``kind`` (``epsilon`` or ``v_prediction``) by fitting its
    output convolution by least squares (ridge) to that target on noised latents.

    A random UNet's output means neither ε nor v, so A1111's test run (UNet output vs
    input at the noisiest step) says nothing about it. Fitted, the same random trunk
    predicts ε or v on the noisy half of SD's schedule (where the test runs), on latents
    of mean 1 and deviation 0.5: there an ε model returns about its input
    (output - input ≈ -0.4 at the test's input) and a v model about -x0 (≈ -1.4), on
    either side of A1111's threshold of -1, as the trained SD 2.x models are.
    """
    import torch
    from diffusers import DDPMScheduler

    alphas = DDPMScheduler(beta_start=0.00085, beta_end=0.012,
                           beta_schedule="scaled_linear").alphas_cumprod
    gen = torch.Generator().manual_seed(seed)
    shape = (samples, unet.config.in_channels, 8, 8)
    x0 = 1.0 + 0.5 * torch.randn(shape, generator=gen)
    noise = torch.randn(shape, generator=gen)
    steps = torch.randint(500, 1000, (samples,), generator=gen)
    a = alphas[steps].sqrt().view(-1, 1, 1, 1)
    s = (1 - alphas[steps]).sqrt().view(-1, 1, 1, 1)
    target = noise if kind == "epsilon" else a * noise - s * x0
    context = torch.randn(samples, 2, unet.config.cross_attention_dim, generator=gen)
    seen: list[Any] = []
    hook = unet.conv_out.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    with torch.no_grad():
        unet(a * x0 + s * noise, steps, encoder_hidden_states=context)
    hook.remove()
    conv = unet.conv_out
    columns = torch.nn.functional.unfold(seen[0], conv.kernel_size, padding=conv.padding)
    rows = torch.cat([columns.transpose(1, 2).reshape(-1, columns.shape[1]),
                      torch.ones(columns.shape[0] * columns.shape[2], 1)], dim=1)
    wanted = target.permute(0, 2, 3, 1).reshape(-1, target.shape[1])
    solved = torch.linalg.solve(rows.T @ rows + 1e-3 * torch.eye(rows.shape[1]),
                                rows.T @ wanted)
    with torch.no_grad():
        conv.weight.copy_(solved[:-1].T.reshape(conv.weight.shape))
        conv.bias.copy_(solved[-1])


def save_sd2_predicting(root: Path, kind: str, seed: int = 0) -> TinyModel:
    """A tiny SD 2.x whose UNet predicts ``kind``: a folder (its scheduler says so) and a
    single file with nothing in its tensors that says so (no ``v_pred``)."""
    from safetensors.torch import save_file

    pipe = build_arch_pipeline(root / f"work-sd2-{kind}", "sd2", seed)
    fit_prediction(pipe.unet, kind, seed=seed)
    pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config,
                                                      prediction_type=kind)
    folder = root / f"tiny-sd2-{kind}"
    pipe.save_pretrained(folder, safe_serialization=True)
    checkpoint = root / f"tiny-sd2-{kind}.safetensors"
    save_file(to_ldm_arch_state_dict(pipe, "sd2"), str(checkpoint))
    return TinyModel(folder=folder, checkpoint=checkpoint)


@pytest.fixture(scope="session")
def sd2_predicting(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TinyModel]:
    """Tiny SD 2.x models that predict ε and v (same random trunk, fitted output)."""
    root = tmp_path_factory.mktemp("sd2predicting")
    return {kind: save_sd2_predicting(root, kind) for kind in ("epsilon", "v_prediction")}
