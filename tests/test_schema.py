"""The key tables and the mode registry: what every other module relies on them to say."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from generator import schema
from generator.errors import GenimgError, Location
from generator.infotext import PARAMETERS
from generator.modes import MODES, RENDER_ORDER, RENDERERS
from generator.samplers import SAMPLERS
from generator.specs import ImageSpec
from tests.helpers import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("table", ["SPEC", "CONFIG", "SPEED"])
def test_the_readme_tables_are_the_schema(table: str) -> None:
    """Regenerate with ``python -m generator.schema`` when a key changes."""
    assert schema.markdown_table(getattr(schema, table)) in README


def test_the_readme_lists_every_sampler() -> None:
    listed = re.search(r"Samplers: (.*?)\.\n\n", README, re.S)
    assert listed is not None
    assert re.findall(r"`([^`]+)`", listed.group(1)) == list(SAMPLERS)


def test_image_spec_has_a_field_for_each_spec_key() -> None:
    fields = [f.name for f in dataclasses.fields(ImageSpec)][:-2]  # location, key_lines
    assert sorted(fields) == sorted(name.replace("from", "source") for name in schema.SPEC)


def test_modes_hash_only_keys_that_change_pixels() -> None:
    pixel_roles = {schema.Role.PIXELS, schema.Role.SEED}
    for mode in MODES.values():
        for name in mode.key_fields:
            assert schema.SPEC[name].role in pixel_roles, (mode.name, name)
        for name in mode.seed_fields:
            assert schema.SPEC[name].role is schema.Role.SEED, (mode.name, name)
        assert mode.renderer in RENDERERS and mode.renderer in RENDER_ORDER
        assert set(mode.infotext) <= {*PARAMETERS, "generation"}


def test_every_renderer_and_option_table_can_be_found_without_torch() -> None:
    code = ("import sys; from generator.modes import RENDERERS; "
            "[e.option_table() for e in RENDERERS.values()]; "
            "import generator.build, generator.cli; "
            "print(sorted(m for m in ('torch', 'diffusers', 'gfpgan') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_config_imports_nothing_from_render() -> None:
    source = (REPO / "generator" / "config.py").read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import) \.*render", source, re.M)


def test_messages_read_alike() -> None:
    where = Location("genimg.yaml", 3)
    table = schema.table(
        schema.Key("steps", (int,), "steps", 20, schema.between(1, 500)),
        schema.Key("mode", (str,), "mode", "a", schema.one_of(("alpha", "beta"))),
        schema.Key("name", (str,), "a name", schema.REQUIRED))
    cases = [
        ({"name": "x", "stpes": 1}, "genimg.yaml:3: unknown thing key 'stpes' "
                                    "(did you mean 'steps'?)"),
        ({"name": "x", "steps": True}, "genimg.yaml:3: 'steps' must be an integer, got True"),
        ({"name": "x", "steps": None}, "genimg.yaml:3: 'steps' has no value"),
        ({"name": "x", "steps": 0}, "genimg.yaml:3: 'steps' must be between 1 and 500, got 0"),
        ({"name": "x", "mode": "alfa"}, "genimg.yaml:3: unknown mode 'alfa' (did you mean "
                                        "'alpha'?); expected one of alpha, beta"),
        ({}, "genimg.yaml:3: thing needs 'name:' (a name)"),
    ]
    for data, message in cases:
        with pytest.raises(GenimgError) as info:
            schema.check_keys(data, table, "thing", where)
        assert str(info.value) == message
    assert schema.check_keys({"name": "x", "steps": 3}, table, "thing", where) == {
        "name": "x", "steps": 3}
