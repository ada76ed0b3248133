"""etc/waz-actors.toml: loads, holds exactly the defaults, and names every setting."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from waz_actors import config as config_mod
from waz_actors.config import Config, InstanceConfig
from waz_actors.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "waz-actors.toml"
SERVICE_PATHS = {"state_dir": "/var/lib/waz-actors", "runtime_dir": "/run/waz-actors"}


def test_example_loads_with_the_defaults_and_service_paths() -> None:
    cfg = config_mod.load(EXAMPLE)
    expected = Config().with_overrides(**SERVICE_PATHS)
    for f in dataclasses.fields(Config):
        assert getattr(cfg, f.name) == getattr(expected, f.name), f.name
    assert cfg == expected
    assert cfg.instances == ()


def test_every_setting_is_present_and_commented() -> None:
    text = EXAMPLE.read_text()
    data = tomllib.loads(text)
    lines = text.splitlines()
    for f in dataclasses.fields(Config):
        if f.name == "instances":
            continue
        section = getattr(Config(), f.name)
        assert f.name in data, f"[{f.name}] missing from {EXAMPLE.name}"
        for key in (k.name for k in dataclasses.fields(section)):
            assert key in data[f.name], f"{f.name}.{key} missing from {EXAMPLE.name}"
        extra = set(data[f.name]) - {k.name for k in dataclasses.fields(section)}
        assert not extra
    # Every key line has a comment right above it or belongs to a commented group.
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            above = [prev for prev in lines[max(0, i - 6) : i] if prev.strip()]
            assert any(prev.startswith("#") for prev in above), f"no comment near: {line}"


def test_the_commented_instance_example_is_valid() -> None:
    block = EXAMPLE.read_text().split("# [[instances]]", 1)[1]
    body = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    toml = "[[instances]]\n" + "\n".join(body)
    cfg = config_mod.parse(tomllib.loads(toml))
    names = {f.name for f in dataclasses.fields(InstanceConfig)}
    assert set(tomllib.loads(toml)["instances"][0]) == names  # every instance field shown
    assert cfg.instances[0].id == "shop-main"
    assert cfg.instances[0].driver in config_mod.KNOWN_DRIVERS


def test_a_typo_in_the_example_is_refused_with_a_hint(tmp_path: Path) -> None:
    broken = tmp_path / "waz-actors.toml"
    broken.write_text(EXAMPLE.read_text().replace("health_sweep =", "health_swep ="))
    with pytest.raises(ConfigError, match=r"daemon.health_swep: unknown setting.*health_sweep"):
        config_mod.load(broken)
