"""Config composition (Hydra compose API) for every model x strategy x data, and the schema."""
from __future__ import annotations

import itertools

import pytest
from helpers import REPO
from helpers import compose_cfg as make_cfg
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from freezeout.config import register_configs
from freezeout.errors import ConfigError
from freezeout.training.checks import validate

register_configs()
MODELS, STRATEGIES, DATA = ("densenet", "wrn", "vgg"), ("linear", "squared", "cubic", "none"), (
    "cifar100", "cifar10", "fashion_mnist")




def test_defaults_follow_the_paper():
    cfg = make_cfg()
    assert (cfg.model.name, cfg.model.depth, cfg.model.growth_rate) == ("densenet", 76, 12)
    assert (cfg.data.name, cfg.data.val_size, cfg.data.augment) == ("cifar100", 5000, True)
    assert (cfg.strategy.name, cfg.t_0, cfg.scale_lr, cfg.const_time) == ("cubic", 0.8, True, False)
    assert (cfg.epochs, cfg.batch_size) == (100, 50)
    opt = cfg.optimizer
    assert (opt.name, opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == ("sgd", 0.1, 0.9, True, 1e-4)
    assert cfg.device == "auto"


@pytest.mark.parametrize("model,strategy,data", list(itertools.product(MODELS, STRATEGIES, DATA)))
def test_every_combination_composes_and_validates(model, strategy, data):
    cfg = make_cfg(f"model={model}", f"strategy={strategy}", f"data={data}", "device=cpu")
    assert (cfg.model.name, cfg.strategy.name, cfg.data.name) == (model, strategy, data)
    assert str(validate(cfg).device) == "cpu"  # ranges and architecture hold for every default


def test_experiment_preset_overrides_defaults_but_not_the_command_line():
    cfg = make_cfg("experiment=quickstart", "strategy=none", "epochs=2")
    assert cfg.data.name == "fashion_mnist" and cfg.model.depth == 16
    assert cfg.strategy.name == "none" and cfg.epochs == 2


@pytest.mark.parametrize("model", [["model=torchvision", "model.name=resnet18"],
                                   ["model=timm", "model.name=vit_tiny_patch16_224", "model.kwargs={img_size:28}"]])
def test_the_quickstart_takes_any_model_whole(model):
    # its DenseNet is a model config of its own (densenet_small), so no DenseNet key reaches another model
    cfg = make_cfg("experiment=quickstart", *model)
    assert cfg.model.kind == model[0].split("=")[1] and "depth" not in cfg.model
    assert (cfg.data.name, cfg.epochs, cfg.batch_size) == ("fashion_mnist", 3, 64)


@pytest.mark.parametrize("override", ["t_0=abc", "epochs=1.5", "scale_lr=maybe", "batch_size=big",
                                      "model.depth=deep", "data.subset=many", "not_a_key=1"])
def test_schema_rejects_wrong_types_and_unknown_keys(override):
    with pytest.raises((ConfigCompositionException, ValidationError)) as err:
        make_cfg(override)
    assert override.split("=")[0].split(".")[-1] in str(err.value) + str(err.value.__cause__)


@pytest.mark.parametrize("override,needle", [
    ("t_0=1.5", "t_0=1.5"), ("t_0=0", "t_0=0"), ("epochs=0", "epochs=0"), ("batch_size=0", "batch_size=0"),
    ("model.depth=75", "model.depth=75"), ("data.subset=0", "data.subset=0"),
    ("data.subset=1000000", "data.subset=1000000"), ("strategy.name=quartic", "quartic"),
    ("optimizer.lr=-1", "optimizer.lr=-1"), ("precision=fp8", "fp8"),
    ("optimizer.momentum=0", "optimizer.nesterov=true needs optimizer.momentum > 0"),
    ("optimizer.momentum=1.0", "optimizer.momentum=1.0"),
    ("optimizer.weight_decay=-0.1", "optimizer.weight_decay=-0.1"),
])
def test_validate_names_key_and_value(override, needle):
    cfg = make_cfg("device=cpu", override)
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        validate(cfg)


@pytest.mark.parametrize("name", ["strategies", "t0_grid", "const_time", "fmnist_cpu", "study"])
def test_named_sweeps_compose_and_include_the_baseline(name):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"sweeps={name}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params.strategy.split(",")[0] == "none" and len(params.strategy.split(",")) >= 2  # baselines first
    assert len(str(params.seed).split(",")) >= 2
    assert cfg.hydra.sweeper._target_.endswith("FreezeOutSweeper")


def test_the_study_covers_every_rule_on_two_architectures_and_its_cache_runs_pair_with_its_baselines():
    from freezeout.rundir.identity import FREEZEOUT_KEYS, flatten, under

    def compose_job(*overrides):
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)

    study = compose_job("sweeps=study").hydra.sweeper.params
    assert set(study.strategy.split(",")) == {"none", "linear", "squared", "cubic", "layer_freezing", "autofreeze"}
    assert study.scale_lr == "true,false" and len(study.t_0.split(",")) >= 2 and len(study.seed.split(",")) >= 3
    archs = study.experiment.split(",")
    models = {compose_job("sweeps=study", f"experiment={a}").model.get("kind", "builtin") for a in archs}
    assert models == {"builtin", "timm"}  # a DenseNet-BC and a library model
    cache = compose_job("sweeps=study_cache")
    assert cache.hydra.sweeper.params.cache_frozen == "true" and cache.hydra.sweeper.params.experiment == archs[0]
    # a cached run of the study's DenseNet and the study's own baseline differ in FreezeOut keys only
    from omegaconf import OmegaConf
    a = flatten(OmegaConf.to_container(compose_job("sweeps=study", f"experiment={archs[0]}", "strategy=none")))
    b = flatten(OmegaConf.to_container(compose_job("sweeps=study_cache", f"experiment={archs[0]}", "strategy=cubic",
                                                   "cache_frozen=true", "t_0=0.5")))
    assert sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and not k.startswith("hydra")) and all(
        under(k, FREEZEOUT_KEYS) for k in set(a) | set(b) if a.get(k) != b.get(k) and not k.startswith("hydra"))


def test_every_file_in_sweeps_is_tested():
    assert sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml")) == sorted(
        ["strategies", "t0_grid", "const_time", "fmnist_cpu", "study", "study_cache", "study_long",
         "study_long_frontier"])  # the last two: tests/launch/test_frontier.py
