"""The algorithm: FreezeOut's schedule (pure math), the registry of freezing rules (FreezeOut's
strategies and its rivals, each declared once), the controller that sets each layer group's
rate and freezes it, and the optimizer factories. Usable in any training loop.

May import: ``errors`` and the standard library, torch, Hydra's ConfigStore and omegaconf (a rule
registers its config schema). Nothing else of the project. The rules' declarations are torch-free
at import (``freezeout.config`` loads them to register their schemas); the controllers need torch.
"""
