"""``compile=true``: ``torch.compile`` per layer group, in two forms a group, each compiled once.

A group compiled as one function would be compiled again whenever a guard changes: its
parameters stop requiring grad (freezing), its modules switch to eval mode (freezing,
evaluation), grad mode turns off (evaluation), its input stops requiring grad (the group before
it froze). Here each group has two forms, each its own code object and so its own compile cache
and recompile limit:

- **train**: the group trains (train mode, grad mode, its parameters require grad), with its
  input requiring grad as at its first training step (the images for the first group, the output
  of a training group for the others);
- **frozen**: eval mode without autograd: a frozen group in training (run under ``no_grad``, as
  it needs no graph), the cache's store advancing, and evaluation of every group (a training
  group's parameters stop requiring grad while it is evaluated). Its batch size is dynamic, so
  that evaluation's batches and training's share it.

Any other call runs eager: the first training group after the frozen prefix (its input no longer
requires grad, for the stretch until it freezes itself), and modes no run uses. Copies of a
model (the time model's) share the code objects, so a copy's compiled forms serve the run; they
belong to the run's :class:`CompileLog`, not to the process: another run in the same process (a
sweep's jobs, runs taking turns) compiles its own, so graphs of other shapes, dtypes or layouts
never accumulate toward one code object's recompile limit, and a run's graphs go with it.
Each compile is counted, with its seconds, in the run's :class:`CompileLog`; a recompile limit
that dynamo hits is logged (:func:`watch_recompile_limits`).
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import types
import weakref
from typing import Any, Callable

import torch
from torch import nn

log = logging.getLogger("freezeout")
FORMS = ("train", "frozen")
#: compilation_time_metrics keys that hold compile seconds: dynamo's frame compile (forward, and
#: the backward too where it is compiled with it) and a backward compiled at its first call.
_COMPILE_KEYS = ("_compile.compile_inner", "backward._backward_impl")
_SERIALS = itertools.count(1)


def _call(module: nn.Module, *args, **kwargs):
    return module._call_impl(*args, **kwargs)


def _compiled(kind: type, position, form: str, compile_log: CompileLog) -> Callable:
    """``torch.compile`` of a code object of its own for the ``form`` of a group's root module of
    type ``kind`` at ``position``: one per run (its ``compile_log``), shared by its model copies."""
    key = (kind, position, form)
    functions = compile_log.functions
    if key not in functions:  # named by the run too: dynamo keeps what it learnt (dynamic sizes) by code name
        name = f"freezeout_{kind.__name__}_{position}_{form}_run{compile_log.serial}"
        code = _call.__code__.replace(co_name=name)
        functions[key] = torch.compile(types.FunctionType(code, _call.__globals__, code.co_name),
                                       backend=compile_log.backend)
    return functions[key]


def graphs_compiled() -> int:
    """Graphs dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters
    return counters["stats"]["unique_graphs"]


def compile_seconds_so_far() -> float:
    """Seconds this process has spent compiling so far (dynamo's own metrics)."""
    from torch._dynamo.utils import compilation_time_metrics
    return sum(sum(compilation_time_metrics.get(k, ())) for k in _COMPILE_KEYS)


class CompileLog:
    """A run's compilations: graphs by group and form, forms run eager, recompile limits hit, and
    the seconds spent compiling (``start()``/``stop()`` bracket the run's own part)."""

    def __init__(self, backend: str = "inductor"):
        self.backend = backend
        self.graphs: dict[int, dict[str, int]] = {}
        self.eager_calls: dict[int, int] = {}
        self.seconds = 0.0
        self._hits_before = limit_hits()
        self._depth = 0
        self.time_model: dict | None = None  # its compile seconds by stage, its speedup with them
        #: The run's compiled functions by (root type, group position, form): see :func:`_compiled`.
        self.functions: dict[tuple, Callable] = {}
        self.serial = next(_SERIALS)  # this run's number in the process

    def add(self, index: int, form: str, graphs: int) -> None:
        by_form = self.graphs.setdefault(index, {f: 0 for f in FORMS})
        by_form[form] += graphs

    def eager(self, index: int) -> None:
        self.eager_calls[index] = self.eager_calls.get(index, 0) + 1

    @contextlib.contextmanager
    def timing(self):
        """Count the compile seconds spent inside the block as this run's (a train step brackets
        its backward too, where a backward is compiled at its first call; blocks may nest)."""
        self._depth += 1
        before = compile_seconds_so_far() if self._depth == 1 else None
        try:
            yield
        finally:
            self._depth -= 1
            if before is not None:
                self.seconds += compile_seconds_so_far() - before

    def outside(self) -> bool:
        """Whether no :meth:`timing` block is open (a call inside one is timed by it)."""
        return self._depth == 0

    def max_per_group(self) -> int:
        return max((sum(f.values()) for f in self.graphs.values()), default=0)

    def record(self) -> dict[str, Any]:
        """What ``summary.json`` keeps (``compile``)."""
        return {"backend": self.backend, "graphs": sum(sum(f.values()) for f in self.graphs.values()),
                "max_per_group": self.max_per_group(), "seconds": self.seconds,
                "by_group": {str(i): dict(f) for i, f in sorted(self.graphs.items())},
                "eager_calls": {str(i): n for i, n in sorted(self.eager_calls.items())},
                "recompile_limit_hits": limit_hits() - self._hits_before, "time_model": self.time_model}


