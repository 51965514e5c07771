"""python -m freezeout.bench.input data.root=DIR [RUN OVERRIDES] [bench.KEY=VALUE ...]

Does the input-aware time model hold on streamed data? A folder of images (``data=image_folder``,
``data.loader=stream``; ``python -m freezeout.data.make_folder DIR --size 128`` writes one) is
trained on with each loader setting (``bench.workers``: one setting a worker count, few workers
and large images being input-bound, many workers and small images not): rounds of a baseline and
a FreezeOut run, each measuring its time model first (the loader alone, then the step per stage),
as a user's run with ``predict_time=true`` does. For each setting it prints the loader's images a
second, the computation's (the unfrozen step's, data on the device), the measured speedup, the
input-aware and the compute-only predictions and the realisation against both (measured /
predicted, median over rounds). Target: input-aware realisation within 0.95-1.05.

The runs of a round train one after the other (``bench.turns=none``, the default), the first run
alternating across rounds, or take turns an epoch at a time (``bench.turns=epoch``): the
baseline's epoch 1, FreezeOut's epoch 1, FreezeOut's epoch 2, the baseline's epoch 2, and so on.
Turns change hands only at the end of an epoch, where a run's loader has nothing left to load:
finer turns would let a paused run's workers fill its queue meanwhile, hiding the very wait
measured here. On this project's CPU epoch turns did not narrow the rounds' spread (see
docs/data-at-scale.md). The run overrides apply on top of the benchmark's default run (the
quickstart model, 3 epochs of 4,096 images); the JSON goes to ``bench.out``, with each round's
order of turns and, for each run, every freezing stage's predicted and trained seconds a step.

Options (bench.KEY=VALUE):
  bench.workers=[1,4]   loader worker counts, one setting each
  bench.strategy=cubic  bench.t0=0.5   the FreezeOut run
  bench.repeats=3       rounds per setting
  bench.turns=none      none: a round's runs one after the other; epoch: taking turns an epoch at a time
  bench.threads=0       torch CPU threads (0: torch's default)
  bench.out=bench-results/input.json
"""
from __future__ import annotations

import functools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import torch
from omegaconf import OmegaConf

from ..errors import ConfigError
from .settings import compose_run, pct, run_command, say
from .turns import take_turns, train_in_turn

STREAMED = ["data=image_folder", "data.name=folder", "data.loader=stream", "predict_time=true",
            "predict_time_share=1.0", "log_every=50"]
TARGET = (0.95, 1.05)
TURNS = ("epoch", "none")


@dataclass
class InputSettings:
    workers: List[int] = field(default_factory=lambda: [1, 4])
    strategy: str = "cubic"
    t0: float = 0.5
    repeats: int = 3
    turns: str = "none"  # how a round's two runs share the machine (TURNS)
    threads: int = 0
    out: str = "bench-results/input.json"


def parse(argv: list[str]) -> tuple[InputSettings, list[str]]:
    mine = OmegaConf.from_dotlist([a[len("bench."):] for a in argv if a.startswith("bench.")])
    s: InputSettings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(InputSettings), mine))
    if s.repeats < 1 or not s.workers or min(s.workers) < 0:
        raise ConfigError(f"bench.repeats={s.repeats}, bench.workers={s.workers}: need repeats >= 1 and worker "
                          "counts >= 0")
    if not 0.0 < s.t0 < 1.0:
        raise ConfigError(f"bench.t0={s.t0}: need a value in (0, 1)")
    if s.turns not in TURNS:
        raise ConfigError(f"bench.turns={s.turns!r}; allowed: {', '.join(TURNS)}")
    return s, [a for a in argv if not a.startswith("bench.")]


def train_round(jobs: dict[str, tuple], turns: str) -> tuple[dict, list[str]]:
    """Train ``jobs`` (label -> ``(cfg, run_dir)``, in the order given): taking turns an epoch at
    a time (``turns="epoch"``; each run hands over at the end of its own epochs), or one after the
    other. Returns the summaries by label and the order the epochs were trained in
    (``"label:epoch"``)."""
    from ..training.trainer import train

    labels = list(jobs)
    if turns == "none":
        return {k: train(*jobs[k]) for k in labels}, [f"{k}:all" for k in labels]
    order: list[str] = []
    epochs_done = [0] * len(labels)  # a fresh run hands over once per epoch: its n-th hand-over ends epoch n

    def on_turn(i: int, j: int) -> None:  # at the end of an epoch: its loader has nothing left to load
        epochs_done[i] += 1
        order.append(f"{labels[i]}:{epochs_done[i]}")

    run = functools.partial(train_in_turn, pause_every="epoch")
    return dict(zip(labels, take_turns([jobs[k] for k in labels], run=run, on_turn=on_turn))), order


