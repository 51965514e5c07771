"""Several processes training one run: the process group (:mod:`.process_group`), the run-level
pieces each rank does (:mod:`.ranks`: seeding, checkpoints, resume checks) and the freeze-aware
gradient sync (:mod:`.gradsync`).

May import: ``errors``, torch. Nothing above it.
"""
