"""The CUDA paths issue 33 read line by line (docs/gpu-readiness.md lists every CUDA-only path and
its test). What the CPU can show runs everywhere: compiled forms belong to a run, not to the
process; on a GPU the time model's samples are several steps. The rest is marked ``cuda`` and
skips without a GPU, saying why: fp16 with fused SGD across a skipped step, compile under TF32,
streamed data with the cache's plan, the pinned gather on another GPU than the current one, the
stop flag on an NCCL group, a GPU checkpoint refused on the CPU, a resumed epoch's order on the
host, the pinned store's real footprint, two compiled runs in one process, the time model's
samples, and memory measured after cuBLAS's workspace exists."""
from __future__ import annotations

import signal

import pytest
import torch
from helpers import TINY_CUDA, compose_cfg, needs_cuda, run_cli
from torch import nn

from freezeout.config import register_configs
from freezeout.freezing.optim import optimizer_factory
from freezeout.models import build_model
from freezeout.training.compiling import CompileLog, _compiled
from freezeout.training.stagetiming import GPU_SAMPLE_STEPS, sample_shape

register_configs()
SGD = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def tiny(device="cpu", channels=1):
    torch.manual_seed(0)
    return build_model("densenet", 10, channels, depth=10, growth_rate=4).to(device)


# --- everywhere -----------------------------------------------------------------------------------

def test_compiled_forms_belong_to_the_run_not_the_process():
    first, second = CompileLog(), CompileLog()
    a = _compiled(nn.Linear, 0, "train", first)
    assert _compiled(nn.Linear, 0, "train", first) is a  # the run's model copies share it
    assert _compiled(nn.Linear, 0, "frozen", first) is not a
    assert _compiled(nn.Linear, 0, "train", second) is not a  # another run: its own code objects
    assert set(first.functions) == {(nn.Linear, 0, "train"), (nn.Linear, 0, "frozen")} and len(second.functions) == 1


def test_on_a_gpu_the_time_models_samples_are_several_steps():
    assert sample_shape(1, 6, CPU) == (1, 6)  # as asked on the CPU
    assert sample_shape(1, 6, CUDA) == (3, 2)  # the same 6 steps, in two samples of 3
    assert sample_shape(1, 12, CUDA) == (GPU_SAMPLE_STEPS, 3)
    assert sample_shape(1, 2, CUDA) == (1, 2)  # two samples at least
    assert sample_shape(4, 3, CUDA) == (4, 3) and sample_shape(2, 1, CUDA) == (2, 1)
    for steps, chunks in [(1, 5), (1, 7), (2, 5), (3, 9)]:
        s, c = sample_shape(steps, chunks, CUDA)
        assert s * c <= steps * chunks and c >= 2 and s >= steps


# --- on a GPU -------------------------------------------------------------------------------------

@pytest.mark.cuda
@needs_cuda
def test_fp16_fused_sgd_after_a_skipped_step_equals_unfused_sgd():
    def run(fused: bool):
        torch.manual_seed(0)
        p = nn.Parameter(torch.randn(256, device="cuda"))
        optimizer = optimizer_factory(SGD)([{"params": [p]}])
        if not fused:
            optimizer = torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
        assert bool(optimizer.defaults.get("fused")) == fused
        scaler = torch.amp.GradScaler("cuda")  # at 2**16
        out = []
        for big in (True, False, False):
            optimizer.zero_grad()
            with torch.autocast("cuda", dtype=torch.float16):
                loss = ((p * 1e35).sum() if big else (p.half() ** 2).sum()).float()  # 1e35 * 2**16: inf
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            out.append((p.detach().clone(), optimizer.state[p].get("momentum_buffer")))
        return out
    fused, plain = run(True), run(False)
    assert fused[0][1] is None or not fused[0][1].any()  # after the skipped step: zeros, never garbage
    for (p, buf), (q, plain_buf) in zip(fused[1:], plain[1:]):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
        torch.testing.assert_close(buf, plain_buf, rtol=0, atol=1e-6)


