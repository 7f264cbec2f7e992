"""fp64 gradcheck of the reference and of the kernels' forward and backward, in both equation
forms, with and without per-row lengths."""

import pytest
import torch

from gru_triton import dispatch, gru_layer_reference
from gru_triton.functional import _layer_triton
from tests.helpers import DEVICE

FORMS = {"reset_after": True, "reset_before": False}


def _layer_inputs(bias, T=3, B=2, I=3, H=4):
    def param(*shape):
        return torch.randn(*shape, dtype=torch.float64, device=DEVICE, requires_grad=True)

    return (param(T, B, I), param(B, H), param(3 * H, I), param(3 * H, H),
            param(3 * H) if bias else None, param(3 * H) if bias else None)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_gradcheck_reference(bias, reverse, form):
    inputs = _layer_inputs(bias)
    lengths = torch.tensor([3, 1])
    for lens in (None, lengths):
        assert torch.autograd.gradcheck(
            lambda *a, lens=lens: gru_layer_reference(*a, reverse=reverse, lengths=lens,
                                                      reset_after=FORMS[form]), inputs)


# The reset-before form always runs on the persistent path.
KERNEL_PATHS = [("persistent", "reset_after"), ("per_step", "reset_after"),
                ("grid_sync", "reset_after"), ("persistent", "reset_before")]


@pytest.mark.parametrize("lengths", [None, [3, 1, 2]], ids=["full", "lengths"])
@pytest.mark.parametrize(("path", "form"), KERNEL_PATHS, ids=["-".join(p) for p in KERNEL_PATHS])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_gradcheck_kernels(bias, reverse, path, form, lengths):
    # fast_mode checks random projections of the Jacobian: every kernel run in the
    # interpreter costs time, and the full Jacobian needs two per input element.
    inputs = _layer_inputs(bias, B=3, H=5)
    lens = None if lengths is None else torch.tensor(lengths, dtype=torch.int32, device=DEVICE)
    with dispatch.force_path(path):
        assert torch.autograd.gradcheck(
            lambda *a: _layer_triton(*a, reverse, lens, FORMS[form]), inputs, fast_mode=True)
