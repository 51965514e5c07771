"""One source for each default: the config dataclasses (freezeout/config.py and each freezing
rule's schema) hold every default; a yaml in conf/ with a schema selects and overrides, never
restates one. Checked on every such yaml, found by its defaults list, not from a hand list:

- a yaml that is its schema's own option (``conf/optimizer/sgd.yaml`` extends
  ``/schema/optimizer/sgd``; ``conf/config.yaml`` extends ``freezeout_schema``) sets no value: one
  there would silently replace the dataclass's default (a required key may be marked ``???``, as
  its schema marks it: a blank for the user who copies the file, not a default);
- a preset (``conf/model/densenet_small.yaml``, ``conf/data/*.yaml``, ``conf/experiment/*.yaml``)
  sets only keys its schema has, each to a value other than the schema's default;
- composed, every option of model/optimizer/strategy gives exactly its schema's defaults.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from helpers import REPO, compose_cfg
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from freezeout.config import register_configs

CONF = REPO / "conf"
SCHEMA_ENTRY = re.compile(r"^/schema/(\w+)/(\w+)@_here_$")
NOT_VALUES = ("defaults", "hydra")  # the defaults list and Hydra's own node are not run keys


def stored(name: str) -> DictConfig:
    """A schema registered in Hydra's ConfigStore (``freezeout_schema``, ``schema/G/N``)."""
    register_configs()
    return ConfigStore.instance().load(f"{name}.yaml").node


def schema_of(path: Path, conf: Path = CONF) -> tuple[DictConfig, bool] | None:
    """``(schema node, own)`` of a yaml under ``conf``: ``own`` when the yaml is the schema's own
    option; None when it has no schema of ours (loggers, Hydra's plugin configs)."""
    raw = OmegaConf.load(path)
    group = path.parent.relative_to(conf).as_posix() if path.parent != conf else ""
    for entry in raw.get("defaults") or []:
        entry = entry if isinstance(entry, str) else ""
        if entry == "freezeout_schema":
            return stored("freezeout_schema"), True
        if m := SCHEMA_ENTRY.match(entry):
            return stored(f"schema/{m[1]}/{m[2]}"), group == m[1] and path.stem == m[2]
        if (path.parent / f"{entry}.yaml").is_file():  # a preset of a sibling option
            sibling = schema_of(path.parent / f"{entry}.yaml", conf)
            return (sibling[0], False) if sibling else None
    if path.read_text().startswith("# @package _global_"):
        return stored("freezeout_schema"), False
    top = stored("freezeout_schema")
    if group in top.keys() and dataclasses.is_dataclass(OmegaConf.get_type(top, group)):  # data/: Config.data's
        return top[group], False
    return None


def problems(path: Path, conf: Path = CONF) -> list[str]:
    """What ``path`` states that its schema holds (empty: nothing)."""
    found = schema_of(path, conf)
    if found is None:
        return []
    schema, own = found
    out: list[str] = []

    def walk(values: DictConfig, node: DictConfig, prefix: str) -> None:
        plain, defaults = OmegaConf.to_container(values, resolve=False), OmegaConf.to_container(node, resolve=False)
        for key in values.keys():
            if prefix == "" and key in NOT_VALUES:
                continue
            name = f"{prefix}{key}"
            if key not in node.keys():
                out.append(f"{name}: not a key of its schema")
            elif isinstance(values._get_node(key), DictConfig):
                child = node._get_node(key)
                if isinstance(child, DictConfig) and not child._is_missing():
                    walk(values[key], child, f"{name}.")
                # else an Any field (model: in an experiment): its schema is chosen elsewhere
            elif plain[key] == defaults[key] == "???":
                continue  # a required key marked (MISSING in its schema too): a template's blank, not a default
            elif own:
                out.append(f"{name}={plain[key]!r}: its schema's own option sets no value "
                           f"(schema default {defaults[key]!r})")
            elif plain[key] == defaults[key]:
                out.append(f"{name}={plain[key]!r} restates its schema's default")

    walk(OmegaConf.load(path), schema, "")
    return out


