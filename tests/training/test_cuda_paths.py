"""The CUDA paths. What a CPU can show runs everywhere: the time model's model copies are freed at
once (not at the garbage collector's leisure: on a GPU they hold device memory), and so is a
rebuilt DDP wrapper, the optimizer is fused only where every parameter is on CUDA, a channels-last run gets its
batches NHWC from the data (no copy a step). The rest is marked ``cuda`` (``pytest -m cuda``, run by
``make gpu-check``) and skips with the reason on a machine without a GPU: fp16 and bf16 runs,
float32 that is IEEE or TF32 as asked (readable through both of torch's APIs), fp16 without a
host sync a step, compile with inductor,
channels-last, the cache on the device and in pinned host memory (no sync a step), a one-process
NCCL run, the time model's stages taking turns on the device (every copy freed). The CUDA tests
train on torchvision's FakeData (:data:`helpers.TINY_CUDA`): no data set to provide. More CUDA
paths (issue 33's) are in ``test_cuda_readiness.py``; docs/gpu-readiness.md lists them all."""
from __future__ import annotations

import gc
import math
import weakref

import pytest
import torch
from helpers import TINY, TINY_CUDA, compose_cfg, needs_cuda

from freezeout.config import register_configs
from freezeout.freezing.optim import optimizer_factory
from freezeout.models import build_model
from freezeout.speedup.timemodel import held_controller
from freezeout.training.stagetiming import measure_stage_seconds
from freezeout.training.step import TrainStep, run_iterations
from freezeout.training.trainer import train

register_configs()
SGD = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}




def tiny(device: str = "cpu"):
    torch.manual_seed(0)
    return build_model("densenet", 10, 1, depth=10, growth_rate=4).to(device)


def warm_cublas() -> None:
    """One matmul on the GPU: cuBLAS makes its workspace (megabytes of the caching allocator's)
    at the first one of the process, so that a test measuring memory must not be the first."""
    a = torch.ones(64, 64, device="cuda")
    (a @ a).sum().item()


def batches(device: str = "cpu", n: int = 32):
    x, y = torch.randn(n, 1, 28, 28, device=device), torch.randint(0, 10, (n,), device=device)
    while True:
        yield x, y


# --- everywhere -----------------------------------------------------------------------------------

@pytest.mark.parametrize("layout, copies_made", [("passes", 2), ("turns", 3)])  # a copy a pass; a copy a stage
def test_the_time_models_model_copies_are_freed_when_it_returns(one_thread, layout, copies_made):
    copies = []

    def make_step(model, optimizer):
        copies.append(weakref.ref(model))
        return TrainStep(model, optimizer)

    gc.disable()  # freed by reference counting and the measurement's own collection, not by chance
    try:
        timings = measure_stage_seconds(tiny(), lambda groups: held_controller(groups, optimizer_factory(SGD)),
                                        lambda step: batches(), [0, 3, 6], make_step, steps=1, chunks=2, warmup=1,
                                        layout=layout)
        assert timings.layout == layout and len(copies) == copies_made and all(ref() is None for ref in copies)
    finally:
        gc.enable()


def test_a_rebuilt_ddp_wrapper_is_freed_at_once(tmp_path, one_thread):
    import torch.distributed as dist

    from freezeout.distributed.gradsync import GradSync

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    gc.disable()
    try:
        model = tiny()
        controller = held_controller(model.layer_groups(), optimizer_factory(SGD), 0)
        step = TrainStep(model, controller.optimizer)
        step.sync = GradSync(model)
        run_iterations(step, controller, batches(), 0, 1, log_every=1)
        old = weakref.ref(step.sync.ddp)
        controller.freeze_prefix(3)
        run_iterations(step, controller, batches(), 0, 1, log_every=1)  # a freezing event rebuilds it
        assert step.sync.frozen == 3 and old() is None
    finally:
        gc.enable()
        dist.destroy_process_group()


def test_the_optimizer_is_fused_only_with_every_parameter_on_cuda():
    opt = optimizer_factory(SGD)([{"params": list(tiny().parameters())}])
    assert not opt.defaults.get("fused")
    params = (p for p in tiny().parameters())  # a generator is read once, as torch.optim does
    assert len(optimizer_factory(SGD)(params).param_groups[0]["params"]) == len(list(tiny().parameters()))


def test_a_channels_last_run_gets_nhwc_batches_from_its_data(fmnist_root, tmp_path, one_thread):
    from freezeout.data import load_data
    from freezeout.data.batches import batch_stream

    cfg = compose_cfg(*TINY, f"data.root={fmnist_root}", "channels_last=true")
    data = load_data(cfg.data, torch.device("cpu"), channels_last=True)
    model = tiny().to(memory_format=torch.channels_last)
    controller = held_controller(model.layer_groups(), optimizer_factory(SGD), 0)
    step = TrainStep(model, controller.optimizer, channels_last=True)
    stream = batch_stream(data.train_x, data.train_y, 32, 0, False)
    run_iterations(step, controller, stream, 0, 3, log_every=3)
    assert step.format_copies == 0 and next(stream)[0].is_contiguous(memory_format=torch.channels_last)


# --- on a GPU -------------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["fp16", "bf16", "tf32"])
@pytest.mark.cuda
@needs_cuda
def test_a_tiny_run_in_each_precision(tmp_path, precision):
    cfg = compose_cfg(*TINY_CUDA, "strategy=cubic", f"precision={precision}", "channels_last=true", "epochs=2")
    summary = train(cfg, tmp_path / precision)
    assert summary.status == "completed" and math.isfinite(summary.final_val_loss) and summary.precision == precision


