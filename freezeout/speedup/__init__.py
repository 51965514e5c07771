"""Predicted speedups: the pure formulas (:mod:`.formulas`: paper, flops, time) and the measured
time model (:mod:`.timemodel`: step times per freezing stage, through the training step).

May import: ``freezing``, ``models``, ``training.step`` (the one train step), ``distributed``.
"""
