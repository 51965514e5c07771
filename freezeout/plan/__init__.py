"""The sweep plan (``python -m freezeout.plan``): what a sweep will run and how long it will
take, from the time model's step times measured once per distinct setting.

May import everything in ``freezeout`` below it (``training``, ``speedup``, ``models``...).
"""
