"""What depends on the rank, in one launch of two real gloo processes: each process its own
torch stream from ``(seed, rank)``; a group that freezes takes rank 0's BatchNorm statistics at
once (not at the epoch's end); a stop asked of one process stops both; gathers, checkpoints and
errors in rank order; and a real run stopped just after a mid-epoch freeze resumes to the
uninterrupted run's weights. The processes write what they saw; the tests read it."""
from __future__ import annotations

import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import TINY, compose_cfg
from torch import nn

from freezeout.config import register_configs
from freezeout.distributed import process_group as distributed
from freezeout.distributed import ranks as runranks

register_configs()
SEED = 5
#: Cubic t_0=0.5 over 2 epochs of 16 steps: group 0 freezes at iteration 4, mid-epoch 1.
RUN = [*TINY, "epochs=2", "strategy=cubic", "t_0=0.5", "log_every=2", f"seed={SEED}"]
STOP_AT = 6  # rank 0 asks to stop at this log point; both stop at the next one (8), after the freeze




def bn_net() -> nn.Module:
    """Three conv-BN groups and a head, grouped automatically."""
    from freezeout.models.adapters import group_model

    torch.manual_seed(0)
    layers = [m for c in (1, 4, 4) for m in (nn.Conv2d(c, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())]
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    return group_model(net, (1, 1, 6, 6))


def buffers_of(groups) -> list[list[torch.Tensor]]:
    return [[b.clone() for m in g.modules() for b in m.buffers(recurse=False)] for g in groups]


def _collectives(r: int) -> dict:
    """Every rank-dependent helper, called as a run calls it."""
    from freezeout.distributed.gradsync import GradSync
    from freezeout.freezing.controller import freeze_module

    seen: dict = {}
    runranks.seed_rank(SEED)
    seen["draws"] = torch.rand(4)
    stop = distributed.shared_stop(lambda: r == 1)  # only rank 1 was asked
    before = stop()
    distributed.agree_stop(stop)
    quiet = distributed.shared_stop(lambda: False)
    distributed.agree_stop(quiet)
    seen["stop"] = (before, stop(), quiet())
    seen["gather"] = distributed.gather(10 * r + 1)
    seen["on_main"] = distributed.on_main(lambda: f"from rank {distributed.rank()}")
    t = torch.tensor([float(r)])
    seen["average"] = (distributed.average(t).item(), t.item())
    errors = []
    for guard in (distributed.main_first, lambda: distributed.on_main_only(_fail_on_rank_0)):
        try:
            with guard():
                if r == 0 and guard is distributed.main_first:
                    raise ValueError("rank 0 failed")
        except ValueError as e:
            errors.append(str(e))
    seen["errors"] = errors
    try:
        distributed.agree(r, "rank")
        seen["agree"] = None
    except RuntimeError as e:
        seen["agree"] = str(e)
    ranks = runranks.checkpoint_ranks({"rng": f"rng of {r}", "loss_sum": r})
    checkpoint = distributed.broadcast({"rng": "top", "partial_epoch": None, **ranks})
    seen["own"] = runranks.own_states(checkpoint)
    seen["world"] = checkpoint["world_size"]

    # Freezing after steps that moved the trainable groups' BatchNorm statistics on each
    # process's own shard (DDP's build synchronised them; training moved them apart again).
    model = bn_net()
    groups = model.layer_groups()
    sync = GradSync(model)
    sync.wrap(0)
    for k in (2, 3):
        for g in groups[sync.frozen:]:
            for m in g.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.fill_(r + 1.0)
                    m.num_batches_tracked.fill_(10 * (r + 1))
        for g in groups[sync.frozen:k]:
            freeze_module(g)
        sync.wrap(k)
        seen[f"buffers after freezing {k}"] = buffers_of(groups)
    last = bn_net()
    for m in last.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.fill_(r + 2.0)
    runranks.end_epoch(last, 1)
    seen["end_epoch"] = [b.clone() for b in last.buffers()]
    return seen


class _Failing:
    def __enter__(self):
        raise ValueError("rank 0 could not enter")

    def __exit__(self, *exc):
        return False


def _fail_on_rank_0():
    import contextlib

    return _Failing() if distributed.is_main() else contextlib.nullcontext()


def _runs(fmnist_root: str, out: Path) -> None:
    """The straight run and the run stopped at STOP_AT, then resumed; every process takes part."""
    from freezeout.training.signals import Interrupted
    from freezeout.training.trainer import train

    cfg = compose_cfg(*RUN, f"data.root={fmnist_root}")
    train(cfg, out / "straight")

    def pause(j: int) -> None:
        if j == STOP_AT and distributed.is_main():
            signal.raise_signal(signal.SIGTERM)  # the scheduler's signal, to rank 0 alone

    try:
        train(cfg, out / "stopped", pause=pause)
        stopped_at = None
    except Interrupted as e:
        stopped_at = e.iteration
    torch.save(stopped_at, out / f"stopped-rank{distributed.rank()}.pt")
    train(cfg, out / "stopped")


def worker(out: str, fmnist_root: str) -> None:
    out, r = Path(out), distributed.rank()
    torch.save(_collectives(r), out / f"rank{r}.pt")
    _runs(fmnist_root, out)


@pytest.fixture(scope="module")
def launch(tmp_path_factory, fmnist_root, one_thread):
    out = tmp_path_factory.mktemp("two")
    assert distributed.spawned(2, worker, str(out), str(fmnist_root))
    seen = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    return SimpleNamespace(out=out, seen=seen)


def expected_draws(rank: int) -> torch.Tensor:
    seed = int(np.random.SeedSequence([SEED, rank]).generate_state(1)[0])
    return torch.rand(4, generator=torch.Generator().manual_seed(seed))


def test_each_process_draws_its_own_stream_from_seed_and_rank(launch):
    a, b = (s["draws"] for s in launch.seen)
    assert torch.equal(a, expected_draws(0)) and torch.equal(b, expected_draws(1)) and not torch.equal(a, b)
    # The real run: every process's torch stream is its own, its data stream the same.
    ranks = torch.load(launch.out / "straight" / "checkpoint.pt", weights_only=False)["ranks"]
    assert not torch.equal(ranks[0]["rng"]["torch"], ranks[1]["rng"]["torch"])
    assert torch.equal(ranks[0]["rng"]["data"], ranks[1]["rng"]["data"])


def test_a_stop_asked_of_one_process_stops_both(launch):
    assert [s["stop"] for s in launch.seen] == [(False, True, False)] * 2  # decided together, at the agree
    assert [torch.load(launch.out / f"stopped-rank{r}.pt") for r in (0, 1)] == [STOP_AT + 2] * 2


def test_gathers_checkpoints_and_errors_go_by_rank(launch):
    zero, one = launch.seen
    assert zero["gather"] == [1, 11] and one["gather"] is None
    assert zero["on_main"] == one["on_main"] == "from rank 0"
    assert zero["average"] == (0.5, 0.0) and one["average"] == (0.5, 1.0)  # the input left alone
    assert zero["errors"] == one["errors"] == ["rank 0 failed", "rank 0 could not enter"]
    assert zero["agree"] == one["agree"] == "the 2 processes disagree on the rank: [0, 1] (by rank)"
    assert zero["own"] == {"rng": "rng of 0", "loss_sum": 0} and one["own"] == {"rng": "rng of 1", "loss_sum": 1}
    assert zero["world"] == one["world"] == 2


def test_a_group_that_freezes_takes_rank_0s_statistics_at_once(launch):
    zero, one = launch.seen
    for k in (2, 3):
        a, b = zero[f"buffers after freezing {k}"], one[f"buffers after freezing {k}"]
        for i in range(k):  # frozen: rank 0's everywhere, from the freezing step on
            assert all(torch.equal(x, y) for x, y in zip(a[i], b[i], strict=True)), (k, i)
            assert a[i][0].eq(1.0).all() and a[i][2].item() == 10
    # At the epoch's end every buffer is rank 0's.
    assert all(torch.equal(x, y) for x, y in zip(zero["end_epoch"], one["end_epoch"], strict=True))
    assert any(b.eq(2.0).all() for b in one["end_epoch"])


def test_a_run_stopped_after_a_mid_epoch_freeze_resumes_to_the_uninterrupted_weights(launch):
    from freezeout.rundir.records import RunSummary, read_metrics

    a, b = (torch.load(launch.out / d / "checkpoint.pt", weights_only=False) for d in ("straight", "stopped"))
    summary = RunSummary.read(launch.out / "stopped" / "summary.json")
    assert summary.status == "completed" and summary.freeze_iterations[0] == 4 < STOP_AT
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    records = [[{k: v for k, v in r.items() if not k.endswith(("_seconds", "_mb"))}  # wall clock, memory
                for r in read_metrics(launch.out / d / "metrics.jsonl")] for d in ("straight", "stopped")]
    assert records[0] == records[1]  # the stopped epoch's loss and bytes per step: every step of it counted
    assert records[0][0]["allreduce_bytes_per_step"] > records[0][1]["allreduce_bytes_per_step"]


def test_one_process_keeps_its_batchnorm_even_with_sync_bn():
    model = bn_net()
    assert runranks.prepare_model(model, sync_bn=True) is model
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())


@pytest.mark.parametrize("batch_size, near", [(49, 48), (50, 52), (51, 52), (2, 4), (1, 4)])
def test_a_batch_size_four_processes_cannot_share_suggests_the_nearest_multiple(monkeypatch, batch_size, near):
    from freezeout.errors import ConfigError

    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    cfg = SimpleNamespace(batch_size=batch_size, sync_bn=False, device="cpu")
    with pytest.raises(ConfigError, match=rf"use a multiple of 4, e\.g\. batch_size={near}$"):
        runranks.check_config(cfg, torch.device("cpu"))
    assert runranks.check_config(SimpleNamespace(batch_size=near, sync_bn=False, device="cpu"),
                                 torch.device("cpu")) == torch.device("cpu")
