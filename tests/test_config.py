"""genimg.yaml -> SiteConfig: defaults, sub-path base URLs, and errors with lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.config import load_config
from generator.errors import GenimgError


def config_at(tmp_path: Path, text: str):
    (tmp_path / "genimg.yaml").write_text(text, encoding="utf-8")
    return load_config(tmp_path)


def test_defaults_and_paths(tmp_path: Path) -> None:
    config = config_at(tmp_path, "title: T\nbase_url: https://user.github.io/blog\n")
    assert config.base_path == "/blog/" and config.language == "en"
    assert config.posts_dir == tmp_path.resolve() / "posts"
    assert config.cache_dir == tmp_path.resolve() / ".genimg"
    assert not config.allow_downloads and config.batch_size == 4


def test_models_in_both_forms(tmp_path: Path) -> None:
    config = config_at(tmp_path, "models:\n  default: org/model\n"
                                 "  anime:\n    source: m.safetensors\n    config: cfg/\n")
    assert config.models["default"].source == "org/model"
    assert config.models["anime"].config == "cfg/"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title: [x\n", "genimg.yaml:1: invalid YAML"),
        ("- a\n- b\n", "genimg.yaml:1: the config must be a mapping"),
        ("title: T\ntitel: x\n", "genimg.yaml:2: unknown config key 'titel' (did you mean"),
        ("per_page: many\n", "genimg.yaml:1: 'per_page' must be an integer"),
        ("per_page: 0\n", "genimg.yaml:1: 'per_page' must be at least 1"),
        ("device: tpu\n", "genimg.yaml:1: 'device' must be auto, cpu, cuda"),
        ("models:\n  default: 3\n", "genimg.yaml:2: model 'default' must be a hub id"),
        ("defaults:\n  steps: 0\n", "'steps' must be between 1 and 500"),
        ("defaults:\n  seeed: 1\n",
         "genimg.yaml:2: unknown image default key 'seeed' (did you mean 'seed'?)"),
        ("face_restorer:\n  model: a.pth\n  detection: b.pth\n  parsing: c.pth\n"
         "  options:\n    out_sise: 64\n",
         "genimg.yaml:6: unknown face_restorer option key 'out_sise' (did you mean 'out_size'?)"),
    ],
)
def test_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(GenimgError) as info:
        config_at(tmp_path, text)
    assert expected in str(info.value)


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "genimg.yaml").write_bytes(b"title: \xff\xfe\n")
    with pytest.raises(GenimgError, match=r"genimg\.yaml:1: not UTF-8 text"):
        load_config(tmp_path)
