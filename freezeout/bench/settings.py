"""Benchmark settings: the command line, the run config it composes, the model it builds."""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


def say(message: str = "") -> None:
    """Print at once: the benchmark takes minutes and every figure should show when it is known."""
    print(message, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from ..config import PRECISIONS

    p = argparse.ArgumentParser(prog="python -m freezeout.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="densenet", help="registered model name")
    p.add_argument("--depth", type=int, default=16, help="model depth (for models that take one)")
    p.add_argument("--growth-rate", type=int, default=12, help="DenseNet growth rate k (other models: ignored)")
    p.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE",
                   help="any other model hyperparameter, repeatable (e.g. widen_factor=4)")
    p.add_argument("--data", default="fashion_mnist", help="cifar10 | cifar100 | fashion_mnist")
    p.add_argument("--data-root", default="data")
    p.add_argument("--subset", type=int, default=4096, help="training images")
    p.add_argument("--val-size", type=int, default=500,
                   help="validation images, evaluated after each epoch (outside train_seconds)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile each layer group, as the trainer does")
    p.add_argument("--repeats", type=int, default=3, help="baseline/FreezeOut rounds (and time-model rounds)")
    p.add_argument("--strategy", default="cubic", choices=("linear", "squared", "cubic"))
    p.add_argument("--t0", type=float, nargs="+", default=[0.5, 0.8], help="t_0 values to realise")
    p.add_argument("--stage-steps", type=int, default=8, help="timed steps per time-model stage and repeat")
    p.add_argument("--chunks", type=int, default=12, help="alternating chunk pairs in the step-time comparisons")
    p.add_argument("--chunk-steps", type=int, default=4, help="steps per chunk")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-rss", action="store_true", help="skip the CPU peak-RSS subprocesses")
    p.add_argument("--out", default="bench-results/bench.json")
    p.add_argument("--_memory-probe", dest="memory_probe", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("repeats", "stage_steps", "chunks", "chunk_steps", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}={getattr(args, name)}; need >= 1")
    if not all(0.0 < t < 1.0 for t in args.t0):
        p.error(f"--t0 {args.t0}: each value must lie in (0, 1) (t_0 = 1 is the baseline)")
    return args


def model_overrides(args: argparse.Namespace) -> list[str]:
    """``model.KEY=VALUE`` overrides: --depth/--growth-rate where the model takes them, --hparam."""
    from ..models import model_hparams

    try:
        accepted = model_hparams(args.model)
    except ValueError as e:  # unknown model: say which exist
        raise SystemExit(f"error: {e}") from None
    hparams = {"depth": args.depth, "growth_rate": args.growth_rate}
    out = [f"model.{k}={v}" for k, v in hparams.items() if k in accepted]
    for item in args.hparam:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --hparam {item!r}: expected KEY=VALUE")
        out = [o for o in out if not o.startswith(f"model.{key}=")] + [f"model.{key}={value}"]
    return out


def compose_config(args: argparse.Namespace, strategy: str = "none", t_0: float = 0.8):
    """The run config a user would get from ``run.py`` with the benchmark's settings (Hydra compose
    on ``conf/``), minus checkpoints, progress bars and the test split."""
    from hydra import compose, initialize_config_dir

    from ..config import register_configs

    os.environ.setdefault("FREEZEOUT_ROOT", str(REPO_ROOT))  # sweeps/ as a config group
    register_configs()
    overrides = [
        f"model={args.model}", *model_overrides(args), f"data={args.data}", f"data.subset={args.subset}",
        f"data.val_size={args.val_size}", f"strategy={strategy}", f"t_0={t_0}", f"epochs={args.epochs}",
        f"batch_size={args.batch_size}", f"device={args.device}", f"precision={args.precision}",
        f"channels_last={str(args.channels_last).lower()}", f"compile={str(args.compile).lower()}",
        f"seed={args.seed}", "checkpoint=false", "progress=false", "eval_test=false", "predict_time=false",
    ]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    cfg.data.root = str(Path(args.data_root).expanduser().resolve())  # any path, no override quoting
    return cfg


def build(cfg, device: torch.device):
    """The run's model with the run's initial weights, built by the trainer's own function."""
    from ..trainer import build_run_model

    return build_run_model(cfg, device).train()


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return a / b


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)
