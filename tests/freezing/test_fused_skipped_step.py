"""Fused optimizers under fp16's gradient scaler when it skips a step (an inf in the gradients):
the project's fused SGD (as built on CUDA; fused SGD runs on the CPU too, so this runs
everywhere) takes the same updates as unfused SGD, skipped steps or not, and so does AdamW."""
from __future__ import annotations

import pytest
import torch

from freezeout.freezing.optim import _build


def steps(cls, fused: bool, losses, **settings):
    """Parameters and optimizer state after each of ``losses`` (functions of the parameter),
    each stepped through a CPU gradient scaler that starts at 2**100 (so that ``p * 1e30``
    overflows and the step is skipped)."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(64))
    optimizer = _build(cls, [{"params": [p]}], fused=fused, **settings)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 100)
    out = []
    for loss in losses:
        optimizer.zero_grad()
        scaler.scale(loss(p)).backward()
        scaler.step(optimizer)
        scaler.update()
        out.append((p.detach().clone(), {k: v.clone() for k, v in optimizer.state[p].items()}, scaler.get_scale()))
    return out


OVERFLOW = lambda p: (p * 1e30).sum()  # noqa: E731  inf once scaled by 2**100: the scaler skips
SQUARE = lambda p: (p ** 2).sum()  # noqa: E731


@pytest.mark.parametrize("nesterov", [False, True])
def test_fused_sgd_after_a_skipped_step_equals_unfused_sgd(nesterov):
    settings = dict(lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=1e-4)
    fused = steps(torch.optim.SGD, True, [OVERFLOW, SQUARE, OVERFLOW, SQUARE, SQUARE], **settings)
    plain = steps(torch.optim.SGD, False, [OVERFLOW, SQUARE, OVERFLOW, SQUARE, SQUARE], **settings)
    (p0, state0, scale0), (q0, plain0, _) = fused[0], plain[0]
    assert scale0 < 2.0 ** 100 and torch.equal(p0, q0)  # the step was skipped: nothing moved
    # After the skipped first step unfused SGD holds no buffer; a fused one holds zeros, which
    # its next step reads as unfused SGD reads a missing one (never what the memory held).
    assert plain0 == {} and all(not v.any() for v in state0.values())
    for (p, state, scale), (q, plain_state, plain_scale) in zip(fused[1:], plain[1:]):
        assert scale == plain_scale
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
        torch.testing.assert_close(state["momentum_buffer"], plain_state["momentum_buffer"], rtol=0, atol=1e-6)


def test_fused_sgd_without_a_scaler_skip_equals_unfused_sgd():
    settings = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    fused = steps(torch.optim.SGD, True, [SQUARE] * 3, **settings)
    plain = steps(torch.optim.SGD, False, [SQUARE] * 3, **settings)
    for (p, state, _), (q, plain_state, _) in zip(fused, plain):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
        torch.testing.assert_close(state["momentum_buffer"], plain_state["momentum_buffer"], rtol=0, atol=1e-6)


def test_fused_adamw_after_a_skipped_step_equals_unfused_adamw():
    settings = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    fused = steps(torch.optim.AdamW, True, [OVERFLOW, SQUARE, SQUARE], **settings)
    plain = steps(torch.optim.AdamW, False, [OVERFLOW, SQUARE, SQUARE], **settings)
    for (p, state, _), (q, plain_state, _) in zip(fused[1:], plain[1:]):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
        assert float(state["step"]) == float(plain_state["step"])  # the skipped step not counted
        torch.testing.assert_close(state["exp_avg"], plain_state["exp_avg"], rtol=0, atol=1e-6)
