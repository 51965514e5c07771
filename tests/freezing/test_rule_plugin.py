"""Adding a freezing rule is one module and one yaml (docs/freezing-rules.md): a toy rule written
into a user's folder, ``freezeout_rules/toy.py`` and ``conf/strategy/toy.yaml``, trains a real
run beside its baseline and the analysis names it, orders it and styles it from what its run
recorded, with nothing of freezeout edited."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from helpers import TINY

TOY = '''"""A toy rule: every group but the head freezes at once when a fraction `at` of training is done."""
from dataclasses import dataclass

from freezeout.freezing.rules import Rule, register
from freezeout.freezing.rules.registry import SCHEDULE_KEYS
from freezeout.freezing.schedule import Schedule


@dataclass
class ToyConfig:
    name: str = "toy"
    at: float = 0.5  # fraction of training at which every group but the head freezes


def _schedule(strategy, run):
    return Schedule((strategy["at"],) * (run.n - 1) + (1.0,), run.total_iters, run.lr, False, anneal="global")


register(Rule("toy", _schedule, ToyConfig, unread=tuple(SCHEDULE_KEYS), refuses_unread=True))
'''
TOY_YAML = "defaults:\n  - /schema/strategy/toy@_here_\n  - _self_\n"


def write_toy(folder):
    (folder / "freezeout_rules").mkdir()
    (folder / "freezeout_rules" / "toy.py").write_text(TOY)
    (folder / "conf" / "strategy").mkdir(parents=True)
    (folder / "conf" / "strategy" / "toy.yaml").write_text(TOY_YAML)


def run(*args, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FREEZEOUT_LAUNCH_ID", None)
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_a_toy_rule_in_one_module_and_one_yaml_trains_and_appears_in_the_analysis(tmp_path, fmnist_root):
    write_toy(tmp_path)
    sweep = tmp_path / "sweep"
    launch = run("freezeout", "train", "-m", *TINY, "epochs=2", f"data.root={fmnist_root}", "strategy=none,toy",
                 f"hydra.sweep.dir={sweep}", "~hydra.callbacks.analysis", cwd=tmp_path)
    assert launch.returncode == 0, launch.stderr[-3000:]
    summaries = {s["strategy"]: s for s in (json.loads(p.read_text()) for p in sweep.glob("run_*/summary.json"))}
    toy, base = summaries["toy"], summaries["none"]
    assert toy["status"] == base["status"] == "completed"
    # The rule ran as declared, at its schema's default: every group but the head froze at T / 2.
    assert toy["freeze_iterations"][:-1] == [toy["iterations"] // 2] * (toy["num_groups"] - 1)
    assert toy["freeze_iterations"][-1] is None and not any(base["freeze_iterations"])
    assert toy["config"]["strategy"] == {"name": "toy", "at": 0.5}
    assert toy["rule"] == {"baseline": False, "freezeout": False, "adaptive": False, "reads": [],
                           "options": ["at"], "order": 6}
    assert base["rule"]["baseline"] is True

    out = tmp_path / "report"
    proc = run("freezeout.analysis", str(sweep), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["strategy"]) == ["none", "toy"]  # the baseline first, by the recorded order
    row = summary[summary["strategy"] == "toy"].iloc[0]
    assert row["method"] == "toy (at=0.5)" and row["measured_speedup_n"] == 1
    assert "toy (at=0.5)" in (out / "summary.md").read_text()


def test_a_rule_plugin_registers_its_schema_and_facts(tmp_path, monkeypatch):
    """In this process: the plugin is found on sys.path, its schema composes with its default, and
    its facts come from its declaration (options from the schema's fields)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from freezeout.freezing.rules import get_rule, registry

    write_toy(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_RULES", dict(registry._RULES))  # the toy leaves with the test
    monkeypatch.delitem(sys.modules, "freezeout_rules", raising=False)
    monkeypatch.delitem(sys.modules, "freezeout_rules.toy", raising=False)
    rule = get_rule("toy")  # an unknown name looks among the plugins
    assert rule.options == ("at",) and rule.defaults() == {"name": "toy", "at": 0.5}
    assert rule.facts()["order"] == len(registry._RULES) - 1
    node = ConfigStore.instance().load("schema/strategy/toy.yaml").node
    assert OmegaConf.to_container(node) == {"name": "toy", "at": 0.5}
    with pytest.raises(ValueError, match="declared twice"):
        registry.register(rule)
    sys.modules.pop("freezeout_rules.toy", None)
    sys.modules.pop("freezeout_rules", None)
