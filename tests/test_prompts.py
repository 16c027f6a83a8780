"""A1111's prompt syntax (``generator.prompts``): its documented examples, as data, and
properties of the attention parser; the spec checks built on it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generator.errors import GenimgError, Location
from generator.prompts import effective_text, is_plain, parse_attention, unsupported
from generator.specs import parse_image
from tests.helpers import plan_key

# A1111's ``parse_prompt_attention`` docstring examples, and its wiki's (Features:
# "Attention/emphasis"), as (prompt, runs).
ATTENTION_EXAMPLES = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1),
      ("hill", 0.55), (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]),
    # the wiki: a (word) ×1.1, ((word)) ×1.21, [word] ÷1.1, (word:1.5), escapes
    ("a (word)", [("a ", 1.0), ("word", 1.1)]),
    ("a ((word))", [("a ", 1.0), ("word", 1.2100000000000002)]),
    ("a [word]", [("a ", 1.0), ("word", 0.9090909090909091)]),
    ("a (word:1.5)", [("a ", 1.0), ("word", 1.5)]),
    ("a (word:0.25)", [("a ", 1.0), ("word", 0.25)]),
    ("a \\(word\\)", [("a (word)", 1.0)]),
    ("[unbalanced", [("unbalanced", 0.9090909090909091)]),
    ("unbalanced)]", [("unbalanced)]", 1.0)]),
    ("a:b", [("a:b", 1.0)]),
    ("", [("", 1.0)]),
    # BREAK: a chunk boundary (weight -1), the whitespace around it gone
    ("a cat BREAK a dog", [("a cat", 1.0), ("BREAK", -1.0), ("a dog", 1.0)]),
    ("a cat\nBREAK\n(dog)", [("a cat", 1.0), ("BREAK", -1.0), ("", 1.0), ("dog", 1.1)]),
    ("BREAKING news", [("BREAKING news", 1.0)]),
    ("lone \\ backslash", [("lone  backslash", 1.0)]),
    ("\\\\ escaped", [("\\ escaped", 1.0)]),
]

# (prompt, what genimg says, or None): A1111's schedule docstring and its fall-backs.
UNSUPPORTED_EXAMPLES = [
    ("test", None),
    ("a [b:3]", "prompt editing"),
    ("a [b: 3]", "prompt editing"),
    ("a [[[b]]:2]", "prompt editing"),
    ("[(a:2):3]", "prompt editing"),
    ("a [b : c : 1] d", "prompt editing"),
    ("a[b:[c:d:2]:1]e", "prompt editing"),
    ("a [unbalanced", None),
    ("a [b:.5] c", "prompt editing"),
    ("((a][:b:c [d:3]", "prompt editing"),
    ("[a|(b:1.1)]", "alternation"),
    ("a [cat|dog] b", "alternation"),
    ("a \\[cat|dog] b", None),
    ("a \\[cat:dog:0.5] b", None),
    ("a (cat:1.2) [dog] BREAK (sky)", None),
    ("a cat AND a dog", "AND"),
    ("a cat:1.5", "ends in ':1.5'"),
    ("(a cat:1.5)", None),
    ("ANDROID", None),
    ("a cat <lora:add_detail:0.8>", None),  # genimg loads LoRAs (loras.py)
    ("a <hypernet:anime:1>", "extra network (hypernet)"),
    ("a <cat> and <dog>", None),
    ("(a:.)", "the weight '.', which is not a number"),  # A1111 itself fails on it
    ("(a:1.2.3)", "the weight '1.2.3'"),
    ("a | b [c] \\[d|e]", None),  # no bar inside square brackets
    ("a [b|c] " * 100, "characters long and may hold prompt editing"),  # never a long parse
    ("(a:1.2), " * 100, None),
]


@pytest.mark.parametrize(("prompt", "runs"), ATTENTION_EXAMPLES)
def test_attention_examples(prompt: str, runs: list[tuple[str, float]]) -> None:
    assert parse_attention(prompt) == runs


@pytest.mark.parametrize(("prompt", "problem"), UNSUPPORTED_EXAMPLES)
def test_unsupported_examples(prompt: str, problem: str | None) -> None:
    found = unsupported(prompt)
    assert found == problem if problem is None else problem in (found or "")


def test_effective_text_drops_what_a1111_strips() -> None:
    assert effective_text("a cat \n") == "a cat"
    assert effective_text("  a cat") == "  a cat"
    assert effective_text("a cat\nand a dog") == "a cat\nand a dog"  # only one line


# --- properties -----------------------------------------------------------------------

SPECIAL = re.compile(r"([\\()\[\]])")
words = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40).filter(
    lambda t: "BREAK" not in t)


def escaped(text: str) -> str:
    return SPECIAL.sub(r"\\\1", text)


@given(words)
def test_escaped_text_is_plain_text(text: str) -> None:
    assert parse_attention(escaped(text)) == [(text, 1.0)]


@given(words.filter(bool), st.integers(1, 4))
def test_each_round_bracket_weighs_by_1_1(text: str, depth: int) -> None:
    [(piece, weight)] = parse_attention("(" * depth + escaped(text) + ")" * depth)
    assert piece == text
    assert weight == pytest.approx(1.1 ** depth)


@given(words.filter(bool), st.decimals(0, 10, places=2))
def test_an_explicit_weight_is_the_weight(text: str, weight: object) -> None:
    [(piece, got)] = parse_attention(f"({escaped(text)}:{weight})")
    assert (piece, got) == (text, float(str(weight)))


def _dropped(kept: str, text: str) -> str | None:
    """The characters of ``text`` that ``kept`` leaves out, if ``kept`` is ``text`` with
    characters taken out (in order); None if it is not."""
    dropped, at = [], 0
    for char in text:
        if at < len(kept) and kept[at] == char:
            at += 1
        else:
            dropped.append(char)
    return "".join(dropped) if at == len(kept) else None


@given(st.text(st.sampled_from("ab ,.:1()[]\\\n|"), max_size=40) | st.text(max_size=60))
def test_any_text_parses_and_keeps_its_characters(text: str) -> None:
    """Never a crash, and only syntax is dropped: brackets, backslashes, weights, BREAK."""
    runs = parse_attention(text)
    kept = "".join(piece for piece, weight in runs if weight != -1)
    dropped = _dropped(kept, text)
    assert dropped is not None, (text, kept)  # nothing added, nothing reordered
    assert not set(dropped) - set("\\()[]:+-.0123456789BREAK") - {c for c in dropped
                                                                  if c.isspace()}
    assert unsupported(text) is None or isinstance(unsupported(text), str)


@given(words)
def test_plain_text_is_plain(text: str) -> None:
    assert is_plain(escaped(text)) == (escaped(text) == text)


# --- specs ----------------------------------------------------------------------------

WHERE = Location("posts/p.md", 7)


def test_unsupported_syntax_is_an_error_at_its_line() -> None:
    raw = {"prompt": "a [cat:dog:0.5]", "prompt_syntax": "a1111"}
    with pytest.raises(GenimgError) as error:
        parse_image(raw, WHERE, key_lines={"prompt": 9})
    assert str(error.value).startswith("posts/p.md:9: 'prompt' uses prompt editing")


def test_plain_syntax_keeps_todays_meaning() -> None:
    """Without ``prompt_syntax: a1111`` the text goes to CLIP as written, as before."""
    spec = parse_image({"prompt": "a [cat:dog:0.5]\n"}, WHERE)
    assert spec.prompt == "a [cat:dog:0.5]\n"


def test_a1111_prompts_keep_their_key_without_outer_whitespace() -> None:
    """What `genimg info` prints (readers strip the final newline) pastes back to the key."""
    def key(prompt: str) -> str:
        spec = parse_image({"prompt": prompt, "negative_prompt": " ugly\n",
                            "prompt_syntax": "a1111"}, WHERE)
        return plan_key(spec, "m", None, None)

    assert key("a (cat:1.2)\n") == key("a (cat:1.2)") == key("  a (cat:1.2) ")
    assert key("a (cat:1.3)") != key("a (cat:1.2)")
