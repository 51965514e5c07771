"""The user's network from timm, torchvision or their own code, as a plain ``nn.Module``.

Classes and input channels come from the data. Every failure is one line: a
:class:`ConfigError` for a bad setting, a :class:`ModelBuildError` when the library itself fails
to build the model (validation retries those off the meta device).
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import re
from typing import Any, Mapping

from torch import nn

from ..errors import ConfigError, one_line


class ModelBuildError(ConfigError):
    """The library or the user's builder raised while building or running the model."""


def build_timm(name: str, num_classes: int, in_channels: int, pretrained: bool = False,
               kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """``timm.create_model(name, pretrained, num_classes, in_chans, **kwargs)``."""
    try:
        import timm
    except ImportError:
        raise ConfigError("model=timm needs timm: pip install 'freezeout[timm]'") from None

    kwargs = dict(kwargs or {})
    if not timm.is_model(name):
        hint = m.group(0) if (m := re.match(r"[a-z]+", name.lower())) else ""
        raise ConfigError(f"model.name={name!r} is not a timm model; list them with: python -c "
                          f"\"import timm; print(timm.list_models('*{hint}*'))\"")
    _refuse_reserved(kwargs, {"num_classes": "the data", "in_chans": "the data", "pretrained": "model.pretrained"})
    try:
        net = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs)
    except Exception as e:
        raise ModelBuildError(f"timm model {name!r} could not be built with model.kwargs={kwargs}: {one_line(e)}") from None
    if not pretrained:
        return net
    try:  # built once without weights above, so that what fails here is the download alone
        with _quiet("huggingface_hub"), _quiet("timm"):
            return timm.create_model(name, pretrained=True, num_classes=num_classes, in_chans=in_channels, **kwargs)
    except Exception as e:
        raise ConfigError(f"model.pretrained=true: the weights of timm model {name!r} could not be loaded "
                          f"({one_line(e, 200)}); without network use model.pretrained=false, or fill the "
                          "Hugging Face cache (HF_HOME) on a machine with network first") from None


def torchvision_names() -> list[str]:
    """torchvision's classification models (not its detection, segmentation or video ones)."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def build_torchvision(name: str, num_classes: int, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """``torchvision.models.get_model(name, weights=None, num_classes, **kwargs)``: random init."""
    import torchvision

    kwargs = dict(kwargs or {})
    if name not in torchvision_names():
        raise ConfigError(f"model.name={name!r} is not a torchvision classification model; list them with: "
                          "python -c \"import torchvision; print(torchvision.models.list_models("
                          "module=torchvision.models))\"")
    _refuse_reserved(kwargs, {"num_classes": "the data", "weights": "None (random init)"})
    try:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except Exception as e:
        raise ModelBuildError(f"torchvision model {name!r} could not be built with model.kwargs={kwargs}: "
                              f"{one_line(e)}") from None


def _missing_in_module(target: str) -> str | None:
    """The message for a ``target`` whose module imports but lacks the name (a typo in the
    function's name, not in the module's); None otherwise."""
    import importlib

    module_name, _, attr = target.rpartition(".")
    try:
        module = importlib.import_module(module_name) if module_name else None
    except Exception:  # the module itself is the problem: the general message says so
        return None
    if module is None or hasattr(module, attr):
        return None
    names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                   and getattr(v, "__module__", None) == module.__name__)
    return (f"model._target_={target!r}: module {module_name!r} ({getattr(module, '__file__', '?')}) has no "
            f"{attr!r}; its functions and classes: {', '.join(names) or '(none)'}")


def build_custom(target: str, kwargs: Mapping[str, Any], num_classes: int, in_channels: int) -> nn.Module:
    """The user's model, the Hydra way: ``instantiate({_target_: target, **kwargs})``, with
    ``num_classes`` and ``in_channels`` passed where the builder's signature names them."""
    from hydra.utils import get_object, instantiate

    try:
        with _quiet("hydra.utils"):  # it would log the failure once more, over several lines
            builder = get_object(target)
    except Exception as e:
        raise ConfigError(_missing_in_module(target) or
                          f"model._target_={target!r} cannot be imported ({one_line(e.__cause__ or e, 200)}); give "
                          "package.module.Name of a class or function that returns an nn.Module, importable "
                          "from where you launch") from None
    for key in ("num_classes", "in_channels"):
        if key in kwargs:
            raise ConfigError(f"model.{key}={kwargs[key]} is set by the data; remove it")
    data = {k: v for k, v in (("num_classes", num_classes), ("in_channels", in_channels)) if _names(builder, k)}
    try:
        net = instantiate({"_target_": target, **kwargs}, **data)
    except Exception as e:
        raise ModelBuildError(f"model._target_={target} failed: {one_line(e.__cause__ or e)}") from None
    if not isinstance(net, nn.Module):
        raise ConfigError(f"model._target_={target} returned a {type(net).__name__}, not an nn.Module")
    return net


def _names(builder: Any, key: str) -> bool:
    """Whether ``builder``'s signature has a parameter called ``key`` (not just ``**kwargs``)."""
    try:
        param = inspect.signature(builder).parameters.get(key)
    except (TypeError, ValueError):
        return False
    return param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)


def _refuse_reserved(kwargs: Mapping[str, Any], reserved: Mapping[str, str]) -> None:
    for key, source in reserved.items():
        if key in kwargs:
            raise ConfigError(f"model.kwargs.{key} is not allowed: it comes from {source}")


@contextlib.contextmanager
def _quiet(logger_name: str):
    """Silence a library's logger (retry warnings, its own error report): the failure is
    reported once, as one line, by the caller."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)
