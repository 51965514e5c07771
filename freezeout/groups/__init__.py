"""``python -m freezeout.groups``: the layer-groups report (kept as a command of its own; the
report itself is :mod:`freezeout.models.report`)."""