class _Forms:
    """A group root's ``_compiled_call_impl``: picks the form of each call (module docstring)."""

    def __init__(self, root: nn.Module, index: int, params: list[nn.Parameter], compile_log: CompileLog):
        self.root, self.index, self.params, self.log = weakref.ref(root), index, params, compile_log
        self.train_input_grad: bool | None = None  # the train form's input, fixed by its first call
        self.fns = {form: _compiled(type(root), index, form, compile_log) for form in FORMS}

    def __deepcopy__(self, memo):  # a copy of the model runs eager until it is compiled itself
        return None

    def _form(self, root: nn.Module, args) -> str | None:
        grad, input_grad = torch.is_grad_enabled(), any(torch.is_tensor(a) and a.requires_grad for a in args)
        trainable = any(p.requires_grad for p in self.params)
        if not root.training and not input_grad and (not grad or not trainable):
            return "frozen"
        if grad and trainable and root.training:
            if self.train_input_grad is None:
                self.train_input_grad = input_grad
            return "train" if input_grad == self.train_input_grad else None
        return None

    def __call__(self, *args, **kwargs):
        root = self.root()
        form = self._form(root, args)
        if form is None:
            self.log.eager(self.index)
            return root._call_impl(*args, **kwargs)
        before = graphs_compiled()
        with self.log.timing() if self.log.outside() else contextlib.nullcontext():  # a train step times itself
            if form == "train":
                out = self.fns[form](root, *args, **kwargs)
            else:
                for a in args:
                    if torch.is_tensor(a) and a.dim() > 0:
                        torch._dynamo.maybe_mark_dynamic(a, 0)
                with torch.no_grad(), _grads_off(self.params):
                    out = self.fns[form](root, *args, **kwargs)
        if graphs_compiled() > before:
            self.log.add(self.index, form, graphs_compiled() - before)
        return out


@contextlib.contextmanager
def _grads_off(params: list[nn.Parameter]):
    """A training group's parameters stop requiring grad for a frozen-form call (evaluation)."""
    on = [p for p in params if p.requires_grad]
    for p in on:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in on:
            p.requires_grad_(True)


_WARNED_CPU = [False]


def compile_groups(model: nn.Module, compile_log: CompileLog, device: torch.device | None = None) -> None:
    """Give each layer group's root modules their two compiled forms (module docstring). On the
    CPU it warns, once a process, that compiling is unlikely to pay."""
    watch_recompile_limits()
    if device is not None and device.type == "cpu" and not _WARNED_CPU[0]:
        _WARNED_CPU[0] = True
        log.warning("compile=true on the CPU: compiling each layer group costs seconds to minutes, more than it "
                    "saves in a run of this harness's sizes (see docs/performance.md, GPU check); compile=false trains "
                    "sooner")
    for index, group in enumerate(model.layer_groups()):
        params = list(group.parameters())
        for j, root in enumerate(group.roots):
            position = index if len(group.roots) == 1 else (index, j)
            root._compiled_call_impl = _Forms(root, position, params, compile_log)


_LIMIT_HITS = [0]


class _LimitWatch(logging.Filter):
    """Dynamo's warning that a recompile limit was hit (the code runs eager from then on): counted,
    and repeated in the run's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("torch._dynamo hit config."):
            _LIMIT_HITS[0] += 1
            log.warning("compile: %s; that code runs eager from here on", " ".join(message.splitlines()[:2]))
        return True


def watch_recompile_limits() -> None:
    """Count and log every recompile limit dynamo hits in this process (installed once)."""
    logger = logging.getLogger("torch._dynamo.convert_frame")
    if not any(isinstance(f, _LimitWatch) for f in logger.filters):
        logger.addFilter(_LimitWatch())


def limit_hits() -> int:
    """Recompile limits hit in this process since :func:`watch_recompile_limits` was installed."""
    return _LIMIT_HITS[0]
