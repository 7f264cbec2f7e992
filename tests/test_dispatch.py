"""The dispatcher's table, and its "cudnn" route: PyTorch's own RNN op, exactly as nn.GRU
calls it, for the shapes where no kernel path was measured faster than cuDNN."""

import pytest
import torch

import gru_triton
from gru_triton import dispatch
from tests.helpers import DEVICE, assert_close

CUDA = torch.device("cuda")  # only the table is asked; nothing runs on it


@pytest.mark.parametrize(("dots", "H", "B", "expected"), [
    # 16-bit: grid_sync up to H 1024 at B <= 64, and up to H 2048 at B <= 16.
    ("16-bit", 32, 64, "grid_sync"), ("16-bit", 512, 64, "grid_sync"),
    ("16-bit", 1024, 64, "grid_sync"), ("16-bit", 1025, 16, "grid_sync"),
    ("16-bit", 2048, 16, "grid_sync"), ("16-bit", 256, 65, "cudnn"),
    ("16-bit", 1025, 17, "cudnn"), ("16-bit", 2048, 64, "cudnn"), ("16-bit", 2049, 1, "cudnn"),
    # tf32: cuDNN's own fp32 kernel is fastest under H 256; grid_sync from 256 to 512.
    ("tf32", 128, 1, "cudnn"), ("tf32", 255, 16, "cudnn"), ("tf32", 256, 64, "grid_sync"),
    ("tf32", 512, 64, "grid_sync"), ("tf32", 512, 65, "cudnn"), ("tf32", 1024, 16, "cudnn"),
    # IEEE fp32 (and fp64): cuDNN at every shape.
    ("ieee", 64, 1, "cudnn"), ("ieee", 256, 16, "cudnn"), ("ieee", 2048, 64, "cudnn"),
])
def test_table_on_cuda(dots, H, B, expected):
    assert dispatch.recurrence_path(H, B, CUDA, dots=dots) == expected
    # Lengths only on the device, or the "triton" backend (the kernels promised): the
    # fastest kernel path measured, per_step only for IEEE dots at B > 16, H >= 1024.
    kernels = expected
    if expected == "cudnn":
        kernels = "per_step" if dots == "ieee" and B > 16 and H >= 1024 else "grid_sync"
    assert dispatch.recurrence_path(H, B, CUDA, dots=dots, lengths=True) == kernels
    gru_triton.set_backend("triton")
    assert dispatch.recurrence_path(H, B, CUDA, dots=dots) == kernels


@pytest.mark.parametrize("dots", ["16-bit", "tf32", "ieee"])
def test_reset_before_is_always_persistent(dots):
    for H, B in ((32, 1), (256, 64), (1024, 16), (2048, 256)):
        assert dispatch.recurrence_path(H, B, CUDA, dots=dots, reset_after=False) == "persistent"


@pytest.mark.parametrize(("dots", "H", "B", "training", "inference"), [
    # IEEE fp32 as three TF32 products: the forward won at H 256-512, B 16/64, the forward +
    # backward did not.
    ("tf32x3", 256, 16, "cudnn", "grid_sync"), ("tf32x3", 512, 64, "cudnn", "grid_sync"),
    ("tf32x3", 1024, 16, "cudnn", "cudnn"), ("tf32x3", 512, 65, "cudnn", "cudnn"),
    # Where both won, inference keeps grid_sync; where neither did, cuDNN.
    ("16-bit", 512, 64, "grid_sync", "grid_sync"), ("16-bit", 2048, 64, "cudnn", "cudnn"),
    ("tf32", 512, 64, "grid_sync", "grid_sync"), ("tf32", 1024, 16, "cudnn", "cudnn"),
    ("ieee", 256, 16, "cudnn", "cudnn"),
])
def test_inference_adds_the_forward_wins(dots, H, B, training, inference):
    assert dispatch.recurrence_path(H, B, CUDA, dots=dots) == training
    assert dispatch.recurrence_path(H, B, CUDA, dots=dots, training=True) == training
    assert dispatch.recurrence_path(H, B, CUDA, dots=dots, training=False) == inference


