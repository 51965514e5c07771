"""Text output: the Markdown summary table and the short stdout report."""
from __future__ import annotations

import math
from pathlib import Path

from .collect import COMPLETED
from .loadgap import unequal_lines
from .pairing import is_freezeout
from .plateau import plateau_lines
from .realisation import TARGET, realisation_text, stage_lines
from .seeds import repeat_text
from .stats import DELTA, LEVEL, MAX_SEEDS, POWER, RESAMPLES

STATS_NOTE = (
    f"Measured speedup and relative error: mean ± sample standard deviation over seeds "
    f"[{100 * LEVEL:g}% percentile bootstrap interval of the mean, in percent, {RESAMPLES:,} "
    f"resamples of the seeds' paired values]. With 3 seeds or fewer such an interval spans at "
    f"most the seeds' own range and covers less than {100 * LEVEL:g}%: read it as a lower bound "
    f"on the uncertainty. paper's region (speedup 0–20%, relative error ≤ 3%): inside only when "
    f"both intervals lie in it; outside when the error's lies above 3% or the speedup's below 0; "
    f"beyond when the error's lies within 3% and the speedup's above 20%; undecided otherwise. Seeds for "
    f"{100 * DELTA:g} pts: seeds a two-sided paired t-test (5% level, power {POWER:g}; exact, "
    f"noncentral t) needs to resolve a {100 * DELTA:g}-point difference at the spread measured "
    f"here.")


REALISATION_NOTE = (
    f"The time model against training, stage by stage (groups frozen: training's seconds a step / "
    f"the time model's, median over seeds; above 1, training was slower than predicted). The "
    f"realisation column is measured / time-model speedup, median [least–most] over seeds; "
    f"{TARGET[0]:g}–{TARGET[1]:g} is the time model's own target band.")


