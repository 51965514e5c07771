"""FreezeOut in training code the harness does not own: :class:`freezeout.FreezeController`
(:mod:`.controller`, for any PyTorch loop) and, on it, one module per framework, each an optional
extra: :mod:`.lightning` (``pip install 'freezeout[lightning]'``).

May import: ``freezing`` (the rules and the controller), ``models`` (grouping, FLOPs), ``speedup``
(the formulas), ``config``, and the framework it integrates. Nothing imports it but the public API.
"""
