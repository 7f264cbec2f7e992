"""PackedSequence input and ``lengths=`` on the kernels, against nn.GRU with packed input."""

import pytest
import torch
from torch.nn.utils.rnn import (
    PackedSequence,
    pack_padded_sequence,
    pack_sequence,
    pad_packed_sequence,
)

import gru_triton
from gru_triton import dispatch
from tests.helpers import DEVICE, assert_close

# T, lengths (one per row, in the caller's order), I, H, layers, bidirectional, with_h0
CASES = [
    (5, [5, 3, 1], 3, 7, 1, False, False),
    (6, [2, 6, 4, 1], 4, 19, 2, True, True),
    (4, [4, 4], 2, 33, 1, True, False),  # all full length: lengths still go through
    (7, [1] * 17 + [7, 3, 5], 3, 5, 1, False, True),  # second batch tile: partly finished
    (3, [3] * 16 + [1, 1, 1], 2, 16, 2, False, True),  # a tile finished after one step
    # Five batch tiles (two on grid_sync with tensor cores): the fourth partly finished, the
    # last (the shortest rows, once sorted) finished after one step.
    (5, [5] * 60 + [4] * 4 + [1] * 6, 2, 6, 1, False, True),
]


def _case_id(c):
    T, lengths, I, H, L, bi, h0 = c
    return f"T{T}-B{len(lengths)}-I{I}-H{H}-L{L}{'-bi' if bi else ''}{'-h0' if h0 else ''}"


def _modules(I, H, L, bi, batch_first=False, dtype=torch.float32):
    ref = torch.nn.GRU(I, H, L, bidirectional=bi, batch_first=batch_first).to(DEVICE, dtype)
    ours = gru_triton.GRU(I, H, L, bidirectional=bi, batch_first=batch_first).to(DEVICE, dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _grads(module, leaves, loss):
    params = list(module.parameters())
    return torch.autograd.grad(loss, leaves + params)


@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("path", dispatch.PATHS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_packed_sequence_matches_nn_gru(case, path, enforce_sorted, triton_backend,
                                        launch_counter):
    T, lengths, I, H, L, bi, with_h0 = case
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    B, D = len(lengths), 2 if bi else 1
    ref, ours = _modules(I, H, L, bi)
    x = torch.randn(T, B, I, device=DEVICE, requires_grad=True)
    h0 = torch.randn(L * D, B, H, device=DEVICE, requires_grad=True) if with_h0 else None
    leaves = [x] + ([h0] if with_h0 else [])
    results = []
    for module in (ref, ours):
        packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=enforce_sorted)
        with dispatch.force_path(path):
            out, h_n = module(packed, h0)
        assert isinstance(out, PackedSequence)
        weights = torch.randn_like(out.data, generator=torch.Generator(DEVICE).manual_seed(1))
        loss = (out.data * weights).sum() + (h_n * h_n).sum()
        results.append((out, h_n, _grads(module, leaves, loss)))
    (ref_out, ref_h_n, ref_grads), (out, h_n, grads) = results
    assert torch.equal(out.batch_sizes, ref_out.batch_sizes)
    for field in ("sorted_indices", "unsorted_indices"):
        theirs, mine = getattr(ref_out, field), getattr(out, field)
        assert (theirs is None and mine is None) or torch.equal(theirs, mine)
    assert_close(out.data, ref_out.data, what="output")
    assert_close(h_n, ref_h_n, what="h_n")
    for index, (g, ref_g) in enumerate(zip(grads, ref_grads, strict=True)):
        assert_close(g, ref_g, what=f"gradient {index}")
    layers_x_directions = L * D
    expected = layers_x_directions * (T if path == "per_step" else 1)
    assert launch_counter == {"fwd": expected, "bwd": expected}


@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
@pytest.mark.parametrize("case", CASES[:3], ids=_case_id)
def test_lengths_equal_packing_and_unpacking(case, batch_first, triton_backend):
    T, lengths, I, H, L, bi, with_h0 = case
    B, D = len(lengths), 2 if bi else 1
    ref, ours = _modules(I, H, L, bi, batch_first=batch_first)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), device=DEVICE)
    h0 = torch.randn(L * D, B, H, device=DEVICE) if with_h0 else None
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    packed = pack_padded_sequence(x_ref, torch.tensor(lengths), batch_first=batch_first,
                                  enforce_sorted=False)
    ref_packed, ref_h_n = ref(packed, h0)
    ref_out, _ = pad_packed_sequence(ref_packed, batch_first=batch_first, total_length=T)
    out, h_n = ours(x_ours, h0, lengths=lengths)
    assert_close(out, ref_out, what="output")
    assert_close(h_n, ref_h_n, what="h_n")
    time_dim = 1 if batch_first else 0
    steps = torch.arange(T, device=DEVICE).view([-1 if d == time_dim else 1 for d in range(3)])
    past_end = steps >= torch.tensor(lengths, device=DEVICE).view(
        [-1 if d == 1 - time_dim else 1 for d in range(3)])
    assert (out.masked_select(past_end) == 0).all()
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()
    (ref_out * grad_out).sum().backward()
    assert_close(x_ours.grad, x_ref.grad, what="grad of x")
    for (name, p), ref_p in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert_close(p.grad, ref_p.grad, what=f"grad of {name}")


