"""``python -m freezeout COMMAND ...``: the ``freezeout`` command (:mod:`freezeout.cli`)."""
import sys

from .cli import main

sys.exit(main())
