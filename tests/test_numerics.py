"""The kernels against torch.nn.GRU and the reference: outputs, h_n and every gradient."""

import random

import pytest
import torch
import triton
import triton.language as tl
from gru_triton.kernels.gru import _batch_tile

import gru_triton
from gru_triton import dispatch
from tests.helpers import DEVICE, assert_close, force_resident_form


def _make_configs():
    hand_picked = [
        # T, B, I, H, layers, bias, batch_first, bidirectional, with_h0
        (1, 1, 1, 1, 1, True, False, False, False),
        (1, 3, 5, 37, 1, True, False, False, True),
        (7, 3, 5, 37, 2, True, False, True, True),
        (4, 2, 3, 16, 1, False, True, False, True),
        (3, 17, 2, 33, 1, True, False, False, False),  # two batch tiles, ragged
        (5, 4, 6, 70, 3, True, True, True, False),  # three hidden chunks, ragged
        (6, 5, 37, 5, 2, False, False, True, True),  # I > H
        (3, 40, 3, 21, 1, True, False, True, True),  # three batch tiles, the last ragged
    ]
    rng = random.Random(20261124)
    drawn = []
    for _ in range(12):
        drawn.append((rng.choice([1, 2, 5, 9]), rng.choice([1, 2, 3, 7, 18]),
                      rng.choice([1, 3, 5, 8, 13]), rng.choice([2, 5, 16, 19, 37, 48]),
                      rng.choice([1, 2, 3]), rng.random() < 0.7, rng.random() < 0.5,
                      rng.random() < 0.5, rng.random() < 0.6))
    return hand_picked + drawn


CONFIGS = _make_configs()


def _config_id(c):
    T, B, I, H, L, bias, bf, bi, h0 = c
    return (f"T{T}-B{B}-I{I}-H{H}-L{L}{'-nobias' if not bias else ''}{'-bf' if bf else ''}"
            f"{'-bi' if bi else ''}{'-h0' if h0 else ''}")


