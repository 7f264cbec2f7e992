"""gru_triton.GRUCell against torch.nn.GRUCell: API, numbers, gradients, errors."""

import pytest
import torch

import gru_triton
from tests.helpers import DEVICE, assert_close

# B (None = unbatched), I, H, bias, with_hx
CASES = [(3, 5, 7, True, True), (1, 1, 1, True, False), (None, 4, 37, True, True),
         (None, 3, 6, False, False), (18, 13, 33, False, True), (2, 40, 16, True, True)]


def _case_id(c):
    B, I, H, bias, hx = c
    return f"B{B}-I{I}-H{H}{'' if bias else '-nobias'}{'-hx' if hx else ''}"


def _pair(I, H, bias, dtype=torch.float32):
    ref = torch.nn.GRUCell(I, H, bias=bias).to(DEVICE, dtype)
    ours = gru_triton.GRUCell(I, H, bias=bias).to(DEVICE, dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_cell_matches_nn_grucell(case, triton_backend, launch_counter):
    B, I, H, bias, with_hx = case
    ref, ours = _pair(I, H, bias)
    batch = () if B is None else (B,)
    x = torch.randn(*batch, I, device=DEVICE)
    hx = torch.randn(*batch, H, device=DEVICE) if with_hx else None
    results = []
    for module in (ref, ours):
        leaves = [x.clone().requires_grad_()] + ([hx.clone().requires_grad_()] if with_hx else [])
        h_new = module(*leaves)
        torch.manual_seed(7)
        grad = torch.randn_like(h_new)
        grads = torch.autograd.grad((h_new * grad).sum(), leaves + list(module.parameters()))
        results.append((h_new, grads))
    (ref_h, ref_grads), (h, grads) = results
    assert h.shape == ref_h.shape and h.dtype == ref_h.dtype
    assert_close(h, ref_h, what="h'")
    for index, (g, ref_g) in enumerate(zip(grads, ref_grads, strict=True)):
        assert_close(g, ref_g, what=f"gradient {index}")
    assert launch_counter == {"fwd": 1, "bwd": 1}


def test_cell_api_is_nn_grucell():
    ref, ours = torch.nn.GRUCell(4, 6, bias=False), gru_triton.GRUCell(4, 6, bias=False)
    assert isinstance(ours, torch.nn.GRUCell)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in ref.state_dict().items()}
    torch.manual_seed(3)
    a = gru_triton.GRUCell(4, 6)
    torch.manual_seed(3)
    b = torch.nn.GRUCell(4, 6)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert repr(ours) == repr(ref).replace("GRUCell", "GRUCell", 1)
    assert "reset_after=False" in repr(gru_triton.GRUCell(4, 6, reset_after=False))


def test_cell_fp64_gradcheck(triton_backend):
    ours = gru_triton.GRUCell(3, 5).to(DEVICE, torch.float64)
    x = torch.randn(2, 3, device=DEVICE, dtype=torch.float64, requires_grad=True)
    hx = torch.randn(2, 5, device=DEVICE, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, hx: ours(x, hx), (x, hx), fast_mode=True)


ERROR_CASES = {
    "input_3d": (lambda: (torch.randn(3, 5, 1),), ValueError),
    "hx_3d": (lambda: (torch.randn(3, 5), torch.randn(3, 4, 1)), ValueError),
    "input_size": (lambda: (torch.randn(3, 4), torch.randn(3, 4)), RuntimeError),
    "batch_mismatch": (lambda: (torch.randn(3, 5), torch.randn(2, 4)), RuntimeError),
    "hidden_size": (lambda: (torch.randn(3, 5), torch.randn(3, 3)), RuntimeError),
    "hx_1d_batched": (lambda: (torch.randn(3, 5), torch.randn(4)), RuntimeError),
    "hx_2d_unbatched": (lambda: (torch.randn(5), torch.randn(3, 4)), RuntimeError),
    "hx_dtype": (lambda: (torch.randn(3, 5), torch.randn(3, 4).double()), RuntimeError),
    "input_dtype": (lambda: (torch.randn(3, 5).double(), torch.randn(3, 4)), RuntimeError),
    "integer_input": (lambda: (torch.ones(3, 5, dtype=torch.int64),), RuntimeError),
}


@pytest.mark.parametrize("make,error", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_cell_errors_match_nn_grucell(make, error, triton_backend, launch_counter):
    ref, ours = torch.nn.GRUCell(5, 4), gru_triton.GRUCell(5, 4)
    args = make()
    with pytest.raises(error) as theirs:
        ref(*args)
    with pytest.raises(error) as mine:
        ours(*args)
    assert str(mine.value) == str(theirs.value)
    assert launch_counter == {"fwd": 0, "bwd": 0}


def test_cell_empty_batch_like_nn_grucell(triton_backend):
    ref, ours = _pair(5, 4, True)
    x = torch.randn(0, 5, device=DEVICE)
    assert ours(x).shape == ref(x).shape == (0, 4)


def test_cell_steps_equal_the_layer(triton_backend):
    """Stepping a GRUCell through a sequence gives the GRU layer's outputs (same weights)."""
    layer = gru_triton.GRU(3, 8).to(DEVICE)
    cell = gru_triton.GRUCell(3, 8).to(DEVICE)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in layer.state_dict().items()})
    x = torch.randn(5, 2, 3, device=DEVICE)
    out, _ = layer(x)
    h = None
    for t in range(5):
        h = cell(x[t], h)
        assert_close(h, out[t], what=f"step {t}")