def _recorded_training(monkeypatch):
    """The ``training`` of every dispatch.recurrence_path call, in order."""
    seen = []
    real = dispatch.recurrence_path

    def recording(*args, training=True, **kwargs):
        seen.append(training)
        return real(*args, training=training, **kwargs)

    monkeypatch.setattr(dispatch, "recurrence_path", recording)
    return seen


def test_modules_ask_the_table_as_inference_only_where_nothing_is_saved(triton_backend,
                                                                       monkeypatch):
    """The module, each of its layers and the cell ask the dispatcher with training=False
    exactly where autograd keeps nothing for a backward (no_grad, inference_mode, or no
    tensor requiring grad), whatever module.training says: that decides whether the
    forward-only wins apply."""
    seen = _recorded_training(monkeypatch)
    gru = gru_triton.GRU(3, 8, 2, bidirectional=True).to(DEVICE)
    cell = gru_triton.GRUCell(3, 8).to(DEVICE)
    x = torch.randn(4, 2, 3, device=DEVICE)
    xc = torch.randn(2, 3, device=DEVICE)

    def asked(call):
        seen.clear()
        call()
        assert seen  # the module and its layers did ask
        return set(seen)

    with torch.no_grad():
        assert asked(lambda: gru(x)) == {False}
        assert asked(lambda: cell(xc)) == {False}
    with torch.inference_mode():
        assert asked(lambda: gru(x)) == {False}
    assert asked(lambda: gru(x)) == {True}
    assert asked(lambda: cell(xc)) == {True}
    gru.eval()
    assert asked(lambda: gru(x)) == {True}  # eval mode still builds a graph
    gru.requires_grad_(False)
    cell.requires_grad_(False)
    assert asked(lambda: gru(x)) == {False}
    assert asked(lambda: cell(xc)) == {False}
    assert asked(lambda: gru(x.requires_grad_())) == {True}
    assert asked(lambda: gru(x.detach(), torch.zeros(4, 2, 8, requires_grad=True))) == {True}


def test_table_rejects_unknown_dots():
    with pytest.raises(ValueError, match="dots must be one of"):
        dispatch.recurrence_path(64, 1, CUDA, dots="fp8")


def test_layer_dispatch_follows_dtype_and_rnn_precision():
    """The functional layer's choice: 16-bit weights, fp32 under the RNN TF32 flag, fp32
    under IEEE, fp64 with IEEE's row."""
    from gru_triton.functional import _path

    def path(dtype):
        return _path(dtype, 512, 16, CUDA, lengths=False, reset_after=True)

    assert path(torch.bfloat16) == path(torch.float16) == "grid_sync"
    with dispatch.rnn_fp32_precision("tf32"):
        assert path(torch.float32) == "grid_sync"
    with dispatch.rnn_fp32_precision("ieee"):
        assert path(torch.float32) == "cudnn"
    assert path(torch.float64) == "cudnn"


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


def test_tf32x3_only_under_the_ieee_flag():
    """fp32 weights run "tf32x3" dots (IEEE accuracy on tensor cores) only where nn.GRU's flag
    says IEEE, and then only where the tables' "tf32x3" rows (measured: the forward won at
    H 256-512, B <= 64, forward + backward did not) or force_ieee_dots say; under the TF32
    flag they stay TF32, other dtypes have one precision; the input-projection and
    weight-gradient GEMMs stay IEEE."""
    from gru_triton.functional import _path

    with dispatch.rnn_fp32_precision("ieee"):
        for H, B in ((256, 1), (256, 64), (384, 16), (512, 64)):
            assert dispatch.dot_precision(torch.float32, CUDA, H, B) == "ieee"
            assert dispatch.dot_precision(torch.float32, CUDA, H, B, training=False) == "tf32x3"
            assert _path(torch.float32, H, B, CUDA, lengths=False, reset_after=True) == "cudnn"
            assert _path(torch.float32, H, B, CUDA, lengths=False, reset_after=True,
                         training=False) == "grid_sync"
        for H, B in ((255, 16), (513, 16), (1024, 16), (512, 65)):
            assert dispatch.dot_precision(torch.float32, CUDA, H, B, training=False) == "ieee"
            assert _path(torch.float32, H, B, CUDA, lengths=False, reset_after=True,
                         training=False) == "cudnn"
        assert dispatch.dot_precision(torch.float32, torch.device("cpu"), 512, 16,
                                      training=False) == "ieee"
        assert dispatch.dot_precision(torch.float64, CUDA, 512, 16, training=False) == "ieee"
        with dispatch.force_ieee_dots("tf32x3"):
            assert dispatch.dot_precision(torch.float32, torch.device("cpu"), 1024, 1) == "tf32x3"
            assert dispatch.dot_precision(torch.float64, CUDA, 512, 16) == "ieee"
            assert dispatch.dot_precision(torch.bfloat16, CUDA, 512, 16) == "ieee"
            with dispatch.force_ieee_dots("ieee"):
                assert dispatch.dot_precision(torch.float32, CUDA, 512, 16,
                                              training=False) == "ieee"
            assert dispatch.dot_precision(torch.float32, CUDA, 1024, 1) == "tf32x3"
    with dispatch.rnn_fp32_precision("tf32"), dispatch.force_ieee_dots("tf32x3"):
        assert dispatch.dot_precision(torch.float32, CUDA, 512, 16) == "tf32"
    with pytest.raises(ValueError, match="'ieee' or 'tf32x3'"):
        with dispatch.force_ieee_dots("tf32"):
            pass
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    with dispatch.gemm_precision(CUDA, "tf32x3"):
        assert matmul.fp32_precision == "ieee"
    assert matmul.fp32_precision == before


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