YAMLS = sorted(p.relative_to(REPO).as_posix() for p in CONF.rglob("*.yaml") if "hydra" not in p.parts)


@pytest.mark.parametrize("path", YAMLS)
def test_a_yaml_with_a_schema_selects_and_overrides_but_never_restates_a_default(path):
    assert problems(REPO / path) == []


def test_every_own_option_and_preset_kind_is_seen():
    """The discovery above finds the schemas it must (else the test above checks nothing)."""
    own = {p for p in YAMLS if (s := schema_of(REPO / p)) and s[1]}
    presets = {p for p in YAMLS if (s := schema_of(REPO / p)) and not s[1]}
    assert {"conf/config.yaml", "conf/optimizer/sgd.yaml", "conf/optimizer/adamw.yaml",
            "conf/strategy/cubic.yaml", "conf/strategy/none.yaml", "conf/strategy/layer_freezing.yaml",
            "conf/strategy/autofreeze.yaml", "conf/model/densenet.yaml"} <= own
    assert {"conf/model/densenet_small.yaml", "conf/data/cifar100.yaml", "conf/experiment/quickstart.yaml"} <= presets


def test_a_yaml_that_disagrees_with_its_dataclass_or_restates_it_fails(tmp_path):
    """The check itself: an own option changing a default, a preset restating one, a key the schema
    lacks are each found; a real override is not."""
    (tmp_path / "optimizer").mkdir()
    sgd = tmp_path / "optimizer" / "sgd.yaml"
    sgd.write_text("defaults:\n  - /schema/optimizer/sgd@_here_\n  - _self_\nlr: 0.05\n")
    assert problems(sgd, tmp_path) == ["lr=0.05: its schema's own option sets no value (schema default 0.1)"]
    sgd.write_text("defaults:\n  - /schema/optimizer/sgd@_here_\n  - _self_\nlr: 0.1\n")
    assert len(problems(sgd, tmp_path)) == 1  # agreeing is restating: still a second source
    (tmp_path / "strategy").mkdir()
    lf = tmp_path / "strategy" / "late.yaml"  # a preset of layer_freezing under another name
    lf.write_text("defaults:\n  - /schema/strategy/layer_freezing@_here_\n  - _self_\n"
                  "freeze_start: 0.5\nfreeze_level: 0.5\nfreez_level: 1\n")
    assert problems(lf, tmp_path) == ["freeze_start=0.5 restates its schema's default", "freez_level: not a key of its schema"]
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "mine.yaml"
    data.write_text("source: image_folder\nname: mine\nval_size: 5000\n")
    assert problems(data, tmp_path) == ["val_size=5000 restates its schema's default"]


@pytest.mark.parametrize("group", ["model", "optimizer", "strategy"])
def test_each_option_composes_to_exactly_its_schemas_defaults(group):
    """What a run gets from ``GROUP=NAME`` is the dataclass's defaults, key for key."""
    options = [p for p in sorted((CONF / group).glob("*.yaml")) if (s := schema_of(p)) and s[1]]
    assert options
    for path in options:
        entry = next(e for e in OmegaConf.load(path).defaults if isinstance(e, str) and SCHEMA_ENTRY.match(e))
        schema = stored(entry.split("@")[0].lstrip("/"))
        composed = compose_cfg(f"{group}={path.stem}")[group]
        assert OmegaConf.to_container(composed, throw_on_missing=False) == \
            OmegaConf.to_container(schema, throw_on_missing=False), path


def test_the_run_schema_gives_what_config_yaml_used_to_restate():
    """The top-level defaults a run composes are the dataclasses' (FreezeOut's settings included)."""
    from freezeout.config import Config, SGDConfig
    from freezeout.freezing.schedule import FreezeOutSettings

    cfg = compose_cfg()
    assert (cfg.t_0, cfg.scale_lr, cfg.const_time) == (FreezeOutSettings.t_0, FreezeOutSettings.scale_lr,
                                                       FreezeOutSettings.const_time)
    assert (cfg.epochs, cfg.batch_size, cfg.optimizer.lr) == (Config.epochs, Config.batch_size, SGDConfig.lr)
