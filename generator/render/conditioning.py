"""A prompt in A1111's syntax as CLIP embeddings, made the way A1111 makes them.

``prompts.parse_attention`` gives weighted runs of text; each run is tokenized alone,
the tokens are cut into chunks of 75 (at ``BREAK``, and at the last comma when one
lies within the last 20 tokens of a full chunk), each chunk is framed by BOS and EOS
and padded to 77, encoded by CLIP on its own (``clip_skip``: A1111's numbering, 1 is
the last layer), weighted (multiply every token's embedding by its weight, then scale
the whole chunk back to its original mean) and the chunks are joined. A prompt without
syntax of up to 75 tokens gives exactly the embedding diffusers makes of it.

torch is imported inside functions, like every renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..prompts import BREAK, effective_text, parse_attention

CHUNK = 75  # tokens per chunk, BOS and EOS aside
COMMA_BACKTRACK = 20  # A1111's "comma padding backtrack" default

Chunk = tuple[list[int], list[float]]


def split_chunks(pieces: Sequence[tuple[list[int], float]], comma: int | None) -> list[Chunk]:
    """Tokens with their weights, cut into chunks of at most ``CHUNK`` as A1111 cuts them.

    ``pieces`` are the tokens of each run, ``BREAK`` as ``([], -1.0)``. A full chunk
    whose last comma is within ``COMMA_BACKTRACK`` tokens of its end hands the words
    after that comma to the next chunk. Never empty: an empty prompt is one chunk.
    """
    chunks: list[Chunk] = []
    tokens: list[int] = []
    weights: list[float] = []
    last_comma = -1

    def close() -> None:
        nonlocal tokens, weights, last_comma
        chunks.append((tokens, weights))
        tokens, weights, last_comma = [], [], -1

    for ids, weight in pieces:
        if weight == BREAK[1] and not ids:
            close()
            continue
        for token in ids:
            if token == comma:
                last_comma = len(tokens)
            elif (len(tokens) == CHUNK and last_comma != -1
                  and len(tokens) - last_comma <= COMMA_BACKTRACK):
                cut = last_comma + 1
                moved = tokens[cut:], weights[cut:]
                tokens, weights = tokens[:cut], weights[:cut]
                close()
                tokens, weights = moved
            if len(tokens) == CHUNK:
                close()
            tokens.append(token)
            weights.append(weight)
    if tokens or not chunks:
        close()
    return chunks


def framed(chunk: Chunk, bos: int, eos: int, pad: int) -> Chunk:
    """``BOS tokens EOS pad…``: 77 ids, and their weights (1 for the frame)."""
    tokens, weights = chunk
    fill = CHUNK - len(tokens)
    return ([bos, *tokens, eos, *[pad] * fill], [1.0, *weights, 1.0, *[1.0] * fill])


def tokenized_chunks(prompt: str, tokenizer: Any) -> list[Chunk]:
    """The 77-token chunks of ``prompt`` (A1111 syntax) and their weights."""
    pieces: list[tuple[list[int], float]] = []
    for text, weight in parse_attention(effective_text(prompt)):
        if (text, weight) == BREAK:
            pieces.append(([], weight))
        else:
            ids = tokenizer(text, add_special_tokens=False, truncation=False,
                            verbose=False)["input_ids"]
            pieces.append((list(ids), weight))
    comma = tokenizer.get_vocab().get(",</w>")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return [framed(chunk, tokenizer.bos_token_id, tokenizer.eos_token_id, pad)
            for chunk in split_chunks(pieces, comma)]


def plain_chunk(prompt: str, tokenizer: Any) -> list[Chunk]:
    """``prompt`` as diffusers reads it: the text as is, cut after 75 tokens."""
    ids = tokenizer(prompt, add_special_tokens=False, truncation=False,
                    verbose=False)["input_ids"][:CHUNK]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return [framed((list(ids), [1.0] * len(ids)), tokenizer.bos_token_id,
                   tokenizer.eos_token_id, pad)]


def encode(prompt: str, pipe: Any, clip_skip: int, syntax: str = "a1111") -> Any:
    """``[1, 77 × chunks, dim]``: the embedding of ``prompt`` for ``pipe``'s UNet."""
    import torch

    encoder = pipe.text_encoder
    # transformers >= 5.6 has no ``text_model`` level (diffusers' own clip_skip needs it)
    final_norm = getattr(encoder, "text_model", encoder).final_layer_norm
    device = pipe._execution_device
    if hasattr(pipe, "maybe_convert_prompt"):  # textual inversions of several vectors
        prompt = pipe.maybe_convert_prompt(prompt, pipe.tokenizer)
    chunks = (tokenized_chunks if syntax == "a1111" else plain_chunk)(prompt, pipe.tokenizer)
    out = []
    for tokens, weights in chunks:
        ids = torch.tensor([tokens], device=device)
        with torch.no_grad():
            result = encoder(ids, output_hidden_states=clip_skip > 1)
            # A1111: the layer's output through the final layer norm
            z = final_norm(result.hidden_states[-clip_skip]) if clip_skip > 1 else result[0]
        out.append(emphasized(z, weights))
    return torch.cat(out, dim=1).to(dtype=encoder.dtype, device=device)


