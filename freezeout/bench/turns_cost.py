"""python -m freezeout.bench.turns_cost [RUN OVERRIDES] [bench.KEY=VALUE ...]

What does taking turns (``hydra/launcher=turns``, :mod:`freezeout.bench.turns`) cost, and does it
measure what runs one after another measure? Two figures, each from real ``train()`` runs
(default: the quickstart model on 3,000 Fashion-MNIST images, 2 epochs, seed 0; the run
overrides apply on top), with the machine's load average beside each:

  round       ``bench.runs`` runs (a baseline and FreezeOut settings) trained one after another
              in this process, then as one round taking turns every ``bench.turn_every``
              iterations (``bench.round_repeats`` times, the order alternating). Throughput ratio:
              images a training second in turns / one after another (target >= 0.9); also the
              round's wall clock (process starts and hand-overs included) against the sequence's.
  speedup     the baseline and cubic t_0=0.5 one after another, then taking turns, repeated
              ``bench.repeats`` times in alternation (A, B, A, B). Measured speedup
              ``1 - cubic / baseline`` seconds either way, and their difference in points
              (median over repeats; target within 2 points).

Run it on a quiet machine: a load average near or above the CPU count makes every figure an
indication only. Default runtime: about 3-4 minutes on 2 idle CPU cores.

Options (bench.KEY=VALUE):
  bench.runs=6          runs in the round
  bench.round_repeats=1 rounds (each against its own sequence)
  bench.repeats=2       speedup pairs of each kind
  bench.turn_every=1    iterations a run trains in a turn (the launcher's default)
  bench.threads=0       torch CPU threads (0: torch's default)
  bench.out=bench-results/turns_cost.json
"""
from __future__ import annotations

import functools
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from ..config import compose_config
from ..errors import ConfigError
from .settings import run_command, say

#: The quickstart model on 3,000 images, 2 epochs (the runs of the figures in docs/performance.md).
RUN = ["experiment=quickstart", "data.subset=3000", "data.val_size=500", "epochs=2", "seed=0",
       "checkpoint=false", "progress=false", "predict_time=false", "eval_test=false"]
#: The settings of a round, in order (cycled, with the next seed, past six runs).
ROUND = [["strategy=none"], ["strategy=cubic", "t_0=0.5"], ["strategy=linear", "t_0=0.5"],
         ["strategy=squared", "t_0=0.5"], ["strategy=cubic", "t_0=0.8"], ["strategy=linear", "t_0=0.8"]]


@dataclass
class CostSettings:
    runs: int = 6
    round_repeats: int = 1
    repeats: int = 2
    turn_every: int = 1
    threads: int = 0
    out: str = "bench-results/turns_cost.json"


def parse(argv: list[str]) -> tuple[CostSettings, list[str]]:
    mine = OmegaConf.from_dotlist([a[len("bench."):] for a in argv if a.startswith("bench.")])
    s: CostSettings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(CostSettings), mine))
    for name in ("runs", "round_repeats", "repeats", "turn_every"):
        if getattr(s, name) < 1:
            raise ConfigError(f"bench.{name}={getattr(s, name)}; need an integer >= 1")
    return s, [a for a in argv if not a.startswith("bench.")]


def load() -> float:
    return os.getloadavg()[0]


def one_after_another(jobs: list[tuple]) -> tuple[list, float]:
    """``train`` each job in this process, in order; the summaries and the wall seconds."""
    from ..training.trainer import train

    started = time.perf_counter()
    return [train(cfg, run_dir) for cfg, run_dir in jobs], time.perf_counter() - started


def in_turns(jobs: list[tuple], turn_every: int) -> tuple[list, float]:
    """The jobs as one round taking turns every ``turn_every`` iterations; summaries, wall seconds."""
    from .turns import take_turns, train_in_turn

    started = time.perf_counter()
    out = take_turns(jobs, run=functools.partial(train_in_turn, pause_every=turn_every))
    return out, time.perf_counter() - started


def images_per_second(summaries: list) -> float:
    for x in summaries:
        if x.status != "completed":
            raise RuntimeError(f"a {x.strategy} run {x.status}: {x.error}")
    return sum(x.iterations_done * x.batch_size for x in summaries) / sum(x.train_seconds for x in summaries)