def stage_steps(summary) -> dict:
    """Each freezing stage a run trained through: ``[predicted, trained]`` seconds a step (the
    input-aware time model's, training's own, data waits included), to see where a round's
    realisation came from."""
    predicted, trained = summary.step_seconds or {}, summary.train_step_seconds or {}
    return {k: [predicted.get(k), trained[k]] for k in sorted(trained, key=int)}


def setting(s: InputSettings, overrides: list[str], workers: int, workdir: Path) -> dict:
    """Rounds of a baseline and a FreezeOut run with ``workers`` loader workers."""
    variants = {"baseline": ["strategy=none"], "freezeout": [f"strategy={s.strategy}", f"t_0={s.t0}"]}
    rounds = []
    for r in range(s.repeats):
        labels = list(variants) if r % 2 == 0 else list(variants)[::-1]
        jobs = {k: (compose_run([*STREAMED, *overrides], f"data.workers={workers}", *variants[k]),
                    workdir / f"w{workers}-r{r}-{k}") for k in labels}
        got, turns = train_round(jobs, s.turns)
        for label, x in got.items():
            if x.status != "completed" or x.predicted_speedup["time"] is None:
                raise ConfigError(f"the {label} run ({x.status}) measured no time model: raise epochs or data.subset")
        b, f = got["baseline"], got["freezeout"]
        info = f.input
        measured = 1.0 - f.train_seconds / b.train_seconds
        rounds.append({"measured": measured, "input_aware": f.predicted_speedup["time"],
                       "compute_only": info.get("compute_only_speedup"),
                       "loader_images_per_second": info.get("loader_images_per_second"),
                       "compute_images_per_second": f.batch_size / info["compute_step_seconds"]["0"],
                       "input_bound_from": info.get("input_bound_from"), "max_saving": info.get("max_saving"),
                       "seconds": {"baseline": b.train_seconds, "freezeout": f.train_seconds},
                       "data_wait_seconds": {"baseline": b.input["data_wait_seconds"],
                                             "freezeout": info["data_wait_seconds"]},
                       "stages": {k: stage_steps(x) for k, x in got.items()},
                       "turns": turns})
        say(f"  workers={workers} round {r + 1}: baseline {b.train_seconds:.2f} s, {s.strategy} t_0={s.t0} "
            f"{f.train_seconds:.2f} s; measured {pct(measured)}, predicted {pct(rounds[-1]['input_aware'])} "
            f"(compute-only {pct(rounds[-1]['compute_only'])})")
    med = {k: statistics.median(r[k] for r in rounds) for k in ("measured", "input_aware", "compute_only",
                                                                "loader_images_per_second", "compute_images_per_second")}
    aware = statistics.median(r["measured"] / r["input_aware"] for r in rounds)
    compute = statistics.median(r["measured"] / r["compute_only"] for r in rounds)
    ok = TARGET[0] <= aware <= TARGET[1]
    bound = rounds[0]["input_bound_from"]
    say(f"workers={workers}: loader {med['loader_images_per_second']:.0f} img/s, compute "
        f"{med['compute_images_per_second']:.0f} img/s (unfrozen), "
        f"{'compute-bound' if bound is None else f'input-bound from stage {bound}'}; measured {pct(med['measured'])}, input-aware {pct(med['input_aware'])} -> "
        f"realisation {aware:.3f} ({'PASS' if ok else 'FAIL'}), compute-only {pct(med['compute_only'])} -> {compute:.3f}")
    return {"workers": workers, "rounds": rounds, "median": med, "realisation_input_aware": aware,
            "realisation_compute_only": compute, "pass": ok}


def main(argv: list[str] | None = None) -> dict:
    from ..rundir.provenance import device_name, git_revision, library_versions
    from ..rundir.records import write_json_atomic
    from ..training.checks import validate

    s, overrides = parse(list(sys.argv[1:] if argv is None else argv))
    if s.threads > 0:
        torch.set_num_threads(s.threads)
    started = time.perf_counter()
    checked = validate(compose_run([*STREAMED, *overrides]))
    say(f"input benchmark: {checked.train_images} streamed images of {checked.spec.in_channels}x"
        f"{checked.spec.image_size[0]}x{checked.spec.image_size[1]}, {device_name(checked.device)}; "
        f"workers {s.workers}, {s.repeats} round(s), turns: {s.turns}")
    with tempfile.TemporaryDirectory(prefix="freezeout-bench-input-") as tmp:
        settings = [setting(s, overrides, w, Path(tmp)) for w in s.workers]
    results = {"settings": {**vars(s), "overrides": overrides, "threads_used": torch.get_num_threads()},
               "environment": {"device": device_name(checked.device), "versions": library_versions(),
                               "git_revision": git_revision()},
               "by_workers": settings, "wall_seconds": time.perf_counter() - started}
    (out := Path(s.out)).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, results)
    say(f"wrote {out} ({results['wall_seconds']:.0f} s)")
    return results


def cli() -> None:
    """The command line (see :func:`~freezeout.bench.settings.run_command`)."""
    run_command(__doc__, main)


if __name__ == "__main__":
    cli()
