"""One run: ``train(cfg)`` (:mod:`.trainer`), the cross-component checks done before anything is
loaded (:mod:`.checks`), the one training step (:mod:`.step`), the epoch loop (:mod:`.loop`),
the frozen-prefix cache, stop signals, progress, trackers and device helpers.

May import: ``config``, ``errors``, ``freezing``, ``models``, ``data``, ``distributed``,
``rundir``, ``speedup``. Not ``plan``, ``bench``, ``cli`` or ``analysis``.
"""