@pytest.mark.parametrize(("mode", "programs", "backward", "path", "grad", "capturing",
                          "expected"), [
    ("inference", 64, 64, "grid_sync", False, False, True),  # bf16 B 16, H 1024: 2 x 64 <= 132
    ("inference", 66, 66, "grid_sync", False, False, True),
    ("inference", 67, 0, "grid_sync", False, False, False),  # 134 > 132: one waits on the other
    ("inference", 0, 0, "grid_sync", False, False, False),   # not co-resident: per-step launches
    ("inference", 64, 64, "cudnn", False, False, False),
    ("inference", 67, 67, "persistent", False, False, True),  # no program waits on another
    ("inference", 64, 64, "grid_sync", True, False, False),  # saved for backward: "training" only
    ("inference", 64, 64, "grid_sync", False, True, False),  # a CUDA graph being captured
    ("never", 64, 64, "grid_sync", False, False, False),
    ("training", 64, 64, "grid_sync", True, False, True),
    ("training", 64, 67, "grid_sync", True, False, False),   # the backward's grids would not fit
    ("training", 64, 0, "grid_sync", True, False, True),     # its launches per step never wait
], ids=["fits", "fits-exactly", "too-many", "per-step", "cudnn", "persistent", "training",
        "capturing", "never", "training-fits", "training-backward-too-many",
        "training-backward-per-step"])
def test_bidirectional_directions_at_once_only_where_both_grids_fit(
        mode, programs, backward, path, grad, capturing, expected, monkeypatch):
    """A bidirectional layer's reverse direction runs beside the forward one, on a side
    stream, only on the grid-synchronised path where both directions' grids are resident
    together (132 SMs here): two grids that wait at barriers must never take SMs from each
    other. With autograd saving for backward only in the "training" mode (the default), and
    then the backward's grids must fit together too. The rule alone, with CUDA stood in for
    (tests/test_cuda.py runs it)."""
    import types

    from gru_triton import functional

    monkeypatch.setattr(functional, "_path", lambda *args, **kwargs: path)
    monkeypatch.setattr(functional, "grid_sync_programs",
                        lambda *args, forward=True: programs if forward else backward)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: capturing)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: types.SimpleNamespace(multi_processor_count=132))
    x = types.SimpleNamespace(device=CUDA, shape=(40, 16, 8), requires_grad=False)
    weights = [torch.zeros(3 * 1024, 8), torch.zeros(3 * 1024, 1024)]
    for w in weights:
        w.requires_grad_(grad)
    hx = torch.zeros(2, 16, 1024)
    with dispatch.directions_at_once(mode):
        assert functional._directions_at_once(x, hx, weights, lengths=None,
                                              reset_after=True) is expected
        with torch.no_grad():  # inference with weights that require grad: nothing is saved
            inference = functional._directions_at_once(x, hx, weights, lengths=None,
                                                       reset_after=True)
        fits = 0 < 2 * programs <= 132 if path == "grid_sync" else path == "persistent"
        assert inference is (mode != "never" and fits and not capturing)
        cpu = types.SimpleNamespace(device=torch.device("cpu"), shape=(40, 16, 8),
                                    requires_grad=False)
        assert not functional._directions_at_once(cpu, hx, weights, lengths=None,
                                                  reset_after=True)
    with pytest.raises(ValueError, match="mode must be one of"):
        with dispatch.directions_at_once("always"):
            pass


