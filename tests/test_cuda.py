"""Natively on a GPU: larger shapes, both recurrence paths, fp32 in IEEE and TF32 modes,
bf16/fp16 against an fp64 reference. Skipped without CUDA."""

import pytest
import torch

import gru_triton
from gru_triton import dispatch
from tests.helpers import HAS_CUDA, max_rel_err

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")]

SHAPES = [(64, 16, 256, 256, 1), (33, 7, 100, 1024, 1), (16, 64, 128, 512, 2)]


def _run(module, x, grad):
    x = x.detach().clone().requires_grad_(True)
    out, h_n = module(x)
    (out * grad).sum().backward()
    return [out, h_n, x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("precision,tol", [("ieee", 2e-5), ("tf32", 5e-3)])
@pytest.mark.parametrize("path", dispatch.PATHS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}-B{}-I{}-H{}-L{}".format(*s))
def test_fp32_matches_cudnn(shape, path, precision, tol):
    T, B, I, H, L = shape
    gru_triton.set_backend("triton")
    saved = torch.backends.cudnn.rnn.fp32_precision
    torch.backends.cudnn.rnn.fp32_precision = precision
    try:
        ref = torch.nn.GRU(I, H, L, bidirectional=L > 1).cuda()
        ours = gru_triton.GRU(I, H, L, bidirectional=L > 1).cuda()
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(T, B, I, device="cuda")
        grad = torch.randn(T, B, H * (2 if L > 1 else 1), device="cuda")
        with dispatch.force_path(path):
            got = _run(ours, x, grad)
        expected = _run(ref, x, grad)
    finally:
        torch.backends.cudnn.rnn.fp32_precision = saved
    for g, e in zip(got, expected, strict=True):
        assert max_rel_err(g, e) <= tol


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("path", dispatch.PATHS)
def test_low_precision_against_fp64(dtype, path):
    T, B, I, H = 64, 16, 128, 512
    gru_triton.set_backend("triton")
    exact = torch.nn.GRU(I, H).cuda().double()
    theirs = torch.nn.GRU(I, H).cuda().to(dtype)
    ours = gru_triton.GRU(I, H).cuda().to(dtype)
    theirs.load_state_dict(exact.state_dict())
    ours.load_state_dict(exact.state_dict())
    x = torch.randn(T, B, I, device="cuda", dtype=torch.float64)
    grad = torch.randn(T, B, H, device="cuda", dtype=torch.float64)
    expected = _run(exact, x, grad)
    with dispatch.force_path(path):
        got = _run(ours, x.to(dtype), grad.to(dtype))
    baseline = _run(theirs, x.to(dtype), grad.to(dtype))
    for g, b, e in zip(got, baseline, expected, strict=True):
        ours_err = (g.double() - e).abs().max().item()
        torch_err = (b.double() - e).abs().max().item()
        assert ours_err <= 2 * torch_err + 4 * torch.finfo(dtype).eps * e.abs().max().item()
