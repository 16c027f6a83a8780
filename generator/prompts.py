"""A1111's prompt dialect, read the way A1111 reads it (pure text: no torch).

A1111 reads a prompt in four passes, and genimg follows each:

0. Extra networks (``<lora:name:0.8>``) are taken out of the text and applied (genimg
   does so for LoRAs: ``loras.py``).
1. ``AND`` splits it into sub-prompts and a trailing ``:1.5`` weighs one; every
   sub-prompt loses its trailing whitespace (so ``"a cat\\n"`` is ``"a cat"``).
2. Prompt editing ``[a:b:0.5]`` and alternation ``[a|b]`` change the prompt while
   sampling, when a small grammar accepts the whole prompt (it falls back to plain
   text otherwise).
3. Attention: ``(x)`` ×1.1, ``((x))`` ×1.21, ``(x:1.3)``, ``[x]`` ÷1.1, ``\\(``
   escapes, ``BREAK`` (a new 75-token chunk); brackets left open weigh to the end.

genimg renders pass 3 exactly and refuses what passes 0, 1 and 2 would change
(``unsupported``), so a prompt never renders as something other than A1111 meant.
The grammar of pass 2 is A1111's, run by lark like A1111 runs it, so genimg refuses
exactly the prompts A1111 would edit.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

#: A ``BREAK`` segment in ``parse_attention``'s result (A1111 marks it with weight -1).
BREAK = ("BREAK", -1.0)
ROUND, SQUARE = 1.1, 1 / 1.1

# One token of the attention syntax: an escape, a bracket, a ``:weight)`` closing a
# round bracket, a run of plain text, or a lone colon.
_ATTENTION = re.compile(r"""
    \\[()\[\]\\] | \\ | \( | \[ | :([+-]?[.\d]+)\) | \) | \] | [^\\()\[\]:]+ | :
""", re.X)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_AND = re.compile(r"\bAND\b")
_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")  # A1111 takes these out of the prompt
# A sub-prompt and its optional trailing weight (only within one line, as A1111's).
_SUBPROMPT = re.compile(r"^(\s*.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")

# Prompt editing and alternation, as A1111's grammar has them.
_SCHEDULE_GRAMMAR = r"""
!start: (prompt | /[][():]/+)*
prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
!emphasized: "(" prompt ")"
        | "(" prompt ":" prompt ")"
        | "[" prompt "]"
scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER "]"
alternate: "[" prompt ("|" prompt)+ "]"
WHITESPACE: /\s+/
plain: /([^\\\[\]():|]|\\.)+/
%import common.SIGNED_NUMBER -> NUMBER
"""


# What prompt editing cannot do without: ``:number]`` (alternation: a ``|`` inside ``[``).
_WHEN = re.compile(r":\s*[-+]?(?:\d+\.?\d*|\.\d+)\s*\]")
#: Longer prompts that may edit are refused unparsed: lark's Earley parser, like A1111's,
#: takes seconds on a few hundred characters full of brackets (and far more beyond).
_LONGEST_PARSED = 500


def parse_attention(text: str) -> list[tuple[str, float]]:
    """``text`` as ``(piece, weight)`` runs, ``BREAK`` as ``("BREAK", -1.0)``.

    Neighbouring pieces of equal weight are joined, and an empty prompt is
    ``[("", 1.0)]``, both as A1111 has it.
    """
    runs: list[list[Any]] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def weigh(start: int, factor: float) -> None:
        for run in runs[start:]:
            run[1] *= factor

    for match in _ATTENTION.finditer(text):
        piece, weight = match.group(0), match.group(1)
        if piece.startswith("\\"):
            runs.append([piece[1:], 1.0])
        elif piece == "(":
            round_open.append(len(runs))
        elif piece == "[":
            square_open.append(len(runs))
        elif weight is not None and round_open and _number(weight):
            weigh(round_open.pop(), float(weight))
        elif piece == ")" and round_open:
            weigh(round_open.pop(), ROUND)
        elif piece == "]" and square_open:
            weigh(square_open.pop(), SQUARE)
        else:
            for i, part in enumerate(_BREAK.split(piece)):
                if i:
                    runs.append(list(BREAK))
                runs.append([part, 1.0])
    for start in round_open:
        weigh(start, ROUND)
    for start in square_open:
        weigh(start, SQUARE)
    return _joined(runs)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:  # ``(a:.)`` or ``(a:1.2.3)``: A1111 fails on it; ``unsupported`` says so
        return False
    return True


def _joined(runs: list[list[Any]]) -> list[tuple[str, float]]:
    if not runs:
        return [("", 1.0)]
    out = [runs[0]]
    for run in runs[1:]:
        if run[1] == out[-1][1]:
            out[-1] = [out[-1][0] + run[0], run[1]]
        else:
            out.append(run)
    return [(text, weight) for text, weight in out]


def effective_text(prompt: str) -> str:
    """The prompt A1111's attention pass sees: without the trailing whitespace that
    its sub-prompt pass strips from a one-line prompt (a multi-line one stays)."""
    match = _SUBPROMPT.search(prompt)
    return match.group(1) if match else prompt


def unsupported(prompt: str) -> str | None:
    """Why A1111 would render ``prompt`` in a way genimg does not, or None."""
    networks = (found for found in _EXTRA_NETWORK.finditer(prompt)
                if found.group(1).lower() not in ("lora", "lyco"))  # LoRAs: loras.py
    network = next(networks, None)
    if network:
        return (f"uses {network.group(0)!r}, an A1111 extra network ({network.group(1)}), "
                "which genimg does not support")
    weights = (found.group(1) for found in _ATTENTION.finditer(prompt))
    for weight in weights:
        if weight is not None and not _number(weight):
            return f"has the weight {weight!r}, which is not a number"
    if len(_AND.split(prompt)) > 1:
        return "uses AND (composable prompts), which genimg does not support"
    match = _SUBPROMPT.search(prompt)
    if match and match.group(2) is not None:
        return (f"ends in ':{match.group(2)}', a weight A1111 gives the whole prompt "
                "(composable prompts), which genimg does not support")
    kind = _schedule_kind(prompt)
    if kind == "scheduled":
        return ("uses prompt editing ([from:to:when]), which genimg does not support; "
                "write '\\[' for a bracket")
    if kind == "too long":
        return (f"is {len(prompt)} characters long and may hold prompt editing or alternation, "
                f"which genimg checks in prompts of up to {_LONGEST_PARSED}")
    if kind == "alternate":
        return "uses alternation ([a|b]), which genimg does not support; write '\\[' for a bracket"
    return None


@lru_cache(maxsize=1)
def _schedule_parser() -> Any:
    import lark  # here: only a spec that asks for A1111's syntax needs it

    return lark.Lark(_SCHEDULE_GRAMMAR)


def _schedule_kind(prompt: str) -> str | None:
    """``scheduled`` or ``alternate`` if A1111 would edit the prompt while sampling."""
    if not (_WHEN.search(prompt) or _bar_in_brackets(prompt)):  # then neither: no parser
        return None
    if len(prompt) > _LONGEST_PARSED:  # its Earley parser takes cubic time at worst
        return "too long"
    import lark

    try:
        tree = _schedule_parser().parse(prompt)
    except lark.exceptions.LarkError:  # A1111 then reads the prompt as plain text
        return None
    kinds = {node.data for node in tree.iter_subtrees()}
    for kind in ("scheduled", "alternate"):
        if kind in kinds:
            return kind
    return None


def _bar_in_brackets(prompt: str) -> bool:
    """Is there a ``|`` after an unescaped ``[`` that no ``]`` closed?"""
    depth = 0
    for piece in re.findall(r"\\.|[\[\]|]", prompt):
        if piece == "[":
            depth += 1
        elif piece == "]":
            depth = max(0, depth - 1)
        elif piece == "|" and depth:
            return True
    return False


def is_plain(prompt: str) -> bool:
    """True if the attention pass leaves ``prompt`` as one run of weight 1, unchanged."""
    text = effective_text(prompt)
    return parse_attention(text) == [(text, 1.0)]
