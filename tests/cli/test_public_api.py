"""The public API of ``import freezeout``: every exported name resolves and does its job, and the
refusal of a setting a rule does not read, as a user meets it on the command line."""
from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import REPO, run_cli

import freezeout


def test_every_exported_name_resolves_in_a_fresh_interpreter():
    code = "import freezeout as f; print(len([getattr(f, n) for n in f.__all__]))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == len(freezeout.__all__) >= 10


@pytest.mark.parametrize("name", freezeout.__all__)
def test_exported_name_is_documented(name):
    assert getattr(freezeout, name).__doc__, f"freezeout.{name} has no docstring"


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'calc_speed'"):
        freezeout.calc_speed  # noqa: B018


def test_calc_speedup_is_the_papers_name_and_counts_flops():
    from freezeout.models import build_model

    model = build_model("densenet", 10, 1, depth=10, growth_rate=4)
    flops = freezeout.calc_speedup(model, (1, 1, 28, 28), 0.5, "cubic")
    assert flops == freezeout.flops_speedup(freezeout.group_costs(model, (1, 1, 28, 28)),
                                            freezeout.layer_times(len(model.layer_groups()), 0.5, "cubic"))
    assert 0.0 < flops < 1.0
    assert freezeout.calc_speedup(model, (1, 1, 28, 28), 0.5, "none") == 0.0


@pytest.mark.parametrize("setting", ["t_0=0.5", "scale_lr=false"])
def test_a_rival_given_freezeouts_setting_exits_2_in_one_line(setting):
    proc = run_cli("strategy=layer_freezing", setting, "data=fashion_mnist", "device=cpu", timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {setting.split('=')[0]}=") and "layer_freezing" in lines[0]
