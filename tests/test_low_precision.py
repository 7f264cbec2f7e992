"""bf16 / fp16: error against an fp64 reference at most about twice PyTorch's own."""

import pytest
import torch

import gru_triton
from gru_triton import dispatch
from tests.helpers import DEVICE

CASES = [(dtype, bi, "persistent") for dtype in (torch.bfloat16, torch.float16)
         for bi in (False, True)]
# The 16-bit gate buffers go through every path's loads and stores (grid_sync's past L1).
CASES += [(torch.bfloat16, True, path) for path in ("per_step", "grid_sync")]


@pytest.mark.parametrize(("dtype", "bidirectional", "path"), CASES,
                         ids=[f"{str(d)[6:]}-{'bi' if b else 'uni'}-{p}" for d, b, p in CASES])
def test_error_within_twice_pytorchs(dtype, bidirectional, path, triton_backend):
    T, B, I, H, L = 6, 5, 7, 37, 2
    exact = torch.nn.GRU(I, H, L, bidirectional=bidirectional).to(DEVICE, torch.float64)
    torch_lowp = torch.nn.GRU(I, H, L, bidirectional=bidirectional).to(DEVICE, dtype)
    ours = gru_triton.GRU(I, H, L, bidirectional=bidirectional).to(DEVICE, dtype)
    torch_lowp.load_state_dict(exact.state_dict())
    ours.load_state_dict(exact.state_dict())
    x = torch.randn(T, B, I, device=DEVICE, dtype=torch.float64)

    def run(module, dtype):
        xi = x.to(dtype).detach().clone().requires_grad_(True)
        out, h_n = module(xi)
        out.float().square().sum().backward()
        return [out, h_n, xi.grad] + [p.grad for p in module.parameters()]

    expected = run(exact, torch.float64)
    with dispatch.force_path(path):
        got = run(ours, dtype)
    baseline = run(torch_lowp, dtype)
    for name, e, g, b in zip(["output", "h_n", "dx"] + [n for n, _ in ours.named_parameters()],
                             expected, got, baseline, strict=True):
        assert g.dtype == dtype, name
        ours_err = (g.double() - e).abs().max().item()
        torch_err = (b.double() - e).abs().max().item()
        scale = e.abs().max().item()
        # Floor: a couple of ulps of the largest value, for tensors PyTorch happens to get
        # nearly exactly right.
        floor = 4 * torch.finfo(dtype).eps * scale
        assert ours_err <= 2 * torch_err + floor, (
            f"{name}: error {ours_err:.3e} vs PyTorch's {torch_err:.3e} (scale {scale:.3e})")
