"""FreezeOut inside other training frameworks, each on :class:`freezeout.FreezeController`, each an
optional extra: :mod:`.lightning` (``pip install 'freezeout[lightning]'``).

May import: ``freezeout.freezing`` (the controller) and the framework it integrates.
"""
