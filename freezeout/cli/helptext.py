"""``freezeout COMMAND --help`` (and ``-h``) for the commands whose arguments are Hydra overrides
(train, groups, bench): their own usage line, what they do, and the config groups a user picks
from (the shipped ones with the named sweeps, launchers and sweepers; Hydra's internal
``schema/*`` groups left out). plan, analyze and config parse their flags with argparse, which
prints their help itself."""
from __future__ import annotations

import importlib

from .configs import describe_groups

USAGE = {
    "train": "freezeout train [-m] [KEY=VALUE ...] [--config-dir DIR] [--cfg job]",
    "groups": "freezeout groups [KEY=VALUE ...] [--config-dir DIR]",
    "bench": "freezeout bench [RUN OVERRIDES] [bench.KEY=VALUE ...] [--config-dir DIR]",
}
_TRAIN = """\
Train one model with FreezeOut, or a sweep of them with -m. Every setting is KEY=VALUE on top of the
shipped config (conf/config.yaml); a config group is chosen with GROUP=OPTION.

examples:
  freezeout train experiment=quickstart                       # a small CPU run, Fashion-MNIST
  freezeout train strategy=cubic t_0=0.8 epochs=20 optimizer.lr=0.05
  freezeout train -m strategy=none,linear,cubic t_0=0.5 hydra/launcher=turns
  freezeout train -m sweeps=strategies                        # a named sweep
  freezeout train --resume [KEY=VALUE ...]                    # go on with the latest interrupted run of this config

more:
  freezeout train --cfg job [KEY=VALUE ...]   every key and its value, without training
  freezeout train --hydra-help                Hydra's own flags (-m, --cfg, --config-dir, -p, ...)
  HYDRA_FULL_ERROR=1 / debug=true             the traceback of a config error / of a failing run
"""
_GROUPS = """\
A model's layer groups, their parameters and share of the forward FLOPs, and when each freezes,
without training. Takes the same KEY=VALUE settings as freezeout train (model, data, strategy, t_0).

examples:
  freezeout groups model=timm model.name=resnet18 data=fashion_mnist
  freezeout groups model=custom model._target_=mynet.build data=fashion_mnist t_0=0.5
"""


def command_help(name: str) -> str | None:
    """The help page of command ``name``; None for a command that prints its own (argparse)."""
    if name == "train":
        text = _TRAIN
    elif name == "groups":
        text = _GROUPS
    elif name == "bench":  # what the benchmark does and its bench.* options: its docstring
        doc = importlib.import_module("freezeout.bench").__doc__ or ""
        text = doc.partition("\n")[2].strip("\n") + "\n"
    else:
        return None
    return "\n".join([f"usage: {USAGE[name]}", "", text, *describe_groups()])
