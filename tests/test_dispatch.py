"""The dispatcher's table, and its "cudnn" route: PyTorch's own RNN op, exactly as nn.GRU
calls it, for the shapes where no kernel path is expected to beat cuDNN."""

import pytest
import torch

import gru_triton
from gru_triton import dispatch
from tests.helpers import DEVICE, assert_close

CUDA = torch.device("cuda")  # only the table is asked; nothing runs on it


@pytest.mark.parametrize(("H", "lengths", "reset_after", "expected"), [
    (32, False, True, "persistent"),
    (256, False, True, "persistent"),
    (257, False, True, "cudnn"),
    (1024, False, True, "cudnn"),
    (1024, True, True, "per_step"),
    (1024, False, False, "persistent"),
])
def test_table_on_cuda(H, lengths, reset_after, expected):
    assert dispatch.recurrence_path(H, 16, CUDA, reset_after=reset_after,
                                    lengths=lengths) == expected
    # The "triton" backend promises the kernels: per_step where auto would hand over.
    gru_triton.set_backend("triton")
    kernels_only = "per_step" if expected == "cudnn" else expected
    assert dispatch.recurrence_path(H, 16, CUDA, reset_after=reset_after,
                                    lengths=lengths) == kernels_only


@pytest.mark.parametrize(("H", "B", "expected"), [
    (64, 64, "persistent"), (128, 8, "persistent"), (128, 16, "cudnn"), (256, 1, "persistent"),
    (256, 8, "cudnn"),
])
def test_table_for_ieee_fp32_on_cuda(H, B, expected):
    """Without tensor cores one program per batch tile does all the FMAs of a step: the
    persistent path only while H·H·min(B, 16) <= 128·128·8."""
    assert dispatch.recurrence_path(H, B, CUDA, fp32_ieee=True) == expected
    with_lengths = "per_step" if expected == "cudnn" else expected
    assert dispatch.recurrence_path(H, B, CUDA, fp32_ieee=True, lengths=True) == with_lengths


def test_table_on_cpu_and_forced_paths():
    cpu = torch.device("cpu")
    assert dispatch.recurrence_path(1024, 16, cpu) == "persistent"
    with dispatch.force_path("cudnn"):
        assert dispatch.recurrence_path(32, 16, cpu) == "cudnn"
        # cuDNN would need the lengths on the host: the kernels run instead.
        assert dispatch.recurrence_path(32, 16, cpu, lengths=True) == "per_step"
        assert dispatch.recurrence_path(32, 16, cpu, reset_after=False) == "persistent"
    with pytest.raises(ValueError, match="path must be one of"):
        with dispatch.force_path("fastest"):
            pass


def _grads(module, x, h0):
    x = x.detach().clone().requires_grad_(True)
    h0 = h0.detach().clone().requires_grad_(True)
    out, h_n = module(x, h0)
    (out.square().sum() + h_n.sum()).backward()
    return [out, h_n, x.grad, h0.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_cudnn_route_is_nn_grus_own_op(training, triton_backend, launch_counter):
    """Bit for bit nn.GRU, dropout between layers included (same seed, same draws), no
    kernel launched; backward also works in eval mode, as on the kernel paths."""
    ref = torch.nn.GRU(5, 7, 3, dropout=0.4, bidirectional=True, batch_first=True).to(DEVICE)
    ours = gru_triton.GRU(5, 7, 3, dropout=0.4, bidirectional=True, batch_first=True).to(DEVICE)
    ours.load_state_dict(ref.state_dict())
    ref.train(training)
    ours.train(training)
    x = torch.randn(4, 6, 5, device=DEVICE)
    h0 = torch.randn(6, 4, 7, device=DEVICE)
    with dispatch.force_path("cudnn"):
        torch.manual_seed(7)
        got = _grads(ours, x, h0)
    if not training:
        # cuDNN refuses backward in eval mode; train mode without dropout is the same function.
        ref.dropout = 0.0
        ref.train(True)
    torch.manual_seed(7)
    expected = _grads(ref, x, h0)
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g, e)
    assert launch_counter == {"fwd": 0, "bwd": 0}


@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
def test_cudnn_route_with_lengths_packs_on_the_host(batch_first, triton_backend, launch_counter):
    """lengths= goes to nn.GRU's op as a packed sequence: the same numbers as packing by
    hand, zeros past each length, h_n in the caller's order, no kernel launched."""
    ref = torch.nn.GRU(3, 9, 2, bidirectional=True, batch_first=batch_first).to(DEVICE)
    ours = gru_triton.GRU(3, 9, 2, bidirectional=True, batch_first=batch_first).to(DEVICE)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 5, 3, device=DEVICE) if batch_first else torch.randn(5, 3, 3, device=DEVICE)
    h0 = torch.randn(4, 3, 9, device=DEVICE)
    lengths = [5, 2, 4]
    with dispatch.force_path("cudnn"):
        out, h_n = ours(x, h0, lengths=lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=batch_first,
                                                     enforce_sorted=False)
    ref_out, ref_h_n = ref(packed, h0)
    ref_out, _ = torch.nn.utils.rnn.pad_packed_sequence(ref_out, batch_first=batch_first,
                                                        total_length=5)
    assert torch.equal(out, ref_out) and torch.equal(h_n, ref_h_n)
    assert launch_counter == {"fwd": 0, "bwd": 0}


