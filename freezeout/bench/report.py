"""The closing table of the benchmark."""
from __future__ import annotations

from .settings import _num, _pct, say


def print_summary(r: dict) -> None:
    """The figures again, as one table."""
    def row(name, value, target="", verdict=None):
        flag = "" if verdict is None else ("PASS" if verdict else "FAIL")
        say(f"  {name:<44} {value:>22}  {target:<12} {flag}")

    say()
    say("summary")
    for x in r["realisation"]["by_t0"]:
        row(f"speedup t_0={x['t_0']} measured / pred(time)",
            f"{_pct(x['measured_speedup'])} / {_pct(x['predicted_time'])}", f"= {_num(x['realisation_time'])}")
        row(f"speedup t_0={x['t_0']} measured / pred(flops)",
            f"{_pct(x['measured_speedup'])} / {_pct(x['predicted_flops'])}", f"= {_num(x['realisation_flops'])}")
    tp = r["throughput"]
    row("throughput baseline / FreezeOut (img/s)",
        f"{tp['baseline_images_per_second']:.1f} / {tp['freezeout_images_per_second']:.1f}",
        f"t_0={tp['freezeout_t_0']}")
    t = r["targets"]
    row("overhead harness / bare (step time)", f"{t['overhead']['value']:.3f}", t["overhead"]["target"],
        t["overhead"]["pass"])
    row("frozen prefix step / forward alone", f"{t['frozen_prefix']['value']:.3f}",
        t["frozen_prefix"]["target"], t["frozen_prefix"]["pass"])
    mem = r["memory"]
    row(f"memory {mem['measure']} by frozen groups",
        " -> ".join(f"{v:.1f}" for v in t["memory_falls"]["value"]),
        "falling", t["memory_falls"]["pass"])
    if mem["rss_falls"] is not None:
        row("memory peak RSS (fresh process) by frozen groups",
            " -> ".join(f"{c['rss_peak_mb']:.0f}" for c in mem["configs"]), "(info)")
    if r.get("compile"):
        c = r["compile"]
        row("compile: recompiles from freezing", f"{c['recompiles_from_freezing']:g}",
            f"limit hits {c['freezeout_recompile_limit_hits']:g}")
