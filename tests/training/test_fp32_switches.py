"""``precision`` sets float32 math through torch's switches so that both of torch's APIs read
afterwards: the legacy getters (``torch.get_float32_matmul_precision()``,
``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``, which inductor
reads) and the new ``fp32_precision`` attributes, whatever was set before. The switches are
process-wide and a mix set once cannot be unset by the getters, so each case runs in its own
interpreter. They can be set without a GPU: this runs everywhere."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = r"""
import json, sys, torch
from freezeout.training.devices import configure_backends
before, modes = sys.argv[1], sys.argv[2].split(",")
exec(before)
out = []
for mode in modes:
    configure_backends(torch.device("cuda"), mode)
    read = {}
    for name, get in [("get_float32_matmul_precision", torch.get_float32_matmul_precision),
                      ("matmul.allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
                      ("cudnn.allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
                      ("backends.fp32_precision", lambda: torch.backends.fp32_precision),
                      ("matmul.fp32_precision", lambda: torch.backends.cuda.matmul.fp32_precision),
                      ("cudnn.fp32_precision", lambda: torch.backends.cudnn.fp32_precision),
                      ("conv.fp32_precision", lambda: torch.backends.cudnn.conv.fp32_precision),
                      ("rnn.fp32_precision", lambda: torch.backends.cudnn.rnn.fp32_precision)]:
        try:
            read[name] = get()
        except RuntimeError as e:
            read[name] = "raised: " + " ".join(str(e).split())[:80]
    out.append(read)
print(json.dumps(out))
"""
BEFORE = {
    "fresh": "pass",
    "new API leaves": "torch.backends.cuda.matmul.fp32_precision = 'tf32'; torch.backends.cudnn.conv.fp32_precision = 'tf32'",
    "new API top": "torch.backends.fp32_precision = 'tf32'",
    "new API cudnn": "torch.backends.cudnn.fp32_precision = 'ieee'",
}
SEQUENCES = ["fp32,tf32,bf16,tf32,fp16,fp32", "tf32,fp16,tf32,bf16"]  # fp32 or tf32 first; each mode after others


def probe(before: str, modes: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", PROBE, before, modes], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("before", sorted(BEFORE))
@pytest.mark.parametrize("modes", SEQUENCES)
def test_every_precision_leaves_every_fp32_getter_readable_and_right(before, modes):
    for mode, read in zip(modes.split(","), probe(BEFORE[before], modes)):
        raised = {k: v for k, v in read.items() if isinstance(v, str) and v.startswith("raised")}
        assert not raised, f"after precision={mode}: {raised}"
        tf32 = mode == "tf32"
        assert read["get_float32_matmul_precision"] == ("high" if tf32 else "highest")
        assert read["matmul.allow_tf32"] is tf32 and read["cudnn.allow_tf32"] is tf32
        assert read["matmul.fp32_precision"] == ("tf32" if tf32 else "ieee")
        # a convolution's: its own switch, or (none) its parents', ending at the legacy flag
        conv = [read[k] for k in ("conv.fp32_precision", "cudnn.fp32_precision", "backends.fp32_precision")]
        effective = next((v for v in conv if v != "none"), "tf32" if read["cudnn.allow_tf32"] else "ieee")
        assert effective == ("tf32" if tf32 else "ieee")
