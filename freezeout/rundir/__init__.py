"""On-disk run state: records (``summary.json``, ``metrics.jsonl``), checkpoints, resume, the run
lock, run identity (which keys tell runs apart) and provenance (versions, git revision).

Torch-free at import time, so that ``analysis`` imports it cheaply. May import: ``errors``.
"""
