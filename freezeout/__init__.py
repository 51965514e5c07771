"""FreezeOut: anneal each layer group's learning rate to zero on its own schedule, then freeze it."""
from .freezer import FreezeOut, freeze_module
from .schedule import layer_times, learning_rate
from .speedup import calc_speedup, flops_speedup, paper_speedup

__all__ = ["FreezeOut", "freeze_module", "layer_times", "learning_rate", "calc_speedup",
           "flops_speedup", "paper_speedup", "train"]


def train(cfg, run_dir=None):
    """Train one run from a config (see :func:`freezeout.trainer.train`)."""
    from .trainer import train as _train  # imported lazily: the core needs no Hydra/tqdm
    return _train(cfg, run_dir)