def round_cost(s: CostSettings, overrides: list[str], work: Path) -> list[dict]:
    """Each round against the same runs one after another (the first of each pair alternating)."""
    settings = [[*ROUND[k % len(ROUND)], f"seed={k // len(ROUND)}"] for k in range(s.runs)]
    rows = []
    for r in range(s.round_repeats):
        got = {}
        for kind in (("turns", "sequence") if r % 2 == 0 else ("sequence", "turns")):
            before = load()
            jobs = [(compose_config(*RUN, *overrides, *extra), work / f"round{r}-{kind}-{k}")
                    for k, extra in enumerate(settings)]
            summaries, wall = (in_turns(jobs, s.turn_every) if kind == "turns" else one_after_another(jobs))
            got[kind] = {"images_per_second": images_per_second(summaries), "wall_seconds": wall,
                         "train_seconds": [x.train_seconds for x in summaries], "loadavg": [before, load()]}
            say(f"  {kind:<8} {got[kind]['images_per_second']:8.1f} img/s a training second  wall {wall:6.1f} s  "
                f"load average {before:.2f} -> {got[kind]['loadavg'][1]:.2f}")
        ratio = got["turns"]["images_per_second"] / got["sequence"]["images_per_second"]
        wall_ratio = got["sequence"]["wall_seconds"] / got["turns"]["wall_seconds"]
        rows.append({**got, "throughput_ratio": ratio, "wall_throughput_ratio": wall_ratio, "pass": ratio >= 0.9})
        say(f"  round {r + 1}: throughput in turns / one after another {ratio:.3f} (target >= 0.9, "
            f"{'PASS' if ratio >= 0.9 else 'FAIL'}); wall clock {wall_ratio:.3f}")
    return rows


def speedup_gap(s: CostSettings, overrides: list[str], work: Path) -> dict:
    """Baseline + cubic t_0=0.5, one after another and taking turns, alternately ``repeats`` times."""
    pair = [["strategy=none"], ["strategy=cubic", "t_0=0.5"]]
    measured: dict[str, list[float]] = {"sequence": [], "turns": []}
    rows = []
    for r in range(s.repeats):
        for kind in ("sequence", "turns"):
            before = load()
            jobs = [(compose_config(*RUN, *overrides, *extra), work / f"pair{r}-{kind}-{k}") for k, extra in enumerate(pair)]
            (base, cubic), _ = in_turns(jobs, s.turn_every) if kind == "turns" else one_after_another(jobs)
            images_per_second([base, cubic])
            speedup = 1.0 - cubic.train_seconds / base.train_seconds
            measured[kind].append(speedup)
            rows.append({"repeat": r, "kind": kind, "baseline_seconds": base.train_seconds,
                         "cubic_seconds": cubic.train_seconds, "speedup": speedup, "loadavg": [before, load()]})
            say(f"  {kind:<8} baseline {base.train_seconds:6.2f} s  cubic {cubic.train_seconds:6.2f} s  speedup "
                f"{100 * speedup:5.1f}%  load average {before:.2f} -> {rows[-1]['loadavg'][1]:.2f}")
    med = {k: statistics.median(v) for k, v in measured.items()}
    gap = 100 * (med["turns"] - med["sequence"])
    say(f"  median speedup: one after another {100 * med['sequence']:.1f}%, in turns {100 * med['turns']:.1f}%: "
        f"{gap:+.1f} points (target within 2, {'PASS' if abs(gap) <= 2 else 'FAIL'})")
    return {"rows": rows, "median_speedup": med, "gap_points": gap, "pass": abs(gap) <= 2}


def main(argv: list[str] | None = None) -> dict:
    import torch

    from ..rundir.provenance import git_revision, library_versions
    from ..rundir.records import write_json_atomic

    s, overrides = parse(list(sys.argv[1:] if argv is None else argv))
    if s.threads > 0:
        torch.set_num_threads(s.threads)  # the rounds' processes take this process's count
    say(f"cost of taking turns: {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, turns of "
        f"{s.turn_every} iteration(s); load average now {load():.2f}")
    with tempfile.TemporaryDirectory(prefix="freezeout-turns-cost-") as tmp:
        say(f"round: {s.runs} runs taking turns against the same runs one after another")
        results = {"settings": vars(s), "overrides": overrides, "cpus": os.cpu_count(),
                   "environment": {"versions": library_versions(), "git_revision": git_revision()},
                   "round": round_cost(s, overrides, Path(tmp))}
        say("speedup: baseline and cubic t_0=0.5, one after another and taking turns")
        results["speedup"] = speedup_gap(s, overrides, Path(tmp))
    (out := Path(s.out)).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, results)
    say(f"wrote {out}")
    return results


def cli() -> None:
    run_command(__doc__, main)


if __name__ == "__main__":
    cli()
