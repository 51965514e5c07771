"""``python run.py ARGS`` is ``freezeout train ARGS`` (see :mod:`freezeout.cli.train`), for a
checkout that is not installed:

    python run.py strategy=cubic t_0=0.8
    python run.py -m sweeps=strategies
    torchrun --nproc_per_node=2 run.py ...
"""
import sys

from freezeout.cli.train import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