def _pair(I, H, L, bias, batch_first, bidirectional, dtype=torch.float32):
    ref = torch.nn.GRU(I, H, L, bias=bias, batch_first=batch_first,
                       bidirectional=bidirectional).to(DEVICE, dtype)
    ours = gru_triton.GRU(I, H, L, bias=bias, batch_first=batch_first,
                          bidirectional=bidirectional).to(DEVICE, dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _run(module, x, h0, grad_out, grad_hn):
    x = x.detach().clone().requires_grad_(True)
    h0 = None if h0 is None else h0.detach().clone().requires_grad_(True)
    out, h_n = module(x, h0)
    loss = (out * grad_out).sum() + (h_n * grad_hn).sum()
    leaves = [x] + ([h0] if h0 is not None else []) + list(module.parameters())
    grads = torch.autograd.grad(loss, leaves)
    names = ["x"] + (["h0"] if h0 is not None else []) + [n for n, _ in module.named_parameters()]
    return out, h_n, dict(zip(names, grads, strict=True))


def _inputs(T, B, I, H, L, batch_first, bidirectional, with_h0, dtype=torch.float32):
    D = 2 if bidirectional else 1
    x = torch.randn((B, T, I) if batch_first else (T, B, I), device=DEVICE, dtype=dtype)
    h0 = torch.randn(L * D, B, H, device=DEVICE, dtype=dtype) if with_h0 else None
    out_shape = (B, T, D * H) if batch_first else (T, B, D * H)
    return (x, h0, torch.randn(out_shape, device=DEVICE, dtype=dtype),
            torch.randn(L * D, B, H, device=DEVICE, dtype=dtype))


def _compare(result, expected, dtype=torch.float32):
    out, h_n, grads = result
    ref_out, ref_h_n, ref_grads = expected
    assert_close(out, ref_out, dtype, "output")
    assert_close(h_n, ref_h_n, dtype, "h_n")
    assert grads.keys() == ref_grads.keys()
    for name in ref_grads:
        assert_close(grads[name], ref_grads[name], dtype, f"grad of {name}")


@pytest.mark.parametrize("path", dispatch.PATHS)
@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_matches_nn_gru_and_reference(config, path, triton_backend, launch_counter):
    T, B, I, H, L, bias, batch_first, bidirectional, with_h0 = config
    ref, ours = _pair(I, H, L, bias, batch_first, bidirectional)
    args = _inputs(T, B, I, H, L, batch_first, bidirectional, with_h0)
    with dispatch.force_path(path):
        result = _run(ours, *args)
    _compare(result, _run(ref, *args))

    # The kernels ran: per layer and direction one launch each way on the persistent path,
    # T launches each way on the per-step path (grid_sync is one launch, like persistent).
    launches = L * (2 if bidirectional else 1) * (T if path == "per_step" else 1)
    assert launch_counter == {"fwd": launches, "bwd": launches}

    gru_triton.set_backend("reference")
    _compare(result, _run(ours, *args))


@pytest.mark.parametrize("path", dispatch.PATHS)
@pytest.mark.parametrize("config", [CONFIGS[2], CONFIGS[4], CONFIGS[5]], ids=_config_id)
def test_tf32x3_module_matches_nn_gru(config, path, triton_backend, monkeypatch):
    """fp32 weights under nn.GRU's IEEE flag with the W_hh products as "tf32x3" (what the
    dispatcher picks where its tables' "tf32x3" rows say): the whole module, every gradient, against
    nn.GRU, with that precision reaching both kernels (the interpreter computes it exactly;
    its accuracy on a GPU is docs/performance.md's and test_cuda's)."""
    from gru_triton.kernels import gru as gru_kernels

    precisions = set()
    for kernel in (gru_kernels.gru_fwd_kernel, gru_kernels.gru_bwd_kernel):
        def recording_run(*args, _real=kernel.run, **kwargs):
            precisions.add(kwargs["DOT_PRECISION"])
            return _real(*args, **kwargs)

        monkeypatch.setattr(kernel, "run", recording_run)
    T, B, I, H, L, bias, batch_first, bidirectional, with_h0 = config
    ref, ours = _pair(I, H, L, bias, batch_first, bidirectional)
    args = _inputs(T, B, I, H, L, batch_first, bidirectional, with_h0)
    with dispatch.rnn_fp32_precision("ieee"), dispatch.force_ieee_dots("tf32x3"), \
            dispatch.force_path(path):
        result = _run(ours, *args)
    assert precisions == {"tf32x3"}
    _compare(result, _run(ref, *args))


@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_input(batch_first, triton_backend):
    ref, ours = _pair(5, 19, 2, True, batch_first, True)
    x = torch.randn(6, 5, device=DEVICE)
    h0 = torch.randn(4, 19, device=DEVICE)
    for hx in (None, h0):
        out, h_n = ours(x, hx)
        ref_out, ref_h_n = ref(x, hx)
        assert out.shape == (6, 38) and h_n.shape == (4, 19)
        assert_close(out, ref_out, what="output")
        assert_close(h_n, ref_h_n, what="h_n")


def test_fp64_matches_nn_gru(triton_backend):
    ref, ours = _pair(4, 21, 2, True, False, True, dtype=torch.float64)
    args = _inputs(5, 3, 4, 21, 2, False, True, True, dtype=torch.float64)
    _compare(_run(ours, *args), _run(ref, *args), torch.float64)


@pytest.mark.parametrize("T,B", [(43, 13), (73, 15)], ids=["559-rows", "1095-rows"])
def test_bias_gradients_over_more_rows_than_a_chunk(T, B, triton_backend):
    """The bias gradients are summed in 512-row chunks of the T·B rows (functional._sum_rows),
    then over the chunks' sums, plus a ragged remainder: every gradient still matches."""
    ref, ours = _pair(3, 6, 1, True, False, True)
    args = _inputs(T, B, 3, 6, 1, False, True, True)
    _compare(_run(ours, *args), _run(ref, *args))


def test_only_some_inputs_need_grad(triton_backend):
    """Backward with frozen weights and an input that needs no gradient."""
    ref, ours = _pair(3, 20, 1, True, False, False)
    for module in (ref, ours):
        module.weight_ih_l0.requires_grad_(False)
        module.bias_hh_l0.requires_grad_(False)
    x = torch.randn(4, 2, 3, device=DEVICE)
    h0 = torch.randn(1, 2, 20, device=DEVICE, requires_grad=True)
    grads = []
    for module in (ours, ref):
        out, _ = module(x, h0)
        grads.append(torch.autograd.grad(out.square().sum(),
                                         [h0, module.weight_hh_l0, module.bias_ih_l0]))
    for got, expected in zip(*grads, strict=True):
        assert_close(got, expected, what="grad")


def test_inference_saves_nothing_and_matches(triton_backend, launch_counter):
    ref, ours = _pair(3, 24, 1, True, False, False)
    x = torch.randn(5, 2, 3, device=DEVICE)
    with torch.no_grad():
        out, h_n = ours(x)
        ref_out, ref_h_n = ref(x)
    assert not out.requires_grad
    assert_close(out, ref_out, what="output")
    assert_close(h_n, ref_h_n, what="h_n")
    assert launch_counter["fwd"] == 1 and launch_counter["bwd"] == 0


@pytest.mark.parametrize("input_size,bidirectional", [(3, False), (18, False), (18, True)],
                         ids=["I3", "I=H", "I=H-bi"])
def test_backward_twice_with_retain_graph(input_size, bidirectional, triton_backend,
                                          monkeypatch):
    """The first backward keeps the graph, so it reads the saved activations and writes its
    gradients apart; the second frees it, so it writes the gate gradients over the
    activations and, where I = H, dx over the spent ghn buffer (both directions' dx then
    summed by autograd): the same gradients, bit for bit."""
    from gru_triton import functional

    over_ghn = []
    real = functional._dx_over_ghn

    def recording(*args):
        over_ghn.append(real(*args))
        return over_ghn[-1]

    monkeypatch.setattr(functional, "_dx_over_ghn", recording)
    _, ours = _pair(input_size, 18, 1, True, False, bidirectional)
    x = torch.randn(4, 2, input_size, device=DEVICE, requires_grad=True)
    out, _ = ours(x)
    loss = out.square().sum()
    wrt = [x, *ours.parameters()]
    kept = torch.autograd.grad(loss, wrt, retain_graph=True)
    assert not over_ghn  # the kept graph's backward does not consume
    freed = torch.autograd.grad(loss, wrt)
    for a, b in zip(kept, freed, strict=True):
        assert torch.equal(a, b)
    assert any(over_ghn) == (input_size == 18)


def test_dropout_between_layers_matches_nn_gru(triton_backend):
    """In training mode the dropout masks come from the same RNG draws as nn.GRU's (CPU)."""
    ref, ours = _pair(4, 17, 3, True, False, False)
    ref.dropout = ours.dropout = 0.5
    x = torch.randn(6, 3, 4, device=DEVICE)
    outs = []
    for module in (ref, ours):
        torch.manual_seed(7)
        outs.append(module(x)[0])
    if DEVICE.type == "cpu":
        assert_close(outs[1], outs[0], what="output with dropout")
    # Dropout changes the result relative to eval mode, and eval mode has no dropout.
    ours.eval()
    ref.eval()
    assert not torch.allclose(outs[1], ours(x)[0])
    assert_close(ours(x)[0], ref(x)[0], what="eval output")


def test_batch_of_zero_like_nn_gru(triton_backend):
    ref, ours = _pair(3, 8, 2, True, False, True)
    x = torch.randn(4, 0, 3, device=DEVICE)
    out, h_n = ours(x)
    ref_out, ref_h_n = ref(x)
    assert out.shape == ref_out.shape and h_n.shape == ref_h_n.shape


def _kernel_run(T, B, H, seed, lengths, reverse, path, precision):
    """One layer's recurrence through the launchers, forward then backward, on seeded fp32
    operands (T, B, H): [hs, activations, ghn, dgx, dghn, dh_direct]."""
    from gru_triton.kernels import gru as gru_kernels

    g = torch.Generator().manual_seed(seed)
    gates = torch.randn(T, B, 3 * H, generator=g).to(DEVICE)
    w_hh = (torch.randn(3 * H, H, generator=g) / H ** 0.5).to(DEVICE)
    b_hh = torch.randn(3 * H, generator=g).to(DEVICE)
    h0 = torch.randn(B, H, generator=g).to(DEVICE)
    dhs = torch.randn(T, B, H, generator=g).to(DEVICE)
    dhn = torch.randn(B, H, generator=g).to(DEVICE)
    hs, ghn = gru_kernels.gru_forward(gates, w_hh, b_hh, h0, lengths, reverse=reverse,
                                      save=True, path=path, dot_precision=precision)
    grads = gru_kernels.gru_backward(dhs, dhn, gates, ghn, hs, h0, w_hh, lengths, reverse=reverse,
                                     path=path, dot_precision=precision)
    return [hs, gates, ghn, *grads]


_KERNEL_RUN_NAMES = ["hs", "activations", "ghn", "dgx", "dghn", "dh_direct"]
# Two forms of the same TF32 products: both round their operands to TF32
# (kernels.gru._tf32_nearest), but h_{t-1} and the gate gradients they round come out of
# their own sums, so a value a summation order apart from the other form's can round to the
# next TF32 value (2^-11 relative): in the interpreter, whose dots are exact on the rounded
# operands, that put the forms 7e-5 apart. On a GPU they also run different tensor-core
# instructions (sm_90: wgmma for the whole product, mma.sync for the split one's batched
# dots), which add in their own order and internal precision: the H200's split-K runs
# landed 2e-5 to 7e-5 off the whole product's (2026-12-04, operands truncated then). A
# slice, piece or tile taken from the wrong place moves them by the size of the values.
_TF32_FORMS_TOL = 1e-3


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("batch,lengths", [(40, None), (70, "ragged")], ids=["B40", "B70-lengths"])
def test_grid_sync_wide_batch_tiles_match_persistent(batch, lengths, reverse):
    """grid_sync takes 32- and 64-row batch tiles only for tensor-core dots, which fp32
    reaches only on a GPU with TF32; the interpreter computes every dot exactly on the
    operands the kernels round to TF32, so asking for "tf32" here runs those tiles,
    forward and backward, against the persistent path's 16-row tiles. Both sides ask for
    TF32, so on a GPU they round the same operands and differ only in summation order."""
    from gru_triton.kernels import gru as gru_kernels

    T, H = 5, 21
    assert gru_kernels._launch_plan(batch, H, "grid_sync", DEVICE, True)[3]["BLOCK_B"] == 64
    lens = None
    if lengths:
        # Sorted longest first, as the module hands packed rows over; the second 64-row tile
        # (rows 64-69) ends after one step.
        lens = torch.tensor([5] * 50 + [3] * 14 + [1] * 6, dtype=torch.int32, device=DEVICE)
    streamed, wide = (_kernel_run(T, batch, H, batch, lens, reverse, path, "tf32")
                      for path in ("persistent", "grid_sync"))
    for name, got, expected in zip(_KERNEL_RUN_NAMES, wide, streamed, strict=True):
        assert_close(got, expected, what=name, tol=_TF32_FORMS_TOL)


@triton.jit
def _tile_owner(owner_ptr, count_ptr, B, BLOCK_B: tl.constexpr, TILE_ROWS: tl.constexpr):
    """owner[b] = the program whose batch tile covers row b; count[b] += 1 for each."""
    mask_b, rows_b = _batch_tile(B, BLOCK_B, TILE_ROWS)
    ones = tl.full((BLOCK_B,), 1, tl.int32)
    tl.store(owner_ptr + rows_b, ones * tl.program_id(0), mask=mask_b)
    tl.atomic_add(count_ptr + rows_b, ones, mask=mask_b)


@pytest.mark.parametrize("B,tile_rows", [(13, 0), (13, 4), (13, 2), (16, 8), (3, 8)])
def test_each_row_belongs_to_one_narrow_tile(B, tile_rows):
    """kernels.gru._batch_tile with TILE_ROWS: tile p covers rows [p * TILE_ROWS, (p + 1) *
    TILE_ROWS) of the BLOCK_B (16) a dot needs, each row exactly one tile's, none past B.
    A tile whose mask reached into the next one's rows would compute them twice, which the
    recurrence's numbers cannot show (both write the same values)."""
    rows = tile_rows or 16
    tiles = triton.cdiv(B, rows)
    owner = torch.full((B + 16,), -1, dtype=torch.int32, device=DEVICE)
    count = torch.zeros(B + 16, dtype=torch.int32, device=DEVICE)
    _tile_owner[(tiles,)](owner, count, B, BLOCK_B=16, TILE_ROWS=tile_rows)
    expected = torch.arange(B + 16, device=DEVICE) // rows
    assert torch.equal(owner[:B], expected[:B].int()) and torch.equal(count[:B], torch.ones_like(count[:B]))
    assert (owner[B:] == -1).all() and (count[B:] == 0).all()


@pytest.mark.parametrize("lengths", [None, "ragged"], ids=["full", "lengths"])
@pytest.mark.parametrize("path", ["persistent", "per_step", "grid_sync"])
def test_narrow_batch_tiles_compute_the_same_rows(path, lengths, monkeypatch):
    """Batch tiles that cover fewer rows than the dot's 16 (TILE_ROWS; bench/variants.py's
    "narrow tiles"): B 13 in 4-row tiles, the last of one row, forward and backward, give
    the 16-row tile's numbers, since each row's products and gate math are the same
    operations on the same values and the tile's other rows are masked. With lengths the
    last tile ends after one step and skips its products from then on. TF32 dots, so that
    per_step holds the slice resident (a tensor-core form) with three hidden chunks."""
    from gru_triton.kernels import gru as gru_kernels

    T, B, H = 5, 13, 40
    lens = (None if lengths is None else
            torch.tensor([5] * 4 + [3] * 4 + [2] * 4 + [1], dtype=torch.int32, device=DEVICE))
    expected = _kernel_run(T, B, H, 3, lens, False, path, "tf32")
    real_config = gru_kernels.recurrence_config
    monkeypatch.setattr(gru_kernels, "recurrence_config",
                        lambda *args, **kwargs: dict(real_config(*args, **kwargs), TILE_ROWS=4))
    launches = []
    for kernel in (gru_kernels.gru_fwd_kernel, gru_kernels.gru_bwd_kernel):
        def recording_run(*args, real_run=kernel.run, grid, **kwargs):
            launches.append((grid[0], kwargs["BLOCK_B"], kwargs["TILE_ROWS"],
                             kwargs["W_RESIDENT"]))
            return real_run(*args, grid=grid, **kwargs)

        monkeypatch.setattr(kernel, "run", recording_run)
    got = _kernel_run(T, B, H, 3, lens, False, path, "tf32")
    assert launches and {launch[:3] for launch in launches} == {(4, 16, 4)}
    if path == "per_step":
        assert all(launch[3] for launch in launches)  # the resident forms too
    for name, g, e in zip(_KERNEL_RUN_NAMES, got, expected, strict=True):
        if DEVICE.type == "cpu":
            assert torch.equal(g, e), name
        else:  # another program's instruction schedule: the same products, maybe not bit for bit
            assert_close(g, e, what=name, tol=_TF32_FORMS_TOL)


@pytest.mark.parametrize("rows", [16, 64])
def test_streamed_chunks_in_pipelined_wide_chunks_match_persistent(rows, monkeypatch):
    """Both kernels' streamed chunk loops in 128-wide chunks over 3 stages: the 16-bit
    forward's plan where the slice is not resident (kernels.gru._sixteen_bit_forms), and
    the backward's candidate where it is not either (B 64 at H 2048; bench/variants.py's
    "K 128, 3 stages"), at a K that ends in a ragged chunk (H 200: 128 + 72) and a batch
    with a ragged tile, in 16- and 64-row tiles: a chunk taken from the wrong K, or the
    ragged one's padding read, changes every state (the backward: every gradient) after it.
    The interpreter ignores the stages, so here it checks the chunks; the GPU's
    test_sixteen_bit_forms_as_launched and test_pipelined_backward_matches_fp64 check the
    pipeline."""
    from gru_triton.kernels import gru as gru_kernels

    real_config = gru_kernels.recurrence_config
    seen = []

    def config(hidden_size, path="persistent", batch=16, *args, **kwargs):
        cfg = real_config(hidden_size, path, batch, *args, **kwargs)
        if path == "grid_sync":
            cfg = dict(cfg, BLOCK_B=rows, BLOCK_K=128, num_stages=3)
        return cfg

    def recording(kernel):
        real_run = kernel.run

        def run(*args, **kwargs):
            seen.append((kernel.__name__, kwargs["W_RESIDENT"], kwargs["BLOCK_B"],
                         kwargs["BLOCK_K"], kwargs["num_stages"]))
            return real_run(*args, **kwargs)
        return run

    T, B, H = 4, 20, 200
    lens = torch.tensor(([T, 2, 1] * B)[:B], dtype=torch.int32, device=DEVICE)
    expected = _kernel_run(T, B, H, H, lens, False, "persistent", "tf32")
    monkeypatch.setattr(gru_kernels, "recurrence_config", config)
    for kernel in (gru_kernels.gru_fwd_kernel, gru_kernels.gru_bwd_kernel):
        monkeypatch.setattr(kernel, "run", recording(kernel))
    # On a GPU the 16-row grid has a program per chunk and would hold the slice instead.
    monkeypatch.setattr(gru_kernels, "_resident_plan", lambda *args, **kwargs: None)
    got = _kernel_run(T, B, H, H, lens, False, "grid_sync", "tf32")
    assert set(seen) == {(name, False, rows, 128, 3)
                         for name in ("gru_fwd_kernel", "gru_bwd_kernel")}
    for name, g, e in zip(_KERNEL_RUN_NAMES, got, expected, strict=True):
        assert_close(g, e, what=name, tol=_TF32_FORMS_TOL)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("path,batch,hidden", [("per_step", 5, 37), ("per_step", 19, 70),
                                               ("grid_sync", 13, 13)],
                         ids=["per_step-B5-H37", "per_step-B19-H70", "grid_sync-B13-H13"])
def test_resident_w_hh_matches_streamed(path, batch, hidden, reverse, monkeypatch):
    """W_RESIDENT: a program that owns one hidden chunk for the whole launch loads its W_hh
    slice once, over all of K, forward and backward. The launcher picks it for tensor-core
    dots only, which fp32 reaches through TF32; the interpreter computes those dots exactly
    on the TF32-rounded operands, so asking for "tf32" runs the resident code, against the
    same path and precision with the resident plan turned off (W_hh streamed), so that on a GPU only
    the summation order differs.
    (grid_sync owns one chunk per program here only while H fits one chunk: the interpreter
    runs one column.)"""
    from gru_triton.kernels import gru as gru_kernels

    seen = {"fwd": [], "bwd": []}
    for key, kernel in (("fwd", gru_kernels.gru_fwd_kernel), ("bwd", gru_kernels.gru_bwd_kernel)):
        def recording_run(*args, _real=kernel.run, _key=key, **kwargs):
            seen[_key].append((kwargs["W_RESIDENT"], kwargs["BLOCK_K"]))
            return _real(*args, **kwargs)

        monkeypatch.setattr(kernel, "run", recording_run)
    T, H = 6, hidden
    lens = torch.tensor(([T, 3, 1] * batch)[:batch], dtype=torch.int32, device=DEVICE)
    with monkeypatch.context() as patch:
        patch.setattr(gru_kernels, "_resident_plan", lambda *args, **kwargs: None)
        streamed = _kernel_run(T, batch, H, hidden, lens, reverse, path, "tf32")
    launches = {key: len(runs) for key, runs in seen.items()}
    resident = _kernel_run(T, batch, H, hidden, lens, reverse, path, "tf32")
    for key, runs in seen.items():
        assert set(runs[:launches[key]]) == {(False, 32 if H > 16 else 16)}
        assert set(runs[launches[key]:]) == {(True, triton.next_power_of_2(H))}
    for name, got, expected in zip(_KERNEL_RUN_NAMES, resident, streamed, strict=True):
        assert_close(got, expected, what=name, tol=_TF32_FORMS_TOL)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("gradients", ["output", "h_n", "both"])
@pytest.mark.parametrize("path,hidden", [("grid_sync", 13), ("per_step", 40)],
                         ids=["grid_sync-H13", "per_step-H40"])
def test_resident_backward_carries_and_prefetches(path, hidden, gradients, reverse,
                                                  monkeypatch):
    """The resident backward keeps its columns' carried gradient in registers from step to
    step and, grid-synchronised (one launch), loads each step's saved activations and output
    gradient a step ahead, while it waits at the barrier; the gate gradients it writes over
    the activations (overwrite_gates, as a training step runs it) must not be read back as
    activations. Against the streamed backward on the same saved forward, with only the
    output's gradient, only h_n's, or both (each absent one is a different kernel
    variant), and lengths that end rows early."""
    from gru_triton.kernels import gru as gru_kernels

    T, B, H = 7, 6, hidden
    g = torch.Generator().manual_seed(hidden)
    gates = torch.randn(T, B, 3 * H, generator=g).to(DEVICE)
    w_hh = (torch.randn(3 * H, H, generator=g) / H ** 0.5).to(DEVICE)
    b_hh = torch.randn(3 * H, generator=g).to(DEVICE)
    h0 = torch.randn(B, H, generator=g).to(DEVICE)
    dhs = torch.randn(T, B, H, generator=g).to(DEVICE) if gradients != "h_n" else None
    dhn = torch.randn(B, H, generator=g).to(DEVICE) if gradients != "output" else None
    lens = torch.tensor([T, 5, 1, T, 2, 6], dtype=torch.int32, device=DEVICE)
    hs, ghn = gru_kernels.gru_forward(gates, w_hh, b_hh, h0, lens, reverse=reverse, save=True,
                                      path=path, dot_precision="tf32")
    resident_runs = []
    real_run = gru_kernels.gru_bwd_kernel.run

    def recording_run(*args, **kwargs):
        resident_runs.append(kwargs["W_RESIDENT"])
        return real_run(*args, **kwargs)

    def backward(overwrite):
        return gru_kernels.gru_backward(dhs, dhn, gates.clone(), ghn.clone(), hs, h0, w_hh, lens,
                                        reverse=reverse, path=path, dot_precision="tf32",
                                        overwrite_gates=overwrite)

    with monkeypatch.context() as patch:
        patch.setattr(gru_kernels, "_resident_plan", lambda *args, **kwargs: None)
        streamed = backward(False)
    monkeypatch.setattr(gru_kernels.gru_bwd_kernel, "run", recording_run)
    resident = backward(True)
    assert resident_runs and all(resident_runs)
    for name, got, expected in zip(["dgx", "dghn", "dh_direct"], resident, streamed,
                                   strict=True):
        assert_close(got, expected, what=name, tol=_TF32_FORMS_TOL)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("path,batch,hidden", [("per_step", 5, 48), ("per_step", 19, 16),
                                               ("grid_sync", 13, 16)],
                         ids=["per_step-B5-H48", "per_step-B19-H16", "grid_sync-B13-H16"])
def test_stacked_gates_match_the_three_products(path, batch, hidden, reverse, monkeypatch):
    """STACKED_GATES: the forward computes its three gate products over the resident W_hh
    slice as one transposed dot (gates stacked, a zero fourth block) and splits the result
    back into r, z and n. Against the same resident launch without it: any gate taken from
    the wrong block, or a row of the padding, changes every output. H = 48 leaves the second
    32-unit chunk half empty and K not a power of two; the lengths end rows early."""
    T, H = 6, hidden
    lens = torch.tensor(([T, 3, 1] * batch)[:batch], dtype=torch.int32, device=DEVICE)
    plain = _kernel_run(T, batch, H, hidden, lens, reverse, path, "tf32")
    stacked_runs = force_resident_form(monkeypatch, STACKED_GATES=True)
    stacked = _kernel_run(T, batch, H, hidden, lens, reverse, path, "tf32")
    assert stacked_runs and set(stacked_runs) == {(True, True, 1, 1)}
    for name, got, expected in zip(_KERNEL_RUN_NAMES, stacked, plain, strict=True):
        assert_close(got, expected, what=name, tol=_TF32_FORMS_TOL)


@pytest.mark.parametrize("path,batch,hidden", [("per_step", 5, 48), ("per_step", 19, 112),
                                               ("grid_sync", 13, 16)],
                         ids=["per_step-B5-H48", "per_step-B19-H112", "grid_sync-B13-H16"])
def test_stacked_gates_with_k_rotated_match(path, batch, hidden, monkeypatch):
    """ROTATE_K: the stacked forward walks K from each program's own chunk on, wrapping
    around, in both its resident slice and h_{t-1} (kernels.gru._k_order). Against the
    stacked form in K's own order: a slice and a row rotated differently would pair the
    wrong columns and change every output. H 48 (K 64, chunks at 0 and 32) and 112 (K 128,
    four chunks) rotate by chunks that leave columns past H inside the walk."""
    T, H = 6, hidden
    lens = torch.tensor(([T, 3, 1] * batch)[:batch], dtype=torch.int32, device=DEVICE)
    force_resident_form(monkeypatch, STACKED_GATES=True)
    plain = _kernel_run(T, batch, H, hidden, lens, False, path, "tf32")
    monkeypatch.undo()
    rotated_runs = force_resident_form(monkeypatch, STACKED_GATES=True, ROTATE_K=True)
    from gru_triton.kernels import gru as gru_kernels

    real_run, rotations = gru_kernels.gru_fwd_kernel.run, []

    def recording_run(*args, **kwargs):
        rotations.append(kwargs.get("ROTATE_K", False))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(gru_kernels.gru_fwd_kernel, "run", recording_run)
    rotated = _kernel_run(T, batch, H, hidden, lens, False, path, "tf32")
    assert rotated_runs and set(rotated_runs) == {(True, True, 1, 1)} and set(rotations) == {True}
    for name, got, expected in zip(_KERNEL_RUN_NAMES, rotated, plain, strict=True):
        assert_close(got, expected, what=name, tol=_TF32_FORMS_TOL)


# The block's rows past the batch are another slot's or step's, not yet written at first:
# whatever the buffer held goes through the product and the gate math in columns that are
# never stored (the bit-for-bit comparison would see one that was), and numpy (the
# interpreter) warns when that is inf or nan.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("path,batch,hidden", [("per_step", 21, 48), ("grid_sync", 13, 16)],
                         ids=["per_step-B21-H48", "grid_sync-B13-H16"])
