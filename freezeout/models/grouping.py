"""Layer groups for models nobody wrote for FreezeOut: found in forward order, taken from timm's
own ``group_matcher``, or given by the user as parameter-name prefixes / regexes.

A grouping is a list of :class:`GroupSpec` (names relative to the user's model), from input to
output, the head last. Every function here is pure: it reads a model and its :class:`Trace`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from torch import nn

from ..errors import ConfigError
from .trace import Trace

#: Modules that only hold other modules: descended into, so their items become groups.
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_NORMS = tuple(c for c in (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
                           getattr(nn, "RMSNorm", None)) if c is not None)
#: Parameter-free modules that only feed a classifier: global pooling, flattening, dropout.
_FEEDS_HEAD = (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd, nn.Flatten,
               nn.Identity, nn.modules.dropout._DropoutNd)
_PLAIN_NAME = re.compile(r"[\w.]+")


@dataclass
class GroupSpec:
    """One layer group by name: whole module subtrees and loose parameters (owned by a module
    that is not in the group, e.g. a ViT's class token owned by the model itself)."""

    name: str
    modules: list[str] = field(default_factory=list)
    loose: list[str] = field(default_factory=list)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def _label(model: nn.Module, names: Sequence[str]) -> str:
    """A short group name: its parameter-holding members, or the module they make up whole
    (``stem`` for ``stem.0, stem.1``)."""
    parents = {_parent(n) for n in names}
    if len(names) > 1 and len(parents) == 1 and "" not in parents:
        parent = parents.pop()
        members = {_join(parent, c) for c, m in model.get_submodule(parent).named_children() if _has_params(m)}
        if members == set(names):
            return parent
    return ", ".join(names[:3]) + (", …" if len(names) > 3 else "")


def _has_params(m: nn.Module) -> bool:
    return next(m.parameters(), None) is not None


def _is_leaf(m: nn.Module) -> bool:
    return next(m.children(), None) is None


def _units(model: nn.Module) -> tuple[list[str], list[str], str]:
    """Module names to group (containers and the model itself opened up), the parameters those
    opened modules own directly, and the effective root (a model wrapping one module is opened
    down to it)."""
    root, loose = "", []
    while True:  # a wrapper holding one module (self.net = resnet18()) is opened down to it
        module = model.get_submodule(root)
        children = list(module.named_children())
        if len(children) != 1 or _is_leaf(children[0][1]):
            break
        loose += [_join(root, p) for p, v in module._parameters.items() if v is not None]
        root = _join(root, children[0][0])
    units: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        loose.extend(_join(prefix, p) for p, v in module._parameters.items() if v is not None)
        for name, child in module.named_children():
            full = _join(prefix, name)
            if type(child) in CONTAINERS:
                visit(full, child)
            else:
                units.append(full)
    visit(root, model.get_submodule(root))
    return units, loose, root


def forward_order_groups(model: nn.Module, trace: Trace) -> list[GroupSpec]:
    """Groups in the order one forward pass first runs the model's modules: each block its own
    group; norm layers and parameter-free modules join the group before them (conv -> norm ->
    activation stay together); the head (the classifier, what follows it, and the global
    pooling and dropout that only feed it) last."""
    units, loose, root = _units(model)
    ran = sorted([(trace.module_start[u], "module", u) for u in units if u in trace.module_start]
                 + [(trace.param_use[p], "param", p) for p in loose if p in trace.param_use])
    ran = [(kind, name) for _, kind, name in ran]
    head_at = _head_start(model, ran, root)

    groups: list[GroupSpec] = []
    first = GroupSpec("")  # what runs before the first block joins the first group
    for kind, name in ran[:head_at]:
        if kind == "module" and _opens_group(model.get_submodule(name)):
            groups.append(GroupSpec("", first.modules + [name], first.loose) if not groups else GroupSpec("", [name]))
        else:
            target = groups[-1] if groups else first
            (target.modules if kind == "module" else target.loose).append(name)
    head = GroupSpec("", [] if groups else first.modules, [] if groups else first.loose)
    for kind, name in ran[head_at:]:
        (head.modules if kind == "module" else head.loose).append(name)
    # Never run (e.g. an auxiliary classifier used only in training): the head, which never freezes.
    head.modules += [u for u in units if u not in trace.module_start]
    head.loose += [p for p in loose if p not in trace.param_use]
    groups.append(head)
    for g in groups:
        g.name = _label(model, [n for n in g.modules if _has_params(model.get_submodule(n))] + g.loose) or "(no parameters)"
    return groups


def _is_norm(m: nn.Module) -> bool:
    """A norm layer whose parameters are its own (timm's norm+activation modules included)."""
    return isinstance(m, _NORMS) and not any(_has_params(c) for c in m.children())


def _opens_group(m: nn.Module) -> bool:
    """A module with parameters starts a group; a norm layer joins the one before it."""
    return _has_params(m) and not _is_norm(m)


def _head_start(model: nn.Module, ran: list[tuple[str, str]], root: str) -> int:
    """Index in ``ran`` where the head begins: at the last module holding parameters (the
    classifier), extended back over global pooling, flattening and dropout, and over what
    shares the classifier's container (torchvision's ``classifier = Sequential(Linear, ReLU,
    Dropout, Linear)``) but a norm layer, which stays with the layer it normalises."""
    with_params = [i for i, (kind, n) in enumerate(ran) if kind == "module" and _has_params(model.get_submodule(n))]
    if not with_params:
        return len(ran)
    start = with_params[-1]
    home = _parent(ran[start][1])
    while start > 0:
        kind, name = ran[start - 1]
        if kind != "module":
            break
        m = model.get_submodule(name)
        if home != root and _parent(name) == home:  # the classifier's own container (not a root Sequential)
            if _has_params(m) and not (_is_leaf(m) and isinstance(m, nn.Linear)):
                break
        elif _has_params(m) or not isinstance(m, _FEEDS_HEAD):
            break
        start -= 1
    return start


def timm_groups(model: nn.Module, trace: Trace) -> list[GroupSpec] | None:
    """timm's own fine grouping (``model.group_matcher(coarse=False)``) for the body, with the
    head as :func:`forward_order_groups` finds it; None if the model has no matcher."""
    if not callable(getattr(model, "group_matcher", None)):
        return None
    from timm.models import group_parameters

    try:
        layers = group_parameters(model, model.group_matcher(coarse=False))
    except Exception:  # a matcher that does not fit this configuration: use the forward order
        return None
    head = forward_order_groups(model, trace)[-1]
    in_head = {_join(m, n) for m in head.modules for n, _ in model.get_submodule(m).named_parameters()}
    in_head |= set(head.loose)
    body = [[n for n in names if n not in in_head] for _, names in sorted(layers.items())]
    body = [names for names in body if names]
    for i in range(len(body) - 1, 0, -1):  # a group of norm layers alone (timm's final norm) joins the one before
        if all(_is_norm(model.get_submodule(_parent(n))) for n in body[i]):
            body[i - 1] += body.pop(i)
    owner = {n: i for i, names in enumerate(body) for n in names}
    owner.update({n: len(body) for n in in_head})
    fixed = {m: len(body) for m in head.modules}
    groups = specs_from_owner(model, trace, owner, len(body) + 1, fixed)
    groups[-1].name = head.name
    return groups


def explicit_groups(model: nn.Module, trace: Trace, entries: Sequence[str]) -> list[GroupSpec]:
    """The user's groups: entry ``i`` takes every parameter it matches. A plain dotted name is a
    module path (``layer1`` is ``layer1.*``, not ``layer10``); anything else is a regex matched at
    the start of the name. Each parameter must match exactly one entry, each entry something."""
    owner: dict[str, int] = {}
    hits = [0] * len(entries)
    for name, _ in model.named_parameters():
        matched = [i for i, e in enumerate(entries) if _matches(e, name)]
        if len(matched) > 1:
            i, j = matched[:2]
            raise ConfigError(f"model.groups: parameter {name!r} is in two groups: entry {i} ({entries[i]!r}) "
                              f"and entry {j} ({entries[j]!r}); make the entries disjoint")
        if not matched:
            raise ConfigError(f"model.groups: parameter {name!r} is in no group; add an entry that matches it "
                              f"(a module path such as {_parent(name) or name!r}, or a regex)")
        owner[name] = matched[0]
        hits[matched[0]] += 1
    for i, n in enumerate(hits):
        if n == 0:
            raise ConfigError(f"model.groups: entry {i} ({entries[i]!r}) matches no parameter of the model; "
                              "`python -m freezeout.groups` lists the groups auto finds")
    groups = specs_from_owner(model, trace, owner, len(entries))
    for g, entry in zip(groups, entries):
        g.name = entry
    return groups


def _matches(entry: str, name: str) -> bool:
    if _PLAIN_NAME.fullmatch(entry):
        return name == entry or name.startswith(entry + ".")
    try:
        return re.match(entry, name) is not None
    except re.error as e:
        raise ConfigError(f"model.groups: entry {entry!r} is not a valid regular expression ({e})") from None


def specs_from_owner(model: nn.Module, trace: Trace, owner: dict[str, int], n: int,
                     fixed: dict[str, int] | None = None) -> list[GroupSpec]:
    """Turn a parameter -> group map into groups of whole modules: a module whose parameters all
    lie in one group is a root of it (``fixed`` modules go where they are told); parameter-free
    modules join the group of the last parameter used before they run (the last if never run)."""
    fixed = fixed or {}
    groups = [GroupSpec("") for _ in range(n)]
    free: list[str] = []

    def walk(name: str, module: nn.Module) -> None:
        if name in fixed:
            groups[fixed[name]].modules.append(name)
            return
        params = [_join(name, p) for p, _ in module.named_parameters()]
        if not params:
            free.append(name)
            return
        owners = {owner[p] for p in params if p in owner}
        if name and len(owners) == 1:
            groups[owners.pop()].modules.append(name)
            return
        for p, value in module._parameters.items():
            if value is not None and _join(name, p) in owner:
                groups[owner[_join(name, p)]].loose.append(_join(name, p))
        for child, m in module.named_children():
            walk(_join(name, child), m)

    walk("", model)
    uses = sorted((t, owner[p]) for p, t in trace.param_use.items() if p in owner)
    for name in free:
        start = trace.module_start.get(name)
        before = [g for t, g in uses if start is not None and t < start]
        groups[before[-1] if before else (0 if start is not None else n - 1)].modules.append(name)
    for g in groups:
        g.name = _label(model, [m for m in g.modules if _has_params(model.get_submodule(m))] + g.loose)
    return groups