def test_lengths_as_list_cpu_tensor_or_device_tensor_agree(triton_backend):
    ours = gru_triton.GRU(3, 6).to(DEVICE)
    x = torch.randn(4, 3, 3, device=DEVICE)
    results = [ours(x, lengths=lengths) for lengths in
               ([4, 2, 3], torch.tensor([4, 2, 3]), torch.tensor([4, 2, 3], device=DEVICE),
                torch.tensor([4, 2, 3], dtype=torch.int32))]
    for out, h_n in results[1:]:
        assert torch.equal(out, results[0][0]) and torch.equal(h_n, results[0][1])


def test_padding_contents_do_not_matter(triton_backend):
    """Whatever sits past a length (even NaN) changes nothing, gradients included."""
    ours = gru_triton.GRU(3, 6, 2).to(DEVICE)
    lengths = [4, 1, 3]
    x = torch.randn(4, 3, 3, device=DEVICE)
    garbage = x.clone()
    for b, n in enumerate(lengths):
        garbage[n:, b] = float("nan")
    results = []
    for data in (x, garbage):
        data = data.clone().requires_grad_()
        out, h_n = ours(data, lengths=lengths)
        (out.sum() + h_n.sum()).backward()
        results.append((out, h_n, torch.nan_to_num(data.grad, nan=-1.0),
                        [p.grad.clone() for p in ours.parameters()]))
        ours.zero_grad()
    (out, h_n, dx, dw), (out2, h_n2, dx2, dw2) = results
    assert torch.equal(out, out2) and torch.equal(h_n, h_n2) and torch.equal(dx, dx2)
    assert all(torch.equal(a, b) for a, b in zip(dw, dw2, strict=True))


def test_unsorted_packed_h_n_is_in_caller_order(triton_backend):
    """Each row of h_n is that sequence's own state: run the sequences one at a time."""
    ours = gru_triton.GRU(2, 5).to(DEVICE)
    seqs = [torch.randn(n, 2, device=DEVICE) for n in (2, 5, 3)]
    _, h_n = ours(pack_sequence(seqs, enforce_sorted=False))
    for b, seq in enumerate(seqs):
        _, alone = ours(seq.unsqueeze(1))
        assert_close(h_n[:, b], alone[:, 0], what=f"h_n of sequence {b}")


def test_packed_reference_backend_matches_kernels(triton_backend):
    ours = gru_triton.GRU(3, 9, bidirectional=True).to(DEVICE)
    packed = pack_sequence([torch.randn(n, 3, device=DEVICE) for n in (4, 2, 3)],
                           enforce_sorted=False)
    out, h_n = ours(packed)
    gru_triton.set_backend("reference")
    ref_out, ref_h_n = ours(packed)
    assert_close(out.data, ref_out.data, what="output")
    assert_close(h_n, ref_h_n, what="h_n")


BAD_LENGTHS = {
    "zero": ([3, 0, 2], "must lie in \\[1, 4\\]"),
    "longer_than_T": ([3, 5, 2], "must lie in \\[1, 4\\]"),
    "negative": (torch.tensor([3, -1, 2]), "must lie in \\[1, 4\\]"),
    "wrong_count": ([3, 2], "one length per sequence \\(3\\)"),
    "two_dimensional": (torch.ones(3, 1, dtype=torch.int64), "one length per sequence"),
    "float_tensor": (torch.tensor([3.0, 2.0, 1.0]), "must be integers"),
    "float_list": ([3, 2.5, 1], "must be integers"),
    "bool_list": ([True, True, True], "must be integers"),
    "not_a_sequence": (3, "1-D sequence of integers"),
}


@pytest.mark.parametrize("lengths,message", BAD_LENGTHS.values(), ids=BAD_LENGTHS.keys())
def test_bad_lengths_raise_value_error(lengths, message, triton_backend, launch_counter):
    ours = gru_triton.GRU(2, 4).to(DEVICE)
    with pytest.raises(ValueError, match=message):
        ours(torch.randn(4, 3, 2, device=DEVICE), lengths=lengths)
    assert launch_counter == {"fwd": 0, "bwd": 0}


def test_lengths_with_packed_input_is_refused(triton_backend):
    packed = pack_sequence([torch.randn(3, 2), torch.randn(2, 2)])
    with pytest.raises(ValueError, match="PackedSequence carries its own"):
        gru_triton.GRU(2, 4)(packed, lengths=[3, 2])


def test_packed_hx_of_wrong_batch_gives_nn_gru_error(triton_backend):
    packed = pack_sequence([torch.randn(3, 2), torch.randn(2, 2)])
    ref, ours = torch.nn.GRU(2, 4), gru_triton.GRU(2, 4)
    h0 = torch.zeros(1, 3, 4)
    with pytest.raises(RuntimeError) as theirs:
        ref(packed, h0)
    with pytest.raises(RuntimeError) as mine:
        ours(packed, h0)
    assert str(mine.value) == str(theirs.value)


def test_packed_input_to_a_batch_first_module(triton_backend):
    """batch_first does not apply to packed data (nn.GRU ignores it there too)."""
    ref, ours = _modules(3, 11, 2, True, batch_first=True)
    packed = pack_sequence([torch.randn(n, 3, device=DEVICE) for n in (2, 6, 4)],
                           enforce_sorted=False)
    out, h_n = ours(packed)
    ref_out, ref_h_n = ref(packed)
    assert_close(out.data, ref_out.data, what="output")
    assert_close(h_n, ref_h_n, what="h_n")
