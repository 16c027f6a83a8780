"""LoRAs named in a prompt the way A1111 writes them: ``<lora:name:weight>``.

The tags are read when the site is planned (each LoRA file's hash and weight go into the
cache key) and taken out of the prompt before it is encoded: the text encoder never
sees them, exactly as in A1111. A prompt without tags is left as it is, so its key and
derived seed do not change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import short_repr

#: ``<lora:name>`` or ``<lora:name:weight>`` (A1111 also reads ``<lyco:…>`` the same way).
TAG = re.compile(r"<(?:lora|lyco):([^<>:]+)(?::([^<>:]*))?(?::[^<>]*)?>", re.IGNORECASE)


def split_prompt(prompt: str) -> tuple[str, tuple[tuple[str, float], ...]]:
    """The prompt without its LoRA tags, and the tags' (name, weight) in order.

    Raises ValueError with a one-line message for a weight that is not a number or a
    LoRA named twice.
    """
    found: dict[str, float] = {}
    for match in TAG.finditer(prompt):
        name, weight = match.group(1).strip(), (match.group(2) or "1").strip()
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(f"LoRA {short_repr(name)} has weight {short_repr(weight)}, "
                             "not a number (write <lora:name:0.8>)") from None
        if name in found:
            raise ValueError(f"LoRA {short_repr(name)} is named twice in the prompt")
        found[name] = value
    if not found:
        return prompt, ()
    return TAG.sub("", prompt), tuple(found.items())


def prompt_text(prompt: str) -> str:
    """What the text encoder reads: the prompt without LoRA tags."""
    return TAG.sub("", prompt) if "<" in prompt else prompt


def merged(prompt: str, mapping: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """The LoRAs of the prompt's tags and of a spec's ``loras:`` mapping, together."""
    _, tags = split_prompt(prompt)
    names = dict(tags)
    for name, weight in mapping.items():
        if name in names:
            raise ValueError(f"LoRA {short_repr(name)} is both in the prompt and in 'loras:'")
        names[name] = float(weight)
    return tuple(names.items())