def encode_sdxl(prompt: str, pipe: Any, syntax: str = "a1111") -> tuple[Any, Any]:
    """SDXL: ``[1, 77 × chunks, dim₁ + dim₂]`` and the pooled embedding, as A1111 makes
    them: each encoder's penultimate layer (A1111 has no Clip skip for SDXL), weighted
    per encoder, joined; the pooled one from the second encoder's first chunk."""
    import torch

    per_encoder: list[Any] = []
    pooled: Any = None
    for tokenizer, encoder in ((pipe.tokenizer, pipe.text_encoder),
                               (pipe.tokenizer_2, pipe.text_encoder_2)):
        if encoder is None:  # an SDXL refiner has only the second one
            continue
        text = (pipe.maybe_convert_prompt(prompt, tokenizer)
                if hasattr(pipe, "maybe_convert_prompt") else prompt)
        chunks = (tokenized_chunks if syntax == "a1111" else plain_chunk)(text, tokenizer)
        out = []
        for tokens, weights in chunks:
            ids = torch.tensor([tokens], device=pipe._execution_device)
            with torch.no_grad():
                result = encoder(ids, output_hidden_states=True)
            if pooled is None and result[0].ndim == 2:  # CLIPTextModelWithProjection
                pooled = result[0]
            out.append(emphasized(result.hidden_states[-2], weights))
        per_encoder.append(torch.cat(out, dim=1))
    dtype = pipe.text_encoder_2.dtype
    return torch.cat(per_encoder, dim=-1).to(dtype=dtype), pooled.to(dtype=dtype)


def emphasized(z: Any, weights: list[float]) -> Any:
    """A1111's "Original" emphasis: multiply, then restore the chunk's mean."""
    import torch

    if all(weight == 1.0 for weight in weights):
        return z
    original = z.mean()
    z = z * torch.tensor(weights, dtype=z.dtype, device=z.device).reshape(1, -1, 1)
    return z * (original / z.mean())


def padded(cond: Any, uncond: Any, empty: Any) -> tuple[Any, Any]:
    """Both to the same number of chunks with the empty prompt's chunk, as A1111's
    "pad prompt/negative prompt" does (diffusers needs one shape for both)."""
    import torch

    def grown(z: Any, length: int) -> Any:
        repeats = (length - z.shape[1]) // empty.shape[1]
        return torch.cat([z, empty.repeat(1, repeats, 1)], dim=1) if repeats else z

    length = max(cond.shape[1], uncond.shape[1])
    return grown(cond, length), grown(uncond, length)
