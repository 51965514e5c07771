"""The analysis reads what a run was from its summary.json (``rule``, the rule's declared facts),
not from a list of strategy names: a rule it has never heard of is labelled, paired, sorted and
styled by what its runs recorded; summaries written before ``rule`` existed still read by name."""
from __future__ import annotations

import math

from test_analysis import make_run

from freezeout.analysis.methods import (
    facts_of,
    is_baseline,
    method_label,
    method_params,
    reads_schedule,
    rule_facts,
    strategy_sort_key,
)
from freezeout.analysis.pipeline import analyze
from freezeout.analysis.plots.style import PALETTE, style

SCHEDULE_LIKE = {"baseline": False, "freezeout": True, "adaptive": False, "reads": ["t_0", "scale_lr", "const_time"],
                 "options": [], "order": 7}


def test_recorded_facts_decide_and_old_summaries_fall_back_on_the_name():
    assert is_baseline({"strategy": "none"}) and reads_schedule({"strategy": "cubic"})  # older summaries
    assert not reads_schedule({"strategy": "layer_freezing"}) and not is_baseline("autofreeze")
    # A schedule of FreezeOut's own under a new name: t_0 and scale_lr are part of its method.
    run = {"strategy": "quartic", "rule": SCHEDULE_LIKE, "t_0": 0.5, "scale_lr": True}
    assert method_params(run) == {"t_0": 0.5, "scale_lr": True}
    assert method_label(run) == "quartic (t₀=0.5, scale_lr on)"
    # A rival whose facts were read once: a name alone now finds them (the plots pass names).
    rule_facts("spike", {**SCHEDULE_LIKE, "freezeout": False, "reads": [], "options": ["k"], "order": 8})
    assert facts_of("spike")["options"] == ["k"] and strategy_sort_key("spike") == (8, "spike")
    assert style("spike") == PALETTE[8] and style("quartic") == PALETTE[7]
    assert strategy_sort_key("none") < strategy_sort_key("cubic") < strategy_sort_key("spike")
    assert strategy_sort_key("never_seen")[0] == math.inf  # no facts: after every known rule


def test_a_rule_the_analysis_never_heard_of_is_paired_with_its_baseline(tmp_path):
    """A baseline under another name, recorded as such, is what the other runs pair with."""
    base = {"baseline": True, "freezeout": True, "adaptive": False, "reads": [], "options": [], "order": 0}
    rival = {"baseline": False, "freezeout": False, "adaptive": False, "reads": [], "options": [], "order": 9}
    make_run(tmp_path, "b", strategy="plain", seconds=100.0, err=0.2, summary_extra={"rule": base})
    make_run(tmp_path, "r", strategy="rival9", seconds=80.0, err=0.22, summary_extra={"rule": rival})
    result = analyze(tmp_path)
    runs = result["runs"].set_index("dir")
    assert runs.loc["r", "baseline_dir"] == "b"
    assert runs.loc["r", "measured_speedup"] == 1 - 80.0 / 100.0
    assert math.isnan(runs.loc["r", "t_0"])  # a rival reads no t_0: left blank
    assert list(result["summary"]["strategy"]) == ["plain", "rival9"]
    assert list(result["summary"]["method"]) == ["baseline (plain)", "rival9"]


def test_the_fallback_for_older_summaries_is_what_the_built_in_rules_declare():
    """RECORDED_BEFORE says what an older summary's strategy name meant: the built-in rules'
    declarations, fact for fact (the registry is the source; this table only reads old files)."""
    from freezeout.analysis.methods import RECORDED_BEFORE
    from freezeout.freezing.rules import get_rule

    assert {name: get_rule(name).facts() for name in RECORDED_BEFORE} == RECORDED_BEFORE