def test_stacked_tf32_rows_read_by_tma_match(path, batch, hidden, monkeypatch):
    """TMA_ROWS with TF32 dots: the stacked forward reads h_{t-1} from the rounded
    ping-pong (hd, ROWS_ROUNDED) through a descriptor over its (2 * B, H) rows, slot
    step % 2. Bit for bit the pointer loads' numbers, forward and backward: a slot or row
    off by one changes every state after it. Lengths end rows early; B 21 and 13 leave a
    block running past the batch into the other slot's rows."""
    from gru_triton.kernels import gru as gru_kernels

    T = 6
    lens = torch.tensor(([T, 3, 1] * batch)[:batch], dtype=torch.int32, device=DEVICE)
    force_resident_form(monkeypatch, STACKED_GATES=True)
    plain = _kernel_run(T, batch, hidden, hidden, lens, False, path, "tf32")
    monkeypatch.undo()
    force_resident_form(monkeypatch, STACKED_GATES=True, TMA_ROWS=True)
    real_run, seen = gru_kernels.gru_fwd_kernel.run, []

    def recording_run(*args, **kwargs):
        desc = kwargs.get("h_desc")
        seen.append((kwargs.get("TMA_ROWS", False), kwargs["ROWS_ROUNDED"],
                     None if desc is None else (tuple(desc.shape), tuple(desc.block_shape))))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(gru_kernels.gru_fwd_kernel, "run", recording_run)
    got = _kernel_run(T, batch, hidden, hidden, lens, False, path, "tf32")
    block_k = 1 << (hidden - 1).bit_length()
    assert set(seen) == {(True, True, ((2 * batch, hidden), (16, block_k)))}, seen
    for name, g, e in zip(_KERNEL_RUN_NAMES, got, plain, strict=True):
        if DEVICE.type == "cpu":
            assert torch.equal(g, e), name
        else:  # the same products through another load path: maybe not bit for bit
            assert_close(g, e, what=name, tol=_TF32_FORMS_TOL)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # TMA rows past the batch, as above
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("batch,hidden", [(21, 48), (5, 64)], ids=["B21-H48", "B5-H64"])
def test_stacked_tf32_forward_in_8_wide_chunks_matches(batch, hidden, reverse, monkeypatch):
    """TF32's stacked forward in 8-wide hidden chunks (bench/variants.py's "8 wide,
    stacked"; the slice of a K = 1024 chunk, 128 KiB, then fits beside h's 64 KiB without K
    pieces, in twice the programs): the same states, activations and, through the backward,
    gradients as the 16-wide stacked forward, with pointer loads and with TMA rows. Bit for
    bit on the CPU; on a GPU (mma.sync against wgmma) within the forms' tolerance. Lengths
    end rows early; per_step, whose grid has a program per chunk."""
    from gru_triton.kernels import gru as gru_kernels

    real_plan = gru_kernels._launch_plan
    form, seen = {}, []

    def launch_plan(batch, hidden_size, path, device, tensor_cores=True, forward=False,
                    *args, **kwargs):
        grid, launches, grid_sync, cfg = real_plan(batch, hidden_size, path, device,
                                                   tensor_cores, forward, *args, **kwargs)
        if forward and path == "per_step":
            cfg = dict(cfg, BLOCK_B=16, **form)
            grid = (triton.cdiv(batch, 16), triton.cdiv(hidden_size, form["BLOCK_H"]))
        return grid, launches, grid_sync, cfg

    real_run = gru_kernels.gru_fwd_kernel.run

    def recording_run(*args, grid, **kwargs):
        seen.append((grid, kwargs["BLOCK_H"], kwargs["W_RESIDENT"],
                     kwargs.get("STACKED_GATES", False), kwargs.get("TMA_ROWS", False)))
        return real_run(*args, grid=grid, **kwargs)

    monkeypatch.setattr(gru_kernels, "_launch_plan", launch_plan)
    monkeypatch.setattr(gru_kernels.gru_fwd_kernel, "run", recording_run)
    T = 6
    lens = torch.tensor(([T, 3, 1] * batch)[:batch], dtype=torch.int32, device=DEVICE)
    runs = []
    for width, tma in ((16, False), (8, False), (8, True)):
        form.update(BLOCK_H=width, STACKED_GATES=True, TMA_ROWS=tma)
        seen.clear()
        runs.append(_kernel_run(T, batch, hidden, hidden, lens, reverse, "per_step", "tf32"))
        tiles = (triton.cdiv(batch, 16), hidden // width)
        assert set(seen) == {(tiles, width, True, True, tma)}, seen
    for got in runs[1:]:
        for name, g, e in zip(_KERNEL_RUN_NAMES, got, runs[0], strict=True):
            if DEVICE.type == "cpu":
                assert torch.equal(g, e), name
            else:
                assert_close(g, e, what=name, tol=_TF32_FORMS_TOL)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("kernel", ["fwd", "bwd"])
@pytest.mark.parametrize("batch,hidden,width,split,pieces",
                         [(5, 48, 32, 4, 1), (4, 144, 32, 8, 1), (3, 130, 16, 8, 1),
                          (17, 100, 16, 8, 1), (6, 100, 16, 4, 2), (4, 144, 32, 8, 2),
                          (6, 100, 16, 2, 4)],
                         ids=["B5-H48-wide", "B4-H144-wide", "B3-H130", "B17-H100",
                              "B6-H100-pieces", "B4-H144-wide-pieces", "B6-H100-4-pieces"])
def test_split_k_matches_the_whole_product(batch, hidden, width, split, pieces, kernel, reverse,
                                           monkeypatch):
    """SPLIT_K: one kernel (the forward, or the backward) holds its resident W_hh slice cut
    along K, one slice per warp, and sums the slices' batched products (the backward's three
    gates into one sum). Against the same resident launches without it (per_step, whose
    programs own one chunk each here): a slice taken from the wrong rows or columns of W_hh,
    h or the gate gradients, or a partial sum dropped, changes every output after it. K is
    H rounded up to a power of two, so the last slice is partly (H = 48: wholly) past H;
    resident_config gives at most one slice per 16 of K (H = 48: 4); lengths end rows
    early. Hidden chunks 32 wide (per_step's own, and the "32 wide" variant's: split there
    only where H is a multiple of 16) and 16 wide (grid_sync's, any H). K_PIECES 2 (as an
    H100 holds a K = 2048 slice): the row operands are taken half of K at a time, so a
    piece taken from the wrong half of K, or one piece's products dropped, shows too; each
    half has at least a 16-deep slice per warp, so K = 128 gives 4 slices. K_PIECES 4 (as
    tf32x3's forward holds K = 1024): quarters, 2 slices of 16 each."""
    from gru_triton.kernels import gru as gru_kernels

    real_config = gru_kernels.recurrence_config

    def config(hidden_size, path="persistent", *args, **kwargs):
        cfg = real_config(hidden_size, path, *args, **kwargs)
        return dict(cfg, BLOCK_H=width) if path == "per_step" else cfg

    monkeypatch.setattr(gru_kernels, "recurrence_config", config)
    T, H = 6, hidden
    lens = torch.tensor(([T, 3, 1] * batch)[:batch], dtype=torch.int32, device=DEVICE)
    whole = _kernel_run(T, batch, H, hidden, lens, reverse, "per_step", "tf32")
    runs = force_resident_form(monkeypatch, kernel, SPLIT_K=8, K_PIECES=pieces)
    split_k = _kernel_run(T, batch, H, hidden, lens, reverse, "per_step", "tf32")
    assert runs and set(runs) == {(True, False, split, pieces)}
    assert gru_kernels._launch_plan(batch, H, "per_step", DEVICE)[3]["BLOCK_H"] == width
    for name, got, expected in zip(_KERNEL_RUN_NAMES, split_k, whole, strict=True):
        assert_close(got, expected, what=name, tol=_TF32_FORMS_TOL)


@pytest.mark.parametrize("hidden,forward_resident,backward_resident",
                         [(48, True, True), (160, True, True), (272, True, False),
                          (40, False, False)],
                         ids=["H48", "H160", "H272-forward-only", "H40-unaligned"])
def test_tf32x3_holds_the_slice_split_and_matches_ieee(hidden, forward_resident,
                                                       backward_resident, monkeypatch):
    """"tf32x3" (fp32 weights under nn.GRU's IEEE flag, three TF32 products per dot) takes
    the tensor-core tiles, and its resident slice only in the split-K form (the plain one
    spills: kernel report), with 16-wide chunks, H a multiple of 16, K up to 512 forward and
    256 backward; elsewhere W_hh streams. The interpreter computes every dot in exact fp32,
    so the numbers must equal the IEEE run's up to summation order, forward and backward.
    (per_step with grid_sync's 16-wide chunks: its programs own one chunk each here.)"""
    from gru_triton.kernels import gru as gru_kernels

    real_config = gru_kernels.recurrence_config

    def config(hidden_size, path="persistent", *args, **kwargs):
        cfg = real_config(hidden_size, path, *args, **kwargs)
        return dict(cfg, BLOCK_H=16) if path == "per_step" else cfg

    monkeypatch.setattr(gru_kernels, "recurrence_config", config)
    seen = {"fwd": [], "bwd": []}
    for key, kernel in (("fwd", gru_kernels.gru_fwd_kernel), ("bwd", gru_kernels.gru_bwd_kernel)):
        def recording_run(*args, _real=kernel.run, _key=key, **kwargs):
            seen[_key].append((kwargs["DOT_PRECISION"], kwargs["W_RESIDENT"],
                               kwargs.get("SPLIT_K", 1)))
            return _real(*args, **kwargs)

        monkeypatch.setattr(kernel, "run", recording_run)
    T, B, H = 3, 5, hidden
    lens = torch.tensor([T, 2, 1, T, 2], dtype=torch.int32, device=DEVICE)
    ieee = _kernel_run(T, B, H, hidden, lens, False, "per_step", "ieee")
    assert {run[1] for runs in seen.values() for run in runs} == {False}
    for runs in seen.values():
        runs.clear()
    x3 = _kernel_run(T, B, H, hidden, lens, False, "per_step", "tf32x3")
    split = min(8, triton.next_power_of_2(H) // 16)
    for key, resident in (("fwd", forward_resident), ("bwd", backward_resident)):
        expected = ("tf32x3", True, split) if resident else ("tf32x3", False, 1)
        assert set(seen[key]) == {expected}, key
    for name, got, expected in zip(_KERNEL_RUN_NAMES, x3, ieee, strict=True):
        assert_close(got, expected, what=name)
