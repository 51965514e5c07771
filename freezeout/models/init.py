"""``model.init=PATH``: a run's model starts from saved weights (fine-tuning, where freezing is most
used), for every kind of model (built-in, timm, torchvision, custom).

PATH holds a ``state_dict`` (``torch.save(net.state_dict(), PATH)``, or ``.safetensors``), or a
checkpoint holding one under ``"model"`` (a freezeout run's ``checkpoint.pt``) or
``"state_dict"`` (Lightning's). Its keys may be those of the user's own net or of the harness's
wrapper around it (``net.``), with or without a ``module.`` (DDP) or ``_orig_mod.``
(``torch.compile``) prefix. The head (the last layer group) is re-initialised, and the log says
so, when its shapes do not match (another number of classes); any other shape that differs, and
missing or unexpected keys, end in one line naming a few (``model.init_strict=false`` loads what
fits and counts the rest in the log). Reading the file is ``torch.load(weights_only=True)``:
tensors and plain containers only, no code from the file runs.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import ConfigError, one_line

log = logging.getLogger("freezeout")
_WRAPPERS = ("module.", "_orig_mod.")  # DDP's and torch.compile's prefixes


def init_weights(model: nn.Module, model_cfg: Mapping[str, Any]) -> None:
    """Load ``model.init`` into ``model`` (nothing when it is not set)."""
    path = model_cfg.get("init")
    if path:
        load_init(model, str(path), bool(model_cfg.get("init_strict", True)))


def load_init(model: nn.Module, path: str, strict: bool = True) -> None:
    """Load the weights at ``path`` into ``model`` (see the module docstring); ConfigError (one line)
    when they do not fit."""
    file_sd = _matching_keys(read_state_dict(path), model.state_dict())
    own = model.state_dict()
    head = head_keys(model)
    shapes = {k: (tuple(v.shape), tuple(own[k].shape)) for k, v in file_sd.items() if k in own and v.shape != own[k].shape}
    body = [k for k in shapes if k not in head]
    if body:
        raise ConfigError(f"model.init={path}: {len(body)} tensors have another shape than the model's: "
                          f"{_few(f'{k} ({_dims(shapes[k][0])} in the file, {_dims(shapes[k][1])} here)' for k in body)}; "
                          "the file holds another model's weights")
    reinit = sorted(shapes)
    loaded = {k: v for k, v in file_sd.items() if k in own and k not in shapes}
    missing = [k for k in own if k not in file_sd]
    unexpected = [k for k in file_sd if k not in own]
    if not loaded:
        raise ConfigError(f"model.init={path}: no tensor of the file fits the model (the file's keys: "
                          f"{_few(file_sd)}; the model's: {_few(own)})")
    if strict and (missing or unexpected):
        raise ConfigError(f"model.init={path} does not fit the model: {len(missing)} missing keys"
                          f"{f' ({_few(missing)})' if missing else ''}, {len(unexpected)} unexpected"
                          f"{f' ({_few(unexpected)})' if unexpected else ''}; model.init_strict=false loads what fits")
    model.load_state_dict(loaded, strict=False)
    log.info("model.init: %d of the model's %d tensors loaded from %s%s", len(loaded), len(own), path,
             f"; {len(missing)} missing and {len(unexpected)} unexpected keys ignored (model.init_strict=false)"
             if missing or unexpected else "")
    if reinit:
        log.info("model.init: the head is re-initialised, its shapes differ from the file's: %s",
                 ", ".join(f"{k} ({_dims(shapes[k][0])} in the file, {_dims(shapes[k][1])} here)" for k in reinit))


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The ``state_dict`` saved at ``path``, alone or inside a checkpoint."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"model.init={path}: no such file")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            saved = load_file(str(file))
        else:
            saved = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"model.init={path} cannot be read as weights ({one_line(e, 200)}); save them with "
                          "torch.save(model.state_dict(), PATH)") from None
    for candidate in (saved.get("model"), saved.get("state_dict"), saved) if isinstance(saved, Mapping) else ():
        if isinstance(candidate, Mapping) and candidate and all(isinstance(v, torch.Tensor) for v in candidate.values()):
            return dict(candidate)
    raise ConfigError(f"model.init={path} holds no state_dict (a dict of tensors, alone or under 'model' or "
                      "'state_dict')")


def head_keys(model: nn.Module) -> set[str]:
    """The ``state_dict`` keys of the model's last layer group (its head)."""
    groups = model.layer_groups() if hasattr(model, "layer_groups") else []
    if not groups:
        return set()
    head = groups[-1]
    modules, params = {id(m) for m in head.modules()}, {id(p) for p in head.parameters()}
    keys = {name for name, p in model.named_parameters() if id(p) in params}
    for name, module in model.named_modules():
        if id(module) in modules:
            keys |= {f"{name}.{b}" if name else b for b, _ in module.named_buffers(recurse=False)}
    return keys


def _matching_keys(saved: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``saved`` with its keys renamed the way that matches most of ``own``'s: wrapper prefixes
    removed, the harness's ``net.`` added or removed."""
    for prefix in _WRAPPERS:
        if saved and all(k.startswith(prefix) for k in saved):
            saved = {k[len(prefix):]: v for k, v in saved.items()}
    candidates = [saved, {f"net.{k}": v for k, v in saved.items()},
                  {k[4:]: v for k, v in saved.items() if k.startswith("net.")}]
    return max(candidates, key=lambda c: len(c.keys() & own.keys()))


def _few(keys, n: int = 3) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"
