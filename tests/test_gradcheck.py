"""fp64 gradcheck of the reference and of the kernels' forward and backward."""

import pytest
import torch

from gru_triton import dispatch, gru_layer_reference
from gru_triton.functional import GRULayerFunction
from tests.helpers import DEVICE


def _layer_inputs(bias, T=3, B=2, I=3, H=4):
    def param(*shape):
        return torch.randn(*shape, dtype=torch.float64, device=DEVICE, requires_grad=True)

    return (param(T, B, I), param(B, H), param(3 * H, I), param(3 * H, H),
            param(3 * H) if bias else None, param(3 * H) if bias else None)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_gradcheck_reference(bias, reverse):
    inputs = _layer_inputs(bias)
    assert torch.autograd.gradcheck(
        lambda *a: gru_layer_reference(*a, reverse=reverse), inputs)


@pytest.mark.parametrize("path", dispatch.PATHS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_gradcheck_kernels(bias, reverse, path):
    # fast_mode checks random projections of the Jacobian: every kernel run in the
    # interpreter costs time, and the full Jacobian needs two per input element.
    inputs = _layer_inputs(bias, H=5)
    assert torch.autograd.gradcheck(
        lambda *a: GRULayerFunction.apply(*a, reverse, path, "ieee"), inputs, fast_mode=True)
