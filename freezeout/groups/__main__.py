"""``python -m freezeout.groups``: ``freezeout groups``."""
import sys

from ..cli.groups import main

sys.exit(main())