def test_cudnn_route_with_packed_input(triton_backend, launch_counter):
    from torch.nn.utils.rnn import pack_sequence

    ref = torch.nn.GRU(3, 9, bidirectional=True).to(DEVICE)
    ours = gru_triton.GRU(3, 9, bidirectional=True).to(DEVICE)
    ours.load_state_dict(ref.state_dict())
    seqs = [torch.randn(n, 3, device=DEVICE, requires_grad=True) for n in (4, 6, 1)]
    packed = pack_sequence(seqs, enforce_sorted=False)
    h0 = torch.randn(2, 3, 9, device=DEVICE)
    with dispatch.force_path("cudnn"):
        out, h_n = ours(packed, h0)
    ref_out, ref_h_n = ref(packed, h0)
    assert torch.equal(out.data, ref_out.data) and torch.equal(h_n, ref_h_n)
    assert torch.equal(out.unsorted_indices, ref_out.unsorted_indices)
    (out.data.sum() + h_n.sum()).backward()
    assert all(s.grad is not None for s in seqs)
    assert launch_counter == {"fwd": 0, "bwd": 0}


def test_a_layer_called_directly_runs_the_kernels_where_auto_would_hand_over(launch_counter,
                                                                           triton_backend):
    """The functional layer has its lengths on the device only: packing them for cuDNN
    would synchronise, so there the table says per_step."""
    from gru_triton.functional import gru

    ref = torch.nn.GRU(3, 9).to(DEVICE)
    x = torch.randn(5, 3, 3, device=DEVICE)
    lengths = torch.tensor([5, 2, 4], dtype=torch.int32, device=DEVICE)
    with dispatch.force_path("cudnn"):
        out, h_n = gru(x, torch.zeros(1, 3, 9, device=DEVICE), ref._flat_weights,
                       has_bias=True, num_layers=1, dropout=0.0, training=False,
                       bidirectional=False, batch_first=False, backend="triton",
                       lengths=lengths)
    assert launch_counter["fwd"] == 5  # per_step: one launch per step
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, [5, 2, 4], enforce_sorted=False)
    assert_close(h_n, ref(packed)[1], what="h_n")


def test_cudnn_route_for_the_cell(triton_backend, launch_counter):
    ref = torch.nn.GRUCell(4, 6).to(DEVICE)
    ours = gru_triton.GRUCell(4, 6).to(DEVICE)
    ours.load_state_dict(ref.state_dict())
    x, h = torch.randn(3, 4, device=DEVICE), torch.randn(3, 6, device=DEVICE)
    with dispatch.force_path("cudnn"):
        got = ours(x, h)
    assert torch.equal(got, ref(x, h))  # nn.GRUCell's own op
    assert launch_counter == {"fwd": 0, "bwd": 0}


def test_cudnn_route_compiles_without_graph_break(triton_backend):
    torch._dynamo.reset()
    model = gru_triton.GRU(3, 8, 2, batch_first=True, bidirectional=True).to(DEVICE)
    x = torch.randn(4, 5, 3, device=DEVICE)
    with dispatch.force_path("cudnn"):
        expected = model(x)[0]
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        got = compiled(x)[0]
        got.sum().backward()
    assert_close(got, expected, what="compiled output")
    assert all(p.grad is not None for p in model.parameters())


def test_rnn_fp32_precision_sets_and_restores_the_flag_nn_gru_follows():
    before = dispatch.fp32_dot_precision(CUDA)
    for value in ("tf32", "ieee"):
        with dispatch.rnn_fp32_precision(value):
            assert dispatch.fp32_dot_precision(CUDA) == value
    assert dispatch.fp32_dot_precision(CUDA) == before
    with pytest.raises(ValueError, match="'ieee' or 'tf32'"):
        with dispatch.rnn_fp32_precision("highest"):
            pass


def test_compiled_lengths_take_the_kernels_where_the_route_would_pack(triton_backend):
    """torch.compile(fullgraph=True) cannot trace packing: under it, lengths= runs on the
    kernels (which trace) even where the dispatcher hands eager calls to nn.GRU's op."""
    torch._dynamo.reset()
    model = gru_triton.GRU(3, 8, 2, batch_first=True, bidirectional=True).to(DEVICE)
    x = torch.randn(4, 5, 3, device=DEVICE)
    lengths = [5, 2, 4, 1]
    with dispatch.force_path("cudnn"):
        expected = model(x, lengths=lengths)[0]
        got = torch.compile(lambda: model(x, lengths=lengths)[0], fullgraph=True,
                            backend="aot_eager")()
    assert_close(got, expected, what="compiled output")