def pct(x: float | None) -> str:
    """``0.253 -> "25.3%"``; an em dash for a missing value."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{100 * x + 0.0:.1f}%".replace("-0.0%", "0.0%")  # no "-0.0%" for a tiny negative


def mean_std(mean: float, std: float, lo: float = math.nan, hi: float = math.nan) -> str:
    """``"25.0% ± 3.5% [21.0, 28.5]"``: mean ± sample std and the bootstrap interval (in
    percent), or less where the spread or the interval is undefined (one seed)."""
    if math.isnan(std):
        return pct(mean)
    ci = "" if math.isnan(lo) or math.isnan(hi) else f" [{100 * lo + 0.0:.1f}, {100 * hi + 0.0:.1f}]"
    return f"{pct(mean)} ± {pct(std)}{ci}"


def seeds_text(n: float) -> str:
    """Seeds needed as printed: ``12``, ``>10000``, an em dash where unknown."""
    if n is None or math.isnan(n):
        return "—"
    return f">{MAX_SEEDS}" if math.isinf(n) else str(int(n))


def _interval(row: dict, name: str) -> str:
    return mean_std(row[f"{name}_mean"], row[f"{name}_std"], row.get(f"{name}_lo", math.nan),
                    row.get(f"{name}_hi", math.nan))


def _n_seeds(row: dict) -> str:
    """Distinct seeds in the statistics (paired ones for a method, completed ones for the
    baseline), with "(of N runs)" when the group holds more runs and the seeds run repeatedly."""
    n, extra = row["n_seeds"], []
    if n != row["n_runs"]:
        extra.append(f"of {row['n_runs']} run{'s' if row['n_runs'] != 1 else ''}")
    extra += [f"seed {seed} ×{len(dirs)}" for seed, dirs in (row.get("_repeats") or {}).items()]
    return f"{n} ({'; '.join(extra)})" if extra else str(n)


def markdown_table(summary: list[dict]) -> str:
    """The summary as a Markdown table; optional columns appear only where some row has a value."""
    def any_value(key: str) -> bool:
        return any(not math.isnan(r[key]) for r in summary)

    cols = []
    if len({r["setting"] for r in summary}) > 1:
        cols.append(("setting", lambda r: r["setting"]))
    cols += [("strategy", lambda r: str(r["strategy"])), ("method", lambda r: r["method"])]
    cols.append(("predicted speedup (flops)", lambda r: pct(r["predicted_speedup_flops"])))
    for kind in ("paper", "time"):
        if any_value(f"predicted_speedup_{kind}"):
            cols.append((f"predicted ({kind})", lambda r, k=kind: pct(r[f"predicted_speedup_{k}"])))
    cols += [
        ("measured speedup", lambda r: _interval(r, "measured_speedup")),
        ("relative error", lambda r: _interval(r, "relative_error")),
    ]
    if any(not math.isnan(r.get("realisation_median", math.nan)) for r in summary):
        cols.append(("realisation (measured / time)", realisation_text))
    if any(r.get("paper_region") or r.get("region_note") for r in summary):
        cols.append(("paper's region", lambda r: r.get("paper_region")
                     or ("no verdict: baseline at chance" if r.get("region_note") else "—")))
    if any(not math.isnan(r.get("relative_error_seeds_needed", math.nan)) for r in summary):
        cols.append((f"seeds for {100 * DELTA:g} pts (error / speedup)",
                     lambda r: "—" if not is_freezeout(r) else
                     f"{seeds_text(r['relative_error_seeds_needed'])} / "
                     f"{seeds_text(r['measured_speedup_seeds_needed'])}"))
    if any(r.get("n_load_unequal") for r in summary):
        cols.append(("unequal load", lambda r: f"{r['n_load_unequal']} of {r['measured_speedup_n']}"
                     if r.get("n_load_unequal") else ""))
    cols += [
        ("val err", lambda r: pct(r["final_val_err_mean"])),
        ("baseline val err", lambda r: pct(r["baseline_val_err_mean"])),
        ("n seeds", _n_seeds),
    ]
    lines = ["| " + " | ".join(name for name, _ in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(f(r) for _, f in cols) + " |" for r in summary]
    return "\n".join(lines) + "\n"


def repeat_lines(summary: list[dict]) -> list[str]:
    """One line per repeated seed: where, which runs, which one the statistics use."""
    return [f"{row['method']}, {row['setting']}: {repeat_text(seed, dirs)}"
            for row in summary for seed, dirs in (row.get("_repeats") or {}).items()]


def sanity_lines(runs: list[dict], summary: list[dict]) -> list[str]:
    """One line per run that looks as if it never learned, then one per method left without a
    region verdict for it."""
    return ([f"{r['dir']} ({r.get('method') or r['strategy']}): {r['sanity']}" for r in runs if r.get("sanity")]
            + [f"{row['method']}, {row['setting']}: {row['region_note']}" for row in summary
               if row.get("region_note")])


def time_model_lines(runs: list[dict]) -> list[str]:
    """Runs whose time model's load was unlike training's (no realisation), and the reasons the
    time model was skipped (predict_time=false aside: that is a choice), with the runs."""
    lines = [f"{r['dir']}: {r['realisation_note']}" for r in runs if r.get("realisation_note")]
    skipped: dict[str, list[str]] = {}
    for r in runs:
        why = r.get("time_model_skipped")
        if why and why != "predict_time=false":
            skipped.setdefault(str(why), []).append(r["dir"])
    lines += [f"time model skipped in {len(d)} run(s) ({', '.join(d)}): {why}" for why, d in skipped.items()]
    return lines


SANITY_HEAD = "Runs that never learned (at chance; no region verdict against such a baseline):"
TIME_MODEL_HEAD = "The time model: measured under another load, or skipped:"


def markdown_notes(runs: list[dict], summary: list[dict]) -> str:
    """What the table leaves out: how seeds count, repeated seeds, runs without a baseline."""
    lines = ["n seeds counts distinct seeds; a seed run more than once enters the statistics "
             "once, as its first completed run by path. " + STATS_NOTE]
    chance = sanity_lines(runs, summary)
    if chance:
        lines += ["", SANITY_HEAD, ""] + [f"- {x}" for x in chance]
    flat = plateau_lines(runs)
    if flat:
        lines += ["", "Trained long enough? (a third of training flat is the aim)", ""] + [f"- {x}" for x in flat]
    stages = stage_lines(summary)
    if stages:
        lines += ["", REALISATION_NOTE, ""] + [f"- {x}" for x in stages]
    time_notes = time_model_lines(runs)
    if time_notes:
        lines += ["", TIME_MODEL_HEAD, ""] + [f"- {x}" for x in time_notes]
    unequal = unequal_lines(runs)
    if unequal:
        lines += ["", f"Compared under unequal load, or not taking turns in one round (measured speedups "
                      f"not timed fairly; the time model's are not affected): {len(unequal)}", ""]
        lines += [f"- {x}" for x in unequal]
    repeats = repeat_lines(summary)
    if repeats:
        lines += ["", "Repeated seeds:", ""] + [f"- {x}" for x in repeats]
    lonely = unpaired(runs)
    if lonely:
        lines += ["", "Not paired with a baseline (left out of the statistics):", ""]
        lines += [f"- `{r['dir']}`: {r['unpaired']}" for r in lonely]
    return "\n".join(lines) + "\n"


def not_completed(runs: list[dict]) -> list[dict]:
    """Runs whose status is not ``completed`` (failed, diverged, running, incomplete, ...)."""
    return [r for r in runs if r["status"] != COMPLETED]


def unpaired(runs: list[dict]) -> list[dict]:
    """FreezeOut runs with no completed baseline."""
    return [r for r in runs if is_freezeout(r) and r.get("unpaired")]


def not_completed_line(runs: list[dict]) -> str:
    """One line: ``"N of M runs did not complete: dir (status: error), ..."``."""
    bad = not_completed(runs)
    if not bad:
        return f"All {len(runs)} runs completed."
    items = ", ".join(f"{r['dir']} ({r['status']}: {r['error'] or 'no error message'})"
                      for r in bad)
    return f"{len(bad)} of {len(runs)} runs did not complete: {items}"


def text_report(root: Path, runs: list[dict], summary: list[dict], table: str,
                files: list[Path], skipped: list[str]) -> str:
    """The stdout report: counts, problem runs, the table, skipped plots, files written."""
    done = len(runs) - len(not_completed(runs))
    lines = [f"Analysis of {root}", f"Runs found: {len(runs)}, completed: {done}."]
    bad = not_completed(runs)
    if bad:
        lines.append(f"Not completed ({len(bad)}):")
        lines += [f"  - {r['dir']}: {r['status']}"
                  f"{' (' + str(r['epochs_done']) + ' epochs logged)' if r['epochs_done'] else ''}"
                  f": {r['error'] or 'no error message'}" for r in bad]
    lonely = unpaired(runs)
    if lonely:
        lines.append(f"FreezeOut runs not paired with a baseline ({len(lonely)}):")
        lines += [f"  - {r['dir']}: {r['unpaired']}" for r in lonely]
    dups = sorted({(r["baseline_dir"], r["duplicate_baselines"]) for r in runs
                   if r.get("duplicate_baselines")})
    if dups:
        lines.append("Several baselines matched; the first by path was used:")
        lines += [f"  - used {b}, also matched: {d}" for b, d in dups]
    chance = sanity_lines(runs, summary)
    if chance:
        lines.append(SANITY_HEAD)
        lines += [f"  - {x}" for x in chance]
    flat = plateau_lines(runs)
    if flat:
        lines.append("Baselines flat at the end of training (a third is the aim):")
        lines += [f"  - {x}" for x in flat]
    unequal = unequal_lines(runs)
    if unequal:
        lines.append(f"Compared with a baseline under unequal load or apart from it, not timed fairly "
                     f"({len(unequal)}):")
        lines += [f"  - {x}" for x in unequal]
    time_notes = time_model_lines(runs)
    if time_notes:
        lines.append(TIME_MODEL_HEAD)
        lines += [f"  - {x}" for x in time_notes]
    repeats = repeat_lines(summary)
    if repeats:
        lines.append("Seeds run more than once (each counted once):")
        lines += [f"  - {x}" for x in repeats]
    noted = [r for r in runs if r.get("note")]
    if noted:
        lines.append("Notes:")
        lines += [f"  - {r['dir']}: {r['note']}" for r in noted]
    lines += ["", table.rstrip(), ""]
    if skipped:
        lines.append("Plots skipped or partial:")
        lines += [f"  - {s}" for s in skipped]
    if files:
        lines.append(f"Files written to {files[0].parent}: " + ", ".join(f.name for f in files))
    return "\n".join(lines)
