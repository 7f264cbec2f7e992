"""The reset-before GRU (Cho et al. 2014; Keras reset_after=False): the kernels against the
fp64 reference of its equations, forward and every gradient."""

import pytest
import torch

import gru_triton
from tests.helpers import DEVICE, assert_close

# T, B, I, H, layers, bias, batch_first, bidirectional, with_h0, lengths
CASES = [
    (1, 1, 1, 1, 1, True, False, False, False, None),
    (5, 3, 4, 21, 2, True, False, True, True, None),
    (4, 2, 3, 16, 1, False, True, False, True, None),
    (6, 18, 5, 37, 1, True, False, False, False, None),  # two batch tiles, ragged hidden
    (5, 3, 2, 70, 2, True, True, True, True, [5, 2, 4]),  # three hidden chunks, lengths
]


def _case_id(c):
    T, B, I, H, L, bias, bf, bi, h0, lengths = c
    return (f"T{T}-B{B}-I{I}-H{H}-L{L}{'' if bias else '-nobias'}{'-bf' if bf else ''}"
            f"{'-bi' if bi else ''}{'-h0' if h0 else ''}{'-lengths' if lengths else ''}")


def _run(module, x, h0, lengths, grad_out, grad_hn):
    leaves = [x.clone().requires_grad_()] + ([h0.clone().requires_grad_()] if h0 is not None else [])
    out, h_n = module(*leaves, lengths=lengths)
    loss = (out * grad_out).sum() + (h_n * grad_hn).sum()
    return out, h_n, torch.autograd.grad(loss, leaves + list(module.parameters()))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_reset_before_matches_fp64_reference(case, dtype, triton_backend, launch_counter):
    T, B, I, H, L, bias, batch_first, bi, with_h0, lengths = case
    D = 2 if bi else 1
    ours = gru_triton.GRU(I, H, L, bias=bias, batch_first=batch_first, bidirectional=bi,
                          reset_after=False).to(DEVICE, torch.float64)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), device=DEVICE, dtype=torch.float64)
    h0 = torch.randn(L * D, B, H, device=DEVICE, dtype=torch.float64) if with_h0 else None
    grad_out = torch.randn((B, T, D * H) if batch_first else (T, B, D * H), device=DEVICE,
                           dtype=torch.float64)
    grad_hn = torch.randn(L * D, B, H, device=DEVICE, dtype=torch.float64)
    gru_triton.set_backend("reference")
    expected = _run(ours, x, h0, lengths, grad_out, grad_hn)
    gru_triton.set_backend("triton")
    ours = ours.to(dtype)
    cast = lambda t: None if t is None else t.to(dtype)
    out, h_n, grads = _run(ours, cast(x), cast(h0), lengths, cast(grad_out), cast(grad_hn))
    assert_close(out, expected[0], dtype, "output")
    assert_close(h_n, expected[1], dtype, "h_n")
    for index, (g, ref_g) in enumerate(zip(grads, expected[2], strict=True)):
        assert_close(g, ref_g, dtype, f"gradient {index}")
    assert launch_counter == {"fwd": L * D, "bwd": L * D}


def test_reset_before_differs_from_reset_after(triton_backend):
    """Same weights, other equations: a check that the flag reaches the kernels at all."""
    after = gru_triton.GRU(3, 8).to(DEVICE)
    before = gru_triton.GRU(3, 8, reset_after=False).to(DEVICE)
    before.load_state_dict(after.state_dict())
    x = torch.randn(4, 2, 3, device=DEVICE)
    assert (after(x)[0] - before(x)[0]).abs().max() > 1e-3


def test_reset_before_keeps_nn_gru_parameters():
    ours = gru_triton.GRU(3, 8, 2, bidirectional=True, reset_after=False)
    ref = torch.nn.GRU(3, 8, 2, bidirectional=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in ref.state_dict().items()}
    assert "reset_after=False" in repr(ours)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_reset_before_cell_matches_reference(bias, triton_backend):
    cell = gru_triton.GRUCell(5, 19, bias=bias, reset_after=False).to(DEVICE, torch.float64)
    x = torch.randn(3, 5, device=DEVICE, dtype=torch.float64, requires_grad=True)
    hx = torch.randn(3, 19, device=DEVICE, dtype=torch.float64, requires_grad=True)
    h = cell(x, hx)
    grads = torch.autograd.grad(h.sum(), [x, hx, *cell.parameters()])
    gru_triton.set_backend("reference")
    h_ref = cell(x, hx)
    ref_grads = torch.autograd.grad(h_ref.sum(), [x, hx, *cell.parameters()])
    assert_close(h, h_ref, torch.float64, "h'")
    for index, (g, ref_g) in enumerate(zip(grads, ref_grads, strict=True)):
        assert_close(g, ref_g, torch.float64, f"gradient {index}")
