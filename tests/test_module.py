"""GRU is nn.GRU to its users: parameters, init, state_dict, shapes, inputs left untouched."""

import pytest
import torch

import gru_triton
from tests.helpers import DEVICE, assert_close


@pytest.mark.parametrize("kwargs", [dict(), dict(num_layers=3, bidirectional=True),
                                    dict(bias=False, num_layers=2), dict(batch_first=True)],
                         ids=["default", "3-layer-bi", "nobias-2-layer", "batch_first"])
def test_parameters_init_and_state_dict_like_nn_gru(kwargs):
    torch.manual_seed(3)
    ref = torch.nn.GRU(5, 37, **kwargs)
    torch.manual_seed(3)
    ours = gru_triton.GRU(5, 37, **kwargs)
    # Built on nn.RNNBase as nn.GRU is, but not an nn.GRU: torch.compile refuses those.
    assert isinstance(ours, torch.nn.RNNBase) and not isinstance(ours, torch.nn.GRU)
    assert repr(ours) == repr(ref)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == \
        [(n, p.shape) for n, p in ref.named_parameters()]
    # Same constructor, same RNG draws: nn.GRU's uniform(-1/sqrt(H), 1/sqrt(H)) init exactly.
    for (name, p), q in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q), name
        assert p.abs().max() <= 1 / 37 ** 0.5
    assert ours.state_dict().keys() == ref.state_dict().keys()
    # Loadable both ways.
    other = torch.nn.GRU(5, 37, **kwargs)
    other.load_state_dict(ours.state_dict())
    ours2 = gru_triton.GRU(5, 37, **kwargs)
    ours2.load_state_dict(ref.state_dict())
    for a, b in zip(other.parameters(), ours2.parameters(), strict=True):
        assert torch.equal(a, b)
    assert "weight_hh_l0" in dict(ours.named_parameters())
    if kwargs.get("bidirectional"):
        assert "weight_hh_l2_reverse" in dict(ours.named_parameters())


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_h_n_may_be_modified_in_place_as_nn_grus(bidirectional, triton_backend):
    """nn.GRU's h_n is the caller's to modify in place before backward (cuDNN saves only its
    output); the kernels' states it is copied from are not touched."""
    ref = torch.nn.GRU(3, 8, bidirectional=bidirectional).to(DEVICE)
    ours = gru_triton.GRU(3, 8, bidirectional=bidirectional).to(DEVICE)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, 3, device=DEVICE)
    grads = []
    for module in (ours, ref):
        out, h_n = module(x)
        h_n.mul_(2.0).add_(1.0)
        (out.square().sum() + h_n.square().sum()).backward()
        grads.append([p.grad for p in module.parameters()])
    for got, expected in zip(*grads, strict=True):
        assert_close(got, expected, what="gradient after in-place ops on h_n")


def test_output_modified_in_place_makes_backward_refuse(triton_backend):
    """The output is a view of the states backward reads, as cuDNN's nn.GRU saves its output:
    modified in place, backward raises autograd's error instead of returning gradients of
    the wrong states (nn.GRU on CUDA raises the same; on the CPU it keeps no output)."""
    modules = [gru_triton.GRU(3, 8).to(DEVICE)]
    if DEVICE.type == "cuda":
        modules.append(torch.nn.GRU(3, 8).to(DEVICE))
    x = torch.randn(5, 2, 3, device=DEVICE)
    for module in modules:
        out, _ = module(x)
        out.relu_()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()


def test_inputs_are_not_modified_and_non_contiguous_input_works(triton_backend):
    ref = torch.nn.GRU(4, 20, 2, bidirectional=True).to(DEVICE)
    ours = gru_triton.GRU(4, 20, 2, bidirectional=True).to(DEVICE)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 5, 4, device=DEVICE).transpose(0, 1)  # (T=5, B=3, I=4), not contiguous
    h0 = torch.randn(4, 20, 3, device=DEVICE).transpose(1, 2)  # not contiguous either
    x.requires_grad_(True)
    h0.requires_grad_(True)
    x_before, h0_before = x.detach().clone(), h0.detach().clone()
    params_before = [p.detach().clone() for p in ours.parameters()]
    out, h_n = ours(x, h0)
    (out.sum() + h_n.sum()).backward()
    assert torch.equal(x, x_before) and torch.equal(h0, h0_before)
    for p, before in zip(ours.parameters(), params_before, strict=True):
        assert torch.equal(p, before)
    ref_out, ref_h_n = ref(x_before, h0_before.contiguous())  # cuDNN refuses a strided hx
    assert_close(out, ref_out, what="output")
    assert_close(h_n, ref_h_n, what="h_n")


def test_auto_backend_runs_the_reference_on_cpu(launch_counter):
    ours = gru_triton.GRU(3, 8)
    out, _ = ours(torch.randn(4, 2, 3))
    assert out.shape == (4, 2, 8)
    assert launch_counter["fwd"] == 0  # auto: CPU tensors go to the reference


def test_env_variable_selects_backend(monkeypatch, launch_counter):
    monkeypatch.setenv("GRU_TRITON_BACKEND", "triton")
    assert gru_triton.get_backend() == "triton"
    gru_triton.GRU(3, 8).to(DEVICE)(torch.randn(4, 2, 3, device=DEVICE))
    assert launch_counter["fwd"] == 1
    gru_triton.set_backend("reference")  # set_backend wins over the environment
    gru_triton.GRU(3, 8).to(DEVICE)(torch.randn(4, 2, 3, device=DEVICE))
    assert launch_counter["fwd"] == 1


def test_output_shapes_batch_first_bidirectional(triton_backend):
    ours = gru_triton.GRU(3, 9, num_layers=2, batch_first=True, bidirectional=True).to(DEVICE)
    out, h_n = ours(torch.randn(4, 6, 3, device=DEVICE))
    assert out.shape == (4, 6, 18) and h_n.shape == (4, 4, 9)


def test_import_has_no_side_effects():
    import subprocess
    import sys

    # Importing patches nothing in torch.nn and prints nothing.
    code = ("import torch; before = torch.nn.GRU; import gru_triton; "
            "assert torch.nn.GRU is before; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("flag,expected", [("tf32", "tf32"), ("ieee", "ieee")])
def test_fp32_precision_follows_the_cudnn_rnn_flag(flag, expected):
    from gru_triton import dispatch

    rnn = torch.backends.cudnn.rnn
    saved_rnn, saved_matmul = rnn.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    try:
        rnn.fp32_precision = flag
        # The matmul flag says the opposite: nn.GRU ignores it, and so do we.
        torch.backends.cuda.matmul.fp32_precision = "ieee" if flag == "tf32" else "tf32"
        assert dispatch.fp32_dot_precision(torch.device("cuda")) == expected
        assert dispatch.fp32_dot_precision(torch.device("cpu")) == "ieee"
        before = torch.backends.cuda.matmul.fp32_precision
        with dispatch.gemm_precision(torch.device("cuda"), expected):
            assert torch.backends.cuda.matmul.fp32_precision == expected
        assert torch.backends.cuda.matmul.fp32_precision == before
    finally:
        rnn.fp32_precision = saved_rnn
        torch.backends.cuda.matmul.fp32_precision = saved_matmul
