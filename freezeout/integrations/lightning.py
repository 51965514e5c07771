"""FreezeOut in any LightningModule, as one callback (``pip install 'freezeout[lightning]'``):

    trainer = L.Trainer(max_epochs=20, callbacks=[FreezeOutCallback("cubic", t_0=0.8)])
    trainer.fit(module, loader)

When fitting starts, the callback takes the optimizer ``configure_optimizers`` returned (one
optimizer, one parameter group, no learning-rate scheduler: FreezeOut sets the rates itself) and
rebuilds it, same class and settings, with one parameter group per layer group of the module
(:class:`freezeout.FreezeController`); after every optimizer step it sets each group's rate and
freezes the groups whose time has come. The run's length is Lightning's own estimate
(``trainer.estimated_stepping_batches``: ``max_epochs`` or ``max_steps``, gradient accumulation
counted). Layer groups are found by tracing one input of ``input_shape``, or of the module's
``example_input_array``, unless given as ``groups``. Resuming from a Lightning checkpoint restores
the frozen prefix (the callback's state) and the optimizer (Lightning's).

What it does is said through Lightning: the layer groups and when each freezes once fitting
starts, and each freezing event as it happens, as rank-zero info lines (Lightning's console
logger); the number of frozen groups is logged as ``freezeout/frozen_groups`` with
``LightningModule.log``, so every Lightning logger (TensorBoard, CSV, ...) records it.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

try:
    import lightning.pytorch as pl
    from lightning.pytorch.utilities import rank_zero_info
except ImportError:  # the older package name, else say how to install it
    try:
        import pytorch_lightning as pl
        from pytorch_lightning.utilities import rank_zero_info
    except ImportError:
        raise ImportError("freezeout.integrations.lightning needs Lightning: pip install 'freezeout[lightning]'") from None

from .controller import FreezeController


class FreezeOutCallback(pl.Callback):
    """FreezeOut's per-group rates and freezing for the LightningModule being fit.

    ``rule`` and ``settings`` (``t_0``, ``scale_lr``, ``lr``, a rule's own options such as
    ``freeze_start`` or ``interval``) are :class:`~freezeout.FreezeController`'s; ``groups`` and
    ``input_shape`` say how to find the layer groups. :attr:`controller` is set once fitting starts.
    """

    def __init__(self, rule: str = "cubic", *, groups: Sequence | None = None,
                 input_shape: Sequence[int] | None = None, **settings: Any):
        self.rule, self.groups, self.input_shape, self.settings = rule, groups, input_shape, settings
        self.controller: FreezeController | None = None
        self._restored: dict | None = None  # a checkpoint's state, loaded before fitting starts
        self._frozen = 0  # groups frozen when last said

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        configured = _one_optimizer(trainer)
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError("FreezeOut needs the run's length: set max_epochs or max_steps")
        per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        shape = self.input_shape
        example = getattr(pl_module, "example_input_array", None)
        if shape is None and self.groups is None and hasattr(example, "shape"):
            shape = (1, *example.shape[1:])
        self.controller = FreezeController(
            pl_module, lambda groups: type(configured)(groups, **configured.defaults), int(total), self.rule,
            groups=self.groups, input_shape=shape, steps_per_epoch=per_epoch, **self.settings)
        trainer.strategy.optimizers = [self.controller.optimizer]
        if self._restored is not None:  # before Lightning loads the optimizer's state into it
            self.controller.load_state_dict(self._restored)
        self._frozen = self.controller.num_frozen
        rank_zero_info(describe_groups(self.controller))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        # One controller step per optimizer step (fewer than batches under gradient accumulation).
        while self.controller.iteration < trainer.global_step:
            self.controller.step()
        frozen = self.controller.num_frozen
        for i in range(self._frozen, frozen):  # the groups that froze at this step
            rank_zero_info(f"FreezeOut: froze layer group {i} ({self.controller.groups[i].name}) at step "
                           f"{self.controller.iteration} of {self.controller.total_steps}; {frozen} of "
                           f"{len(self.controller.groups)} frozen")
        self._frozen = frozen
        pl_module.log("freezeout/frozen_groups", float(frozen), on_step=True, on_epoch=False)

    def state_dict(self) -> dict:
        """The frozen prefix and the step count; Lightning checkpoints the optimizer itself."""
        if self.controller is None:
            return {}
        return {k: v for k, v in self.controller.state_dict().items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored = state_dict or None


def describe_groups(controller: FreezeController) -> str:
    """The layer groups and the step each freezes at (an adaptive rule's: decided as it runs)."""
    from ..freezing.rules import get_rule

    adaptive = get_rule(controller.rule).adaptive
    lines = [f"FreezeOut {controller.rule} ({', '.join(f'{k}={v}' for k, v in controller.settings.items())}): "
             f"{len(controller.groups)} layer groups over {controller.total_steps} steps"]
    for i, group in enumerate(controller.groups):
        at = controller.freeze_at[i] if not adaptive and i < len(controller.freeze_at) else None
        when = ("decided during the run" if adaptive else "never (the head)" if i == len(controller.groups) - 1
                or at is None or at >= controller.total_steps else f"freezes at step {at}")
        lines.append(f"  {i}  {group.name}: {sum(p.numel() for p in group.parameters()):,} params, {when}")
    return "\n".join(lines)


def _one_optimizer(trainer: pl.Trainer):
    """The optimizer ``configure_optimizers`` returned, if FreezeOut can take it over."""
    if len(trainer.optimizers) != 1:
        raise ValueError(f"FreezeOutCallback takes one optimizer; configure_optimizers returned {len(trainer.optimizers)}")
    if trainer.lr_scheduler_configs:
        raise ValueError("FreezeOutCallback sets every layer group's learning rate: return no lr_scheduler "
                         "from configure_optimizers")
    optimizer = trainer.optimizers[0]
    if len(optimizer.param_groups) != 1:
        raise ValueError(f"FreezeOutCallback rebuilds the optimizer with one parameter group per layer group; "
                         f"configure_optimizers gave {len(optimizer.param_groups)} parameter groups: give one")
    return optimizer
