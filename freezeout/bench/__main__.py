"""``python -m freezeout.bench``."""
from . import cli

cli()
