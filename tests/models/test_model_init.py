"""``model.init=PATH``: a run starts from saved weights. A run from a finished run's checkpoint
begins at that run's validation error; a head for another number of classes is re-initialised;
a plain net's own state_dict fits the harness's wrapper; what does not fit ends in one line."""
from __future__ import annotations

import logging
import re

import pytest
import torch
from helpers import TINY, run_cli

from freezeout.config import compose_config
from freezeout.data import load_data
from freezeout.errors import ConfigError
from freezeout.models import build_model
from freezeout.models.factory import build_run_model
from freezeout.models.init import load_init
from freezeout.training.step import evaluate
from freezeout.training.trainer import train

CPU = torch.device("cpu")


def config(fmnist_root, *overrides):
    """TINY (its DenseNet unless ``overrides`` choose another model) for one epoch."""
    tiny = [o for o in TINY if not o.startswith("model")] if any(o.startswith("model=") for o in overrides) else TINY
    return compose_config(*tiny, "epochs=1", f"data.root={fmnist_root}", *overrides)


@pytest.fixture(scope="module")
def finished(one_thread, fmnist_root, tmp_path_factory):
    """A tiny DenseNet trained one epoch: (its run directory, its summary)."""
    run_dir = tmp_path_factory.mktemp("finished")
    return run_dir, train(config(fmnist_root), run_dir)


def test_a_run_from_a_finished_runs_weights_begins_at_its_validation_error(finished, fmnist_root, tmp_path, caplog):
    run_dir, summary = finished
    cfg = config(fmnist_root, f"model.init={run_dir / 'checkpoint.pt'}")
    data = load_data(cfg.data, CPU)
    with caplog.at_level(logging.INFO, logger="freezeout"):
        model = build_run_model(cfg, CPU)
    counts = re.search(r"model.init: (\d+) of the model's (\d+) tensors loaded from", caplog.text)
    assert counts and counts[1] == counts[2] and "ignored" not in caplog.text  # every tensor, nothing left over
    assert evaluate(model, data.val_x, data.val_y)[1] == summary.final_val_err  # where that run ended
    fresh = build_run_model(config(fmnist_root), CPU)
    assert evaluate(fresh, data.val_x, data.val_y)[1] != summary.final_val_err
    again = train(cfg, tmp_path / "again")  # and a whole run from there
    assert again.status == "completed" and again.model["init"] == str(run_dir / "checkpoint.pt")


def test_a_head_for_another_number_of_classes_is_reinitialised(fmnist_root, tmp_path, caplog):
    torch.manual_seed(5)
    other = build_model("densenet", 7, 1, depth=10, growth_rate=4)  # 7 classes, the data has 10
    torch.save(other.state_dict(), tmp_path / "seven.pt")
    with caplog.at_level(logging.INFO, logger="freezeout"):
        model = build_run_model(config(fmnist_root, f"model.init={tmp_path / 'seven.pt'}"), CPU)
    fresh = build_run_model(config(fmnist_root), CPU).state_dict()  # the same seed, no init
    loaded, saved = model.state_dict(), other.state_dict()
    head = {k for k in loaded if loaded[k].shape != saved[k].shape}
    assert head and all(k.startswith(f"groups.{len(model.groups) - 1}.") for k in head)
    assert all(torch.equal(loaded[k], fresh[k]) for k in head)  # its own fresh weights
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded if k not in head)  # the rest from the file
    line = next(r.getMessage() for r in caplog.records if "re-initialised" in r.getMessage())
    assert "(7 in the file, 10 here)" in line  # the classifier's bias, for one


def test_a_plain_nets_state_dict_fits_the_wrapped_custom_model(fmnist_root, tmp_path):
    from examples.custom_model import SmallCNN

    torch.manual_seed(3)
    net = SmallCNN(num_classes=10, in_channels=1, width=8)
    saved = {f"module.{k}": v for k, v in net.state_dict().items()}  # as a DDP run saves it
    torch.save({"state_dict": saved, "epoch": 3}, tmp_path / "lightning.ckpt")
    cfg = config(fmnist_root, "model=custom", "model._target_=examples.custom_model.SmallCNN", "+model.width=8",
                 f"model.init={tmp_path / 'lightning.ckpt'}")
    model = build_run_model(cfg, CPU)
    assert all(torch.equal(a, b) for a, b in zip(model.net.state_dict().values(), net.state_dict().values()))


def test_missing_and_unexpected_keys_end_in_one_line_unless_not_strict(tmp_path, caplog):
    torch.manual_seed(0)
    model = build_model("densenet", 10, 1, depth=10, growth_rate=4)
    sd = model.state_dict()
    dropped = next(iter(sd))
    extra = {k: v for k, v in sd.items() if k != dropped} | {"extra.weight": torch.ones(2)}
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(ConfigError) as e:
        load_init(model, str(tmp_path / "extra.pt"))
    assert "\n" not in str(e.value) and dropped in str(e.value) and "extra.weight" in str(e.value)
    assert "1 missing keys" in str(e.value) and "model.init_strict=false" in str(e.value)
    with caplog.at_level(logging.INFO, logger="freezeout"):
        load_init(model, str(tmp_path / "extra.pt"), strict=False)
    assert "1 missing and 1 unexpected keys ignored (model.init_strict=false)" in caplog.text
    torch.save({"epoch": 1}, tmp_path / "none.pt")
    for path, needle in ((tmp_path / "none.pt", "holds no state_dict"), (tmp_path / "absent.pt", "no such file")):
        with pytest.raises(ConfigError, match=needle):
            load_init(model, str(path))


def test_another_models_weights_end_the_run_in_one_line(fmnist_root, tmp_path):
    wider = build_model("densenet", 10, 1, depth=10, growth_rate=8)  # the run's has growth rate 4
    torch.save(wider.state_dict(), tmp_path / "wider.pt")
    proc = run_cli(*TINY, "epochs=1", f"data.root={fmnist_root}", f"model.init={tmp_path / 'wider.pt'}",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: model.init={tmp_path / 'wider.pt'}: " in last and "tensors have another shape" in last
    assert "in the file" in last and not (tmp_path / "run" / "metrics.jsonl").exists()