@pytest.mark.cuda
@needs_cuda
def test_compile_under_tf32_runs_a_linear_layer():
    from freezeout.training.devices import configure_backends

    configure_backends(CUDA, "tf32")
    assert torch.get_float32_matmul_precision() == "high" and torch.backends.cuda.matmul.allow_tf32
    layer = nn.Linear(64, 64).cuda()
    out = torch.compile(layer)(torch.randn(8, 64, device="cuda"))  # inductor reads the legacy getters
    assert out.shape == (8, 64)
    configure_backends(CUDA, "fp32")
    assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cudnn.allow_tf32


@pytest.fixture
def jpeg_folder(tmp_path):
    """A generated image folder (random RGB JPEGs, 4 classes): no data set needed."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 192), ("val", 32)):
        for i in range(n):
            folder = tmp_path / split / f"class{i % 4}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return tmp_path


@pytest.mark.parametrize("host", [False, True])
@pytest.mark.cuda
@needs_cuda
def test_streamed_data_with_the_caches_plan_on_the_gpu(jpeg_folder, monkeypatch, host):
    from freezeout.data import load_data
    from freezeout.data.loader import StreamedImages
    from freezeout.training.cache import FrozenPrefixCache

    indexed = []
    original = StreamedImages.__getitem__
    monkeypatch.setattr(StreamedImages, "__getitem__",
                        lambda self, idx: (indexed.append(idx) if not isinstance(idx, slice) else None)
                        or original(self, idx))
    data = load_data({"source": "image_folder", "name": "jpegs", "root": str(jpeg_folder), "loader": "stream",
                      "workers": 1, "augment": False}, CUDA)
    model = tiny("cuda", 3).eval()
    cache = FrozenPrefixCache(model, data.train_x, 1e9, on_host=host, stages={2})
    order = data.stream.order(0, 1)
    plain = list(data.stream.batches(order, 0, 1, 32, with_index=True))
    got = []
    for b, batch in enumerate(data.stream.batches(order, 0, 1, 32, cache=cache, with_index=True)):
        got.append(batch)
        if b == 0:
            cache.advance(2)  # batches 1 and 2 from the store (the epoch's order copied to the GPU at 1)
        if b == 1:
            torch.cuda.set_sync_debug_mode("error")  # batch 2: no sync a step
        if b == 2:
            torch.cuda.set_sync_debug_mode("default")
            cache.advance(3)  # not in the plan: batches 3.. from the files again, through the workers
    torch.cuda.set_sync_debug_mode("default")
    assert not indexed and len(got) == 6
    for b, ((x, _, idx), (px, _, pidx)) in enumerate(zip(got, plain)):
        assert torch.equal(idx, pidx) and x.device.type == "cuda"
        if b in (1, 2):
            assert torch.equal(x.cpu(), cache.features[idx.to(cache.features.device)].cpu())
        else:
            assert torch.equal(x, px)


@pytest.mark.cuda
@needs_cuda
def test_the_pinned_gather_records_its_event_on_the_caches_gpu():
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs: the cache on the last one, the current device the first")
    from freezeout.data.batches import train_batches
    from freezeout.training.cache import FrozenPrefixCache

    last = torch.device("cuda", torch.cuda.device_count() - 1)
    torch.cuda.set_device(0)
    model = tiny(last).eval()
    images = torch.randn(512, 1, 28, 28, device=last)
    cache = FrozenPrefixCache(model, images, 1e9, on_host=True)
    cache.advance(3)
    generator = torch.Generator(device=last).manual_seed(0)
    perm = torch.randperm(512, device=last, generator=torch.Generator(device=last).manual_seed(0))
    for i, (x, _) in enumerate(train_batches(cache, torch.zeros(512, dtype=torch.long, device=last), 32, generator,
                                            False)):
        assert x.device == last and torch.equal(x.cpu(), cache.features[perm[i * 32:(i + 1) * 32].cpu()])


@pytest.mark.cuda
@needs_cuda
def test_the_stop_flag_is_agreed_on_an_nccl_group(tmp_path):
    import torch.distributed as dist

    from freezeout.distributed.process_group import SharedStop, agree_stop, collective_device

    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert collective_device().type == "cuda"
        stop = SharedStop(lambda: True)
        agree_stop(stop)
        assert stop()
    finally:
        dist.destroy_process_group()


@pytest.mark.cuda
@needs_cuda
def test_a_gpu_checkpoint_is_refused_on_the_cpu_in_one_line(tmp_path):
    """device=auto: stopped on the GPU, then launched again where no GPU is visible."""
    from freezeout.training.signals import Interrupted
    from freezeout.training.trainer import train

    overrides = [o for o in TINY_CUDA if o != "device=cuda"] + ["device=auto", "strategy=cubic", "epochs=1",
                                                                "log_every=1"]

    def stop_at_3(j: int) -> None:
        if j == 3:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        train(compose_cfg(*overrides), tmp_path / "run", pause=stop_at_3)
    checkpoint = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    done = run_cli(*overrides, f"hydra.run.dir={tmp_path / 'run'}", env={"CUDA_VISIBLE_DEVICES": ""}, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-2000:]
    assert "trained on cuda; this launch would resume it on cpu" in errors[0]
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == checkpoint  # nothing lost


@pytest.mark.cuda
@needs_cuda
def test_a_resumed_epochs_order_on_the_host_draws_batches_without_a_sync():
    from freezeout.data.batches import train_batches
    from freezeout.data.store import to_store

    store = to_store(torch.randint(0, 256, (256, 28, 28, 1), dtype=torch.uint8).numpy(), (0.5,), (0.25,), CUDA)
    perm = torch.randperm(256)  # as a checkpoint loads it: on the host
    generator = torch.Generator(device="cuda").manual_seed(0)
    stream = train_batches(store, torch.zeros(256, dtype=torch.long, device="cuda"), 32, generator,
                           "pad_crop_flip", perm=perm)
    next(stream)  # the order copied to the device here, once
    torch.cuda.set_sync_debug_mode("error")
    try:
        rest = [x for x, _ in stream]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(rest) == 7


@pytest.mark.cuda
@needs_cuda
def test_a_pinned_store_holds_no_more_than_its_budget():
    from freezeout.training.cache import FrozenPrefixCache

    torch._C._host_emptyCache()
    model = tiny("cuda").eval()
    images = torch.randn(100, 1, 28, 28, device="cuda")
    budget = 8 * 2**20  # bytes: a few stages' stores (about 2.5 MB each), rounded up to powers of two
    cache = FrozenPrefixCache(model, images, budget, on_host=True)
    cache.advance(len(model.layer_groups()) - 1)
    assert cache.held_bytes() <= budget
    stats = torch.cuda.host_memory_stats()
    reserved = [v for k, v in stats.items() if k.startswith("reserved_bytes") and k.endswith("current")]
    assert not reserved or max(reserved) <= budget + 2 * 2**20  # the gather's small buffers aside


@pytest.mark.cuda
@needs_cuda
def test_two_compiled_runs_in_one_process_each_compile_their_own(tmp_path):
    from freezeout.training.trainer import train

    # dynamo's eager backend: the graphs and the recompile limits are dynamo's (inductor, which the test
    # above runs, would take most of make gpu-check's time limit compiling twice more)
    for i, batch in enumerate((32, 48)):  # another shape: process-wide forms would accumulate graphs
        cfg = compose_cfg(*TINY_CUDA, "strategy=cubic", "t_0=0.5", "epochs=1", "compile=true",
                          "compile_backend=eager", f"batch_size={batch}")
        summary = train(cfg, tmp_path / f"run{i}")
        assert summary.status == "completed" and summary.compile["recompile_limit_hits"] == 0
        assert summary.compile["max_per_group"] <= 2


@pytest.mark.cuda
@needs_cuda
def test_the_time_models_gpu_samples_are_several_steps():
    from freezeout.speedup.timemodel import held_controller
    from freezeout.training.stagetiming import measure_stage_seconds
    from freezeout.training.step import TrainStep

    x, y = torch.randn(32, 1, 28, 28, device="cuda"), torch.randint(0, 10, (32,), device="cuda")

    def batches(step):
        while True:
            yield x, y
    timings = measure_stage_seconds(tiny("cuda"), lambda groups: held_controller(groups, optimizer_factory(SGD)),
                                    batches, [0, 3], lambda m, o: TrainStep(m, o, "fp32", CUDA), steps=1, chunks=6,
                                    warmup=1, layout="turns")
    assert all(len(v) == 2 for v in timings.samples.values())  # 6 steps a stage in 2 samples of 3
