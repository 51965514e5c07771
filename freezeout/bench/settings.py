"""The benchmark's settings: ``bench.*`` options, and the run config (Hydra overrides, as for
``run.py``) composed on top of the benchmark's default run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from omegaconf import OmegaConf

from ..config import compose_config
from ..errors import ConfigError

#: The default run: the quickstart model on 4,096 Fashion-MNIST images, 3 epochs; its runs take
#: turns every iteration (log_every=1). On a GPU, where each turn syncs the device, they take turns
#: every GPU_LOG_EVERY iterations unless log_every is given. Any override on the command line comes
#: after these; a run's records are not kept.
DEFAULT_RUN = ["experiment=quickstart", "data.subset=4096", "data.val_size=500", "epochs=3", "log_every=1",
               "checkpoint=false", "progress=false", "predict_time=false", "eval_test=false"]
GPU_LOG_EVERY = 25


@dataclass
class BenchSettings:
    """``bench.KEY=VALUE`` on the command line."""
    strategy: str = "cubic"  # FreezeOut strategy whose runs are realised
    t0: List[float] = field(default_factory=lambda: [0.5, 0.8])  # t_0 values realised, each in (0, 1)
    repeats: int = 5  # rounds of baseline + FreezeOut runs: their median damps a stray round
    chunks: int = 8  # alternating chunk pairs in the step-time comparisons
    chunk_steps: int = 4  # steps per chunk
    threads: int = 0  # torch CPU threads per process (0: torch's default, shared out)
    world_size: int = 1  # processes training together (DDP), started as torchrun would
    cache: bool = True  # also realise the first t_0 with cache_frozen=true, where the cache applies
    out: str = "bench-results/bench.json"


def say(message: str = "") -> None:
    print(message, flush=True)  # at once: the benchmark takes minutes, a figure shows when known


def parse(argv: list[str]) -> tuple[BenchSettings, list[str]]:
    """Split ``argv`` into the benchmark's settings (``bench.*``, type-checked) and the run's
    Hydra overrides; bad settings raise ConfigError naming them."""
    mine = OmegaConf.from_dotlist([a[len("bench."):] for a in argv if a.startswith("bench.")])
    s: BenchSettings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(BenchSettings), mine))
    for name in ("repeats", "chunks", "chunk_steps", "world_size"):
        if getattr(s, name) < 1:
            raise ConfigError(f"bench.{name}={getattr(s, name)}; need an integer >= 1")
    if not s.t0 or not all(0.0 < t < 1.0 for t in s.t0):
        raise ConfigError(f"bench.t0={s.t0}: each value must lie in (0, 1) (t_0 = 1 is the baseline)")
    if s.strategy not in ("linear", "squared", "cubic"):
        raise ConfigError(f"bench.strategy={s.strategy!r}; allowed: linear, squared, cubic")
    return s, [a for a in argv if not a.startswith("bench.")]


def compose_run(overrides: list[str], *extra: str):
    """The run config ``run.py`` would compose from the benchmark's defaults + ``overrides``."""
    return compose_config(*DEFAULT_RUN, *overrides, *extra)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def run_command(doc: str, main) -> None:
    """A benchmark's command line: ``--help`` prints ``doc`` (what it does); ``main()`` runs it,
    and a bad setting ends in one line (``error: ...``) instead of a traceback."""
    import sys

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if {"-h", "--help"} & set(sys.argv[1:]):
        print(doc)
        return
    try:
        main()
    except (ConfigError, HydraException, OmegaConfBaseException) as e:
        raise SystemExit(f"error: {e}") from None
