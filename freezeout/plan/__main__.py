"""``python -m freezeout.plan``."""
import sys

from .sweep import main

sys.exit(main())
