"""``python -m freezeout.groups``."""
import sys

from ..models.report import main

sys.exit(main())
