"""``python -m freezeout.groups``: the layer-groups report, as ``freezeout groups`` (the command is
:mod:`freezeout.cli.groups`, the table :mod:`freezeout.models.report`)."""
