"""On-disk run state: records (``summary.json``, ``metrics.jsonl``), checkpoints, resume, the run
lock, run identity (which keys tell runs apart), provenance (versions, git revision), the load a
run trained under and the run-end sanity check (did it learn at all).

Torch-free at import time, so that ``analysis`` imports it cheaply. May import: ``errors``.
"""
