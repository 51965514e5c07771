"""A test model without BatchNorm: DenseNet-BC with every BatchNorm2d replaced by GroupNorm(1, C),
which normalises each image on its own, so a batch split over processes computes exactly what one
process computes on the whole batch (BatchNorm's batch statistics would differ). Registered as
``model.name=densenet_gn`` with DenseNet's hyperparameters; the distributed tests load it into
their torchrun processes through a ``sitecustomize`` (see :func:`sitecustomize_dir`)."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from freezeout.models.registry import build_model, list_models, register

NAME = "densenet_gn"


def _to_groupnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.GroupNorm(1, child.num_features))
        else:
            _to_groupnorm(child)


if NAME not in list_models():
    @register(NAME)
    def densenet_gn(num_classes: int, in_channels: int = 3, depth: int = 76, growth_rate: int = 12,
                    compression: float = 0.5) -> nn.Module:
        model = build_model("densenet", num_classes, in_channels, depth=depth, growth_rate=growth_rate,
                            compression=compression)
        _to_groupnorm(model)
        return model


def sitecustomize_dir(tmp: Path) -> Path:
    """A directory to put first on PYTHONPATH: its sitecustomize registers this model at start-up."""
    tmp.mkdir(parents=True, exist_ok=True)
    tests = Path(__file__).resolve().parent
    (tmp / "sitecustomize.py").write_text(f"import sys\nsys.path.insert(0, {str(tests)!r})\nimport groupnorm_model\n")
    return tmp
