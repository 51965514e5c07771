"""python -m freezeout.bench.gpucheck [--out DIR] [--budget-s SECONDS]   (make gpu-check)

The benchmark on one NVIDIA GPU, in a few minutes and without a download: DenseNet-BC L=76 k=12
on CIFAR-sized synthetic images (torchvision's FakeData: 3x32x32, 10 classes), channels-last, in
bf16 and in fp32 (IEEE float32: TF32 off). For each precision: the baseline's and the
all-but-head-frozen step's images per second, the realisation of cubic t_0=0.5 and 0.8 (runs
taking turns, each against its own time model), the share of a bare PyTorch loop's speed the
trainer reaches, and the CUDA allocator's peak memory. Writes one JSON (every figure of both
benchmarks) and one summary table (markdown) when it starts and again after each precision, so
that a check stopped by its time limit leaves what it measured (``"complete": false`` until the
end), and prints the table.

Without a GPU it runs the same pipeline as a smoke test on a tiny DenseNet on the CPU, fp32 only,
labelled as such: its figures are not measurements of anything.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

#: The GPU check's runs: CIFAR-sized synthetic data (9,216 images: 8,192 to train, 1,024 to validate).
GPU_RUN = ["model=densenet", "model.depth=76", "model.growth_rate=12", "data=torchvision", "data.name=FakeData",
           "+data.kwargs.size=9216", "+data.kwargs.image_size=[3,32,32]", "+data.kwargs.num_classes=10",
           "data.val_size=1024", "data.subset=8192", "data.download=false", "batch_size=128", "epochs=4", "device=cuda",
           "channels_last=true", "log_every=16"]
GPU_BENCH = ["bench.t0=[0.5,0.8]", "bench.repeats=1", "bench.cache=false", "bench.chunks=6", "bench.chunk_steps=8"]
#: Without a GPU: the same pipeline on a tiny model and a few images, to show it works.
CPU_RUN = ["model=densenet", "model.depth=10", "model.growth_rate=4", "data=torchvision", "data.name=FakeData",
           "+data.kwargs.size=700", "+data.kwargs.image_size=[3,32,32]", "+data.kwargs.num_classes=10",
           "data.val_size=200", "data.subset=500", "data.download=false", "batch_size=50", "epochs=3", "device=cpu",
           "log_every=1"]
CPU_BENCH = ["bench.t0=[0.5,0.8]", "bench.repeats=1", "bench.cache=false", "bench.chunks=2", "bench.chunk_steps=2",
             "bench.threads=1"]
COLUMNS = ("precision", "baseline img/s", "all-but-head img/s", "realisation t_0=0.5", "realisation t_0=0.8",
           "share of bare loop", "peak MiB")


def figures(precision: str, r: dict) -> dict:
    """One row of the summary table from one benchmark's results."""
    batch = r["run"]["batch_size"]
    by_t0 = {row["t_0"]: row["realisation_time"] for row in r["realisation"]["by_t0"]}
    peaks = [row["cuda_peak_mb"] for row in r["memory"]["configs"] if row["cuda_peak_mb"] is not None]
    return {"precision": precision,
            "baseline img/s": r["realisation"]["throughput_images_per_second"]["baseline"],
            "all-but-head img/s": batch / r["frozen_prefix"]["a_step_seconds"],
            "realisation t_0=0.5": by_t0.get(0.5), "realisation t_0=0.8": by_t0.get(0.8),
            "share of bare loop": 1.0 / r["overhead"]["ratio"],
            "peak MiB": max(peaks) if peaks else None}


def table(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    def cell(v):
        return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) and v < 10 else \
            f"{v:.0f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(cell(row[c]) for c in COLUMNS) + " |" for row in rows])


def main(argv: list[str] | None = None) -> dict:
    from ..rundir.provenance import device_name, git_revision, library_versions
    from . import main as bench
    from .settings import say

    parser = argparse.ArgumentParser(prog="python -m freezeout.bench.gpucheck", description=__doc__.split("\n")[2])
    parser.add_argument("--out", default="bench-results", help="folder for gpu-check.json and gpu-check.md")
    parser.add_argument("--budget-s", type=float, default=330.0,
                        help="seconds the check may take: fp32 is skipped when bf16 took more than half")
    args = parser.parse_args(argv)
    out, started = Path(args.out), time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.is_available()
    run, extra, precisions = (GPU_RUN, GPU_BENCH, ("bf16", "fp32")) if gpu else (CPU_RUN, CPU_BENCH, ("fp32",))
    say("GPU check: DenseNet-BC L=76 k=12, CIFAR-sized synthetic data, bf16 and fp32" if gpu else
        "GPU check: no CUDA GPU visible. Running its pipeline as a CPU smoke test (a tiny DenseNet, fp32): "
        "its figures are NOT measurements")
    results: dict = {"gpu": gpu, "environment": {"device": device_name(torch.device("cuda" if gpu else "cpu")),
                                                 "versions": library_versions(), "git_revision": git_revision()},
                     "run": run, "bench": extra, "by_precision": {}, "skipped": []}
    rows: list[dict] = []
    write(out, results, rows, started, complete=False)  # a check killed before its first figure says so
    for precision in precisions:
        elapsed = time.perf_counter() - started
        if rows and elapsed > args.budget_s / 2:
            results["skipped"].append(f"{precision}: {elapsed:.0f} s of the {args.budget_s:.0f} s budget spent")
            say(f"skipping {precision}: {elapsed:.0f} s of the budget spent")
            continue
        r = bench([*run, f"precision={precision}", *extra, f"bench.out={out / f'bench-{precision}.json'}"])
        results["by_precision"][precision] = r
        rows.append(figures(precision, r))
        write(out, results, rows, started, complete=False)  # kept, should the time limit stop the next one
    write(out, results, rows, started, complete=True)
    say(f"\nGPU check{'' if gpu else ' (CPU smoke test: not measurements)'}, {results['environment']['device']}, "
        f"{results['wall_seconds']:.0f} s")
    say(results["table"])
    say(f"wrote {out / 'gpu-check.json'} and {out / 'gpu-check.md'}")
    return results


def write(out: Path, results: dict, rows: list[dict], started: float, complete: bool) -> None:
    """``gpu-check.json`` (atomically) and ``gpu-check.md`` with the precisions measured so far;
    ``complete`` is true once every precision was measured or skipped."""
    from ..rundir.records import write_json_atomic

    results.update(summary=rows, table=table(rows), wall_seconds=time.perf_counter() - started, complete=complete,
                   measured=[row["precision"] for row in rows])
    write_json_atomic(out / "gpu-check.json", results)
    (out / "gpu-check.md").write_text(results["table"] + "\n" + ("" if complete else "\n(incomplete: the check "
                                                                  "was still running when this was written)\n"))


if __name__ == "__main__":
    main()