def test_grid_sync_programs_is_the_launch_plans_grid(monkeypatch):
    """What the bidirectional rule reads: the programs of grid_sync's one launch on 132 SMs,
    as the launchers plan it (bf16 B 16, H 1024: one 16-row tile × 64 chunks, so both
    directions fit at once; B 64, H 512: four 16-row tiles × 32, so they do not). The
    backward takes 16-row tiles from H 512 (kernels.gru._sixteen_bit_forms), the batch's
    tile of up to 64 rows below it."""
    from gru_triton.kernels import gru as gru_kernels

    monkeypatch.setattr(gru_kernels, "_sm_count", lambda device: 132)
    # (B, H, forward's programs, backward's)
    for B, H, programs, backward in ((16, 1024, 64, 64), (64, 512, 128, 128), (16, 256, 16, 16),
                                     (32, 512, 64, 64), (64, 128, 32, 8)):
        w_hh = torch.empty(3 * H, H, dtype=torch.bfloat16)
        cpu = torch.device("cpu")
        assert gru_kernels.grid_sync_programs(w_hh, B, cpu, "ieee") == programs
        assert gru_kernels.grid_sync_programs(w_hh, B, cpu, "ieee", forward=False) == backward


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
def test_bidirectional_directions_at_once_plumbing(lengths, monkeypatch, triton_backend):
    """The at-once order of gru() with CUDA's streams stood in for by recorders, in the
    interpreter: per layer the side stream waits for the caller's, the reverse direction
    runs inside the side stream's context, then the caller's waits for the side; what the
    side reads is recorded on it, its results on the caller's; and the numbers are the
    sequential run's, bit for bit (2 layers, packed lengths or not)."""
    import contextlib

    from gru_triton import functional

    events = []

    class Stream:
        def __init__(self, name):
            self.name = name

        def wait_stream(self, other):
            events.append(("wait", self.name, other.name))

    main, side = Stream("main"), Stream("side")
    current = [main]

    @contextlib.contextmanager
    def stream(s):
        events.append(("enter", s.name))
        current.append(s)
        yield
        current.pop()
        events.append(("exit", s.name))

    recorded = []
    real_layer = functional._layer_triton

    def layer(x, h0, w_ih, w_hh, b_ih, b_hh, reverse, *args):
        events.append(("layer", "reverse" if reverse else "forward", current[-1].name))
        return real_layer(x, h0, w_ih, w_hh, b_ih, b_hh, reverse, *args)

    ours = gru_triton.GRU(5, 12, 2, bidirectional=True).to(DEVICE)
    x = torch.randn(6, 3, 5, device=DEVICE)
    lens = torch.tensor([6, 2, 4]) if lengths else None
    with torch.no_grad():
        expected = ours(x, lengths=lens)
        monkeypatch.setattr(functional, "_directions_at_once", lambda *a, **k: True)
        monkeypatch.setattr(functional, "_side_stream", lambda device: side)
        monkeypatch.setattr(functional, "_layer_triton", layer)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: main)
        monkeypatch.setattr(torch.cuda, "stream", stream)
        monkeypatch.setattr(torch.Tensor, "record_stream",
                            lambda t, s: recorded.append((tuple(t.shape), s.name)))
        got = ours(x, lengths=lens)
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g, e)
    per_layer = [("wait", "side", "main"), ("layer", "forward", "main"), ("enter", "side"),
                 ("layer", "reverse", "side"), ("exit", "side"), ("wait", "main", "side")]
    assert events == per_layer * 2
    # Per layer: its input, hx, the reverse direction's 4 weights (and lengths) on the side;
    # the reverse output and h_n on the caller's.
    reads = 7 if lengths else 6
    assert [name for _, name in recorded] == (["side"] * reads + ["main"] * 2) * 2
    assert recorded[reads:reads + 2] == [((6, 3, 12), "main"), ((3, 12), "main")]