@pytest.mark.cuda
@needs_cuda
def test_the_time_models_stages_take_turns_on_the_gpu_and_free_every_copy():
    model = tiny("cuda")
    warm_cublas()  # its workspace, made at the first matmul of the process, is not a copy's
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    timings = measure_stage_seconds(model, lambda groups: held_controller(groups, optimizer_factory(SGD)),
                                    lambda step: batches("cuda"), [0, 3, 6],
                                    lambda m, o: TrainStep(m, o, "fp32", torch.device("cuda")), steps=2, chunks=3,
                                    warmup=1)  # auto: a tiny model's copies fit
    torch.cuda.synchronize()
    assert timings.layout == "turns" and all(len(v) == 3 and min(v) > 0 for v in timings.samples.values())
    assert torch.cuda.memory_allocated() <= before + 4 * 2**20  # the copies gone (the batches' cached inputs aside)


@pytest.mark.cuda
@needs_cuda
def test_fp32_is_ieee_and_tf32_is_asked_for():
    model = tiny("cuda")
    for precision, mode in (("fp32", "ieee"), ("tf32", "tf32"), ("fp32", "ieee")):
        controller = held_controller(model.layer_groups(), optimizer_factory(SGD), 0)
        step = TrainStep(model, controller.optimizer, precision, torch.device("cuda"))
        step(*next(batches("cuda")))
        assert torch.backends.cuda.matmul.fp32_precision == mode
        assert torch.backends.cuda.matmul.allow_tf32 == torch.backends.cudnn.allow_tf32 == (mode == "tf32")


@pytest.mark.cuda
@needs_cuda
def test_fp16_steps_do_not_sync_the_host():
    """With the fused optimizer the gradient scaler's inf check stays on the device."""
    model = tiny("cuda")
    controller = held_controller(model.layer_groups(), optimizer_factory(SGD), 2)
    assert controller.optimizer.defaults["fused"]
    step = TrainStep(model, controller.optimizer, "fp16", torch.device("cuda"))
    stream = batches("cuda")
    step(*next(stream))  # the first step sets things up
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            step(*next(stream))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


@pytest.mark.cuda
@needs_cuda
def test_compile_with_inductor_two_forms_a_group(tmp_path):
    cfg = compose_cfg(*TINY_CUDA, "strategy=cubic", "t_0=0.5", "epochs=2", "compile=true")
    summary = train(cfg, tmp_path / "compiled")
    assert summary.status == "completed" and summary.compile["backend"] == "inductor"
    assert summary.compile["max_per_group"] <= 2 and summary.compile["recompile_limit_hits"] == 0


@pytest.mark.parametrize("host", [False, True])
@pytest.mark.cuda
@needs_cuda
def test_the_cache_on_the_device_and_in_pinned_host_memory(tmp_path, host):
    cfg = compose_cfg(*TINY_CUDA, "strategy=cubic", "t_0=0.5", "cache_frozen=true", f"cache_host={str(host).lower()}",
                      "precision=bf16")
    summary = train(cfg, tmp_path / f"host{host}")
    assert summary.status == "completed" and summary.cache["stage"] == summary.num_groups - 1
    assert summary.cache["on_host"] == host


@pytest.mark.cuda
@needs_cuda
def test_a_pinned_host_store_gives_batches_without_a_host_sync():
    from freezeout.data.batches import train_batches
    from freezeout.training.cache import FrozenPrefixCache

    model = tiny("cuda").eval()
    images = torch.randn(256, 1, 28, 28, device="cuda")
    cache = FrozenPrefixCache(model, images, 1e9, on_host=True)
    assert cache.advance(3) == 3 and cache.features.is_pinned()
    generator = torch.Generator(device="cuda").manual_seed(0)
    stream = train_batches(cache, torch.zeros(256, dtype=torch.long, device="cuda"), 32, generator, False)
    first, _ = next(stream)  # the epoch's order is copied to the host once, here
    torch.cuda.set_sync_debug_mode("error")
    try:
        rest = [x for x, _ in stream]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(rest) == 7 and all(x.device.type == "cuda" for x in rest)
    perm = torch.randperm(256, device="cuda", generator=torch.Generator(device="cuda").manual_seed(0)).cpu()
    assert torch.equal(first.cpu(), cache.features[perm[:32]])
    assert torch.equal(rest[-1].cpu(), cache.features[perm[224:]])


@pytest.mark.cuda
@needs_cuda
def test_a_one_process_nccl_run_all_reduces_the_trainable_groups(tmp_path):
    import torch.distributed as dist

    from freezeout.distributed.gradsync import GradSync

    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = tiny("cuda")
        controller = held_controller(model.layer_groups(), optimizer_factory(SGD), 3)
        step = TrainStep(model, controller.optimizer, "bf16", torch.device("cuda"))
        step.sync = GradSync(model)
        run_iterations(step, controller, batches("cuda"), 0, 2, log_every=1)
        expected = sum(p.numel() * 4 for g in model.layer_groups()[3:] for p in g.parameters())
        assert step.sync.bytes_per_step == {3: expected}
        old = weakref.ref(step.sync.ddp)
        gc.disable()
        try:
            controller.freeze_prefix(5)
            run_iterations(step, controller, batches("cuda"), 0, 1, log_every=1)
            assert old() is None  # the rebuilt wrapper's predecessor and its buckets are gone at once
        finally:
            gc.enable()
    finally:
        dist.destroy_process_group()
