"""The loggers, read back with the trackers' own readers (TensorBoard's EventAccumulator, MLflow's
client on the file store, the csv module): a real tiny run, a run killed and resumed, and the
logger group's composition."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch
from helpers import REPO, TINY
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from freezeout.config import register_configs
from freezeout.errors import ConfigError
from freezeout.rundir.identity import flatten
from freezeout.rundir.records import read_metrics
from freezeout.training.checks import validate
from freezeout.training.trackers import LOGGERS, MLFLOW_RUN_FILE, Loggers, is_main_process
from freezeout.training.trainer import train

register_configs()
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # the readers below open the file store too
ALL = "logger=[tensorboard,mlflow,csv]"
EPOCH_KEYS = ("train_loss", "val_loss", "val_err", "frozen_groups", "lr", "train_seconds")


def compose_cfg(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def tiny(fmnist_root, *overrides: str):
    return compose_cfg(*TINY, f"data.root={fmnist_root}", "strategy=cubic", "t_0=0.5", "log_every=4", *overrides)


@pytest.fixture(scope="module")
def logged(tmp_path_factory, fmnist_root, one_thread):
    run_dir = tmp_path_factory.mktemp("logged")
    return run_dir, train(tiny(fmnist_root, ALL), run_dir)


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def mlflow_client(store: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store.resolve().as_uri())


def history(client, run_id: str, name: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))


def test_logger_group_selects_any_number_of_loggers_with_the_codes_defaults():
    assert OmegaConf.to_container(compose_cfg().logger) == {}
    assert OmegaConf.to_container(compose_cfg("logger=tensorboard").logger) == {"tensorboard": LOGGERS["tensorboard"]}
    assert OmegaConf.to_container(compose_cfg(ALL).logger) == LOGGERS  # conf/logger/*.yaml == loggers.LOGGERS
    cfg = compose_cfg("logger=[mlflow]", "logger.mlflow.tracking_uri=http://host:5000", "seed=1", hydra=True)
    assert cfg.logger.mlflow.tracking_uri == "http://host:5000"
    assert cfg.hydra.job.override_dirname == "seed=1"  # trackers never name a run directory


def test_unknown_logger_settings_are_config_errors(fmnist_root):
    with pytest.raises(ConfigError, match="logger=wandb is unknown; allowed: tensorboard, mlflow, csv"):
        validate(tiny(fmnist_root, "+logger.wandb.project=x"))
    with pytest.raises(ConfigError, match="logger.csv has no setting path"):
        validate(tiny(fmnist_root, "logger=csv", "+logger.csv.path=x"))


def test_a_tracker_that_cannot_start_stops_the_run_before_training(tmp_path, fmnist_root):
    cfg = tiny(fmnist_root, "logger=[tensorboard,mlflow]", "logger.mlflow.tracking_uri=nosuchscheme://x")
    with pytest.raises(ConfigError, match="^logger=mlflow could not start: ") as e:
        train(cfg, tmp_path)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "summary.json").exists()  # no run is left saying it is running


def test_tensorboard_scalars_are_the_metrics_at_their_iterations(logged):
    run_dir, summary = logged
    records, tb = read_metrics(run_dir / "metrics.jsonl"), scalars(run_dir / "tb")
    for key in EPOCH_KEYS:
        assert tb[f"epoch/{key}"] == [(r["iteration"], pytest.approx(r[key], rel=1e-6)) for r in records]
    assert [s for s, _ in tb["train/loss"]] == list(range(4, 49, 4))  # every log_every iterations
    at = {tag: dict(tb[tag]) for tag in ("train/lr", "train/frozen_groups")}
    for r in records:  # the host sync at an epoch's end sees the controller the record sees
        assert at["train/lr"][r["iteration"]] == pytest.approx(r["lr"], rel=1e-6)
        assert at["train/frozen_groups"][r["iteration"]] == r["frozen_groups"]
    assert all(v > 0 for _, v in tb["train/images_per_second"])
    assert tb["predicted_speedup/flops"][0] == (0, pytest.approx(summary.predicted_speedup["flops"], rel=1e-6))
    assert tb["summary/final_val_err"] == [(48, pytest.approx(summary.final_val_err, rel=1e-6))]


def test_mlflow_run_holds_the_config_the_epochs_and_the_results(logged):
    run_dir, summary = logged
    client = mlflow_client(run_dir / "mlruns")  # a single run's store: in its run directory
    runs = client.search_runs([client.get_experiment_by_name("freezeout").experiment_id])
    assert [r.info.run_id for r in runs] == [json.loads((run_dir / MLFLOW_RUN_FILE).read_text())["run_id"]]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert run.data.params == {k: str(v) for k, v in flatten(summary.config).items()}
    assert run.data.params["t_0"] == "0.5" and run.data.params["model.depth"] == "10"
    records = read_metrics(run_dir / "metrics.jsonl")
    for key in EPOCH_KEYS:
        assert history(client, run.info.run_id, f"epoch/{key}") == [(r["iteration"], r[key]) for r in records]
    assert run.data.metrics["summary/final_val_err"] == summary.final_val_err
    assert run.data.metrics["summary/iterations_done"] == 48


def test_csv_rows_are_the_metrics(logged):
    run_dir, summary = logged
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [(int(r["step"]), float(r["value"])) for r in rows if r["name"] == "epoch/val_err"] == \
        [(r["iteration"], r["val_err"]) for r in records]
    with open(run_dir / "csv" / "params.csv", newline="") as f:
        params = dict(list(csv.reader(f))[1:])
    assert params["strategy.name"] == "cubic" and params["epochs"] == "3"


def test_loggers_change_nothing_a_run_computes(logged, tmp_path, fmnist_root, one_thread):
    run_dir, summary = logged
    plain = train(tiny(fmnist_root), tmp_path)
    timing = {"train_seconds", "epoch_seconds", "eval_seconds", "peak_memory_mb", "data_wait_seconds"}
    same = [[{k: v for k, v in r.items() if k not in timing} for r in read_metrics(d / "metrics.jsonl")]
            for d in (run_dir, tmp_path)]
    assert same[0] == same[1] and plain.freeze_iterations == summary.freeze_iterations
    # and the logger is not part of the run: the logged run's directory takes the same run without it
    assert train(tiny(fmnist_root), run_dir).status == "completed"


class Kill(Exception):
    """Stands for a kill in the middle of an epoch."""


def test_a_resumed_run_continues_its_logs(tmp_path, fmnist_root, one_thread):
    cfg, calls = tiny(fmnist_root, ALL), {"n": 0}

    def kill_in_epoch_2(module, args, out):
        if isinstance(module, torch.nn.Linear) and module.training:
            calls["n"] += 1
            if calls["n"] == 16 + 6:  # the 6th step of epoch 2, after iteration 20 was logged
                raise Kill()

    handle = torch.nn.modules.module.register_module_forward_hook(kill_in_epoch_2)
    try:
        with pytest.raises(Kill):
            train(cfg, tmp_path)
    finally:
        handle.remove()
    run_id = json.loads((tmp_path / MLFLOW_RUN_FILE).read_text())["run_id"]
    client = mlflow_client(tmp_path / "mlruns")
    assert client.get_run(run_id).info.status == "FAILED"
    assert [s for s, _ in scalars(tmp_path / "tb")["train/loss"]] == [4, 8, 12, 16, 20]

    assert train(cfg, tmp_path).status == "completed"
    records = read_metrics(tmp_path / "metrics.jsonl")
    runs = client.search_runs([client.get_experiment_by_name("freezeout").experiment_id])
    assert [r.info.run_id for r in runs] == [run_id] and runs[0].info.status == "FINISHED"  # the same run
    assert history(client, run_id, "epoch/val_err") == [(r["iteration"], r["val_err"]) for r in records]
    tb = scalars(tmp_path / "tb")  # what the killed attempt logged after its checkpoint is purged
    assert [s for s, _ in tb["train/loss"]] == list(range(4, 49, 4))
    assert tb["epoch/val_err"] == [(r["iteration"], pytest.approx(r["val_err"], rel=1e-6)) for r in records]
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["name"] == "train/loss"]
    assert steps == list(range(4, 49, 4))


def test_a_failing_logger_is_dropped_and_the_others_go_on(caplog):
    class Broken:
        def scalars(self, step, values):
            raise OSError("disk full")

    class Kept:
        seen = []

        def scalars(self, step, values):
            self.seen.append((step, values))

    loggers = Loggers([Broken(), Kept()], batch_size=32, start=0)
    loggers.log_step(4, 2.0, 0.1, 0)
    loggers.log_step(8, 1.5, 0.1, 1)
    assert len(loggers.backends) == 1 and [s for s, _ in Kept.seen] == [4, 8]
    assert Kept.seen[1][1]["train/frozen_groups"] == 1.0 and Kept.seen[1][1]["train/images_per_second"] > 0
    assert "Broken logger failed (OSError: disk full): dropped" in caplog.text


def _open_csv_logger_on_each_rank(root: str) -> None:
    """In each of two processes: open the run's trackers (csv) in a folder of its own."""
    from freezeout.distributed import process_group as distributed
    from freezeout.rundir.records import RunSummary
    from freezeout.training.trackers import open_loggers

    run_dir = Path(root) / f"rank{distributed.rank()}"
    run_dir.mkdir()
    cfg = OmegaConf.create({"logger": {"csv": {"log_dir": "csv"}}})
    loggers = open_loggers(cfg, run_dir, 0, RunSummary(status="running", batch_size=8, config={"seed": 0}))
    loggers.log_step(1, 0.5, 0.1, 0)
    loggers.close()


def test_only_the_main_process_logs(tmp_path):
    """Two real processes (gloo): rank 0 opens its trackers and writes, rank 1 writes nothing."""
    from freezeout.distributed.process_group import spawned

    assert is_main_process() and not torch.distributed.is_initialized()
    assert spawned(2, _open_csv_logger_on_each_rank, str(tmp_path))
    assert [p.name for p in (tmp_path / "rank0").iterdir()] == ["csv"]
    assert list((tmp_path / "rank0" / "csv").iterdir())  # it wrote its rows
    assert list((tmp_path / "rank1").iterdir()) == []
