"""Natively on a GPU: larger shapes, both recurrence paths, fp32 in IEEE and TF32 modes,
bf16/fp16 against an fp64 reference. Skipped without CUDA."""

import pytest
import torch

import gru_triton
from gru_triton import dispatch
from tests.helpers import HAS_CUDA, max_rel_err

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")]

SHAPES = [(64, 16, 256, 256, 1), (33, 7, 100, 1024, 1), (16, 64, 128, 512, 2)]


def _run(module, x, grad):
    x = x.detach().clone().requires_grad_(True)
    out, h_n = module(x)
    (out * grad).sum().backward()
    return [out, h_n, x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("precision,tol", [("ieee", 2e-5), ("tf32", 5e-3)])
@pytest.mark.parametrize("path", dispatch.PATHS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}-B{}-I{}-H{}-L{}".format(*s))
def test_fp32_matches_cudnn(shape, path, precision, tol):
    T, B, I, H, L = shape
    gru_triton.set_backend("triton")
    with dispatch.rnn_fp32_precision(precision):
        ref = torch.nn.GRU(I, H, L, bidirectional=L > 1).cuda()
        ours = gru_triton.GRU(I, H, L, bidirectional=L > 1).cuda()
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(T, B, I, device="cuda")
        grad = torch.randn(T, B, H * (2 if L > 1 else 1), device="cuda")
        with dispatch.force_path(path):
            got = _run(ours, x, grad)
        expected = _run(ref, x, grad)
    for g, e in zip(got, expected, strict=True):
        assert max_rel_err(g, e) <= tol


@pytest.mark.parametrize("B", [16, 40])  # grid_sync: one 16-row tile; one ragged 64-row tile
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("path", dispatch.PATHS)
def test_low_precision_against_fp64(dtype, path, B):
    _assert_as_close_to_fp64_as_cudnn(64, B, 128, 512, dtype, path)


def _assert_as_close_to_fp64_as_cudnn(T, B, I, H, dtype, path):
    """Ours on ``path`` and nn.GRU (cuDNN), both in ``dtype``, against an fp64 nn.GRU:
    output, h_n and every gradient within twice cuDNN's own error (plus a few ulps)."""
    gru_triton.set_backend("triton")
    exact = torch.nn.GRU(I, H).cuda().double()
    theirs = torch.nn.GRU(I, H).cuda().to(dtype)
    ours = gru_triton.GRU(I, H).cuda().to(dtype)
    theirs.load_state_dict(exact.state_dict())
    ours.load_state_dict(exact.state_dict())
    x = torch.randn(T, B, I, device="cuda", dtype=torch.float64)
    grad = torch.randn(T, B, H, device="cuda", dtype=torch.float64)
    expected = _run(exact, x, grad)
    with dispatch.force_path(path):
        got = _run(ours, x.to(dtype), grad.to(dtype))
    baseline = _run(theirs, x.to(dtype), grad.to(dtype))
    names = ["output", "h_n", "x.grad"] + [f"{n}.grad" for n, _ in ours.named_parameters()]
    for name, g, b, e in zip(names, got, baseline, expected, strict=True):
        ours_err = (g.double() - e).abs().max().item()
        torch_err = (b.double() - e).abs().max().item()
        bound = 2 * torch_err + 4 * torch.finfo(dtype).eps * e.abs().max().item()
        assert ours_err <= bound, f"{name}: {ours_err:.3e} from fp64, cuDNN {torch_err:.3e}"


_SPLIT, _STACKED = {"SPLIT_K": 8}, {"STACKED_GATES": True}
# TF32 at H = 1024 (T 48, B 16) on the H200, 2026-12-04: bias_ih's gradient was 2.1e-2 from
# fp64 against cuDNN's 7.7e-3, in every form, all else within the bound: the tensor cores
# truncated the fp32 bits Triton handed them, so every product leaned toward zero, and the
# bias gradient sums that lean over T * B rows (bench/tf32_bias_lean.py emulates it: 1.34e-2
# truncated against 7.37e-3 rounded to nearest, as cuDNN rounds). The kernels now round their
# TF32 operands to nearest (kernels.gru._tf32_nearest; tests/test_tf32_rounding.py), which is
# what these H 1024 cases check natively.


@pytest.mark.parametrize("kernel,form,H,dtype,pieces", [
    *[(kernel, form, H, torch.bfloat16, 1) for H in (512, 1024)
      for kernel, form in (("fwd", _SPLIT), ("bwd", _SPLIT), ("fwd", _STACKED))],
    *[(kernel, _SPLIT, H, dtype, 2)
      for H, dtype in ((2048, torch.bfloat16), (1024, torch.float32)) for kernel in ("fwd", "bwd")]],
    ids=[*[f"{kernel}-{name}-H{H}" for H in (512, 1024)
           for kernel, name in (("fwd", "split_k"), ("bwd", "split_k"), ("fwd", "stacked"))],
         *[f"{kernel}-split_k-pieces-{name}" for name in ("bf16-H2048", "tf32-H1024")
           for kernel in ("fwd", "bwd")]])
def test_resident_forms_not_yet_picked_match_fp64(kernel, form, H, dtype, pieces, monkeypatch):
    """The resident forms the launchers do not pick until a GPU has timed them (bench/
    variants.py), natively, grid-synchronised over many programs (the interpreter runs
    one): at B = 16, where every program owns one hidden chunk, against an fp64 nn.GRU,
    within what cuDNN's GRU gets in the same dtype (fp32: TF32, cuDNN's default). At
    bf16 H = 1024 the split backward is the only resident one (the launcher streams W_hh
    there); at bf16 H = 2048 and TF32 H = 1024 the split forms hold the slice with h staged
    in two K pieces, on an H100 or H200 only (an A100's shared memory is too small: skipped)."""
    from gru_triton.kernels import gru as gru_kernels

    from tests.helpers import force_resident_form

    if pieces > 1 and gru_kernels.shared_memory_limit(torch.device("cuda")) < 227 * 1024:
        pytest.skip("the slice in K pieces needs an H100's 227 KiB of shared memory a block")
    runs = force_resident_form(monkeypatch, kernel, **form)
    _assert_as_close_to_fp64_as_cudnn(48, 16, H, H, dtype, "grid_sync")
    assert runs and all(run[0] and (run[1] or run[2] > 1) and run[3] == pieces
                        for run in runs), runs


@pytest.mark.parametrize("B,H,dtype,rows", [(16, 1024, torch.bfloat16, 8),
                                            (16, 256, torch.bfloat16, 2),
                                            (13, 512, torch.bfloat16, 4),
                                            (16, 1024, torch.float32, 8)],
                         ids=["bf16-B16-H1024", "bf16-B16-H256", "bf16-B13-H512", "tf32-B16-H1024"])
def test_narrow_tiles_match_fp64(B, H, dtype, rows, monkeypatch):
    """bench/variants.py's "narrow tiles" natively, both kernels (kernels.gru._narrowed: a
    tile covers fewer rows than the dot's 16, in a grid of twice the tiles or more, each
    tile's programs meeting at their own barrier counter): against an fp64 nn.GRU within
    cuDNN's own error, launched with the rows and grid _narrowed gives on 132 SMs (more
    SMs may narrow further; fewer, not at all: skipped). B 13: a ragged last tile of one row."""
    from gru_triton.kernels import gru as gru_kernels

    if torch.cuda.get_device_properties("cuda").multi_processor_count != 132:
        pytest.skip("the rows asserted are an H100's or H200's plan (132 SMs)")
    real_config = gru_kernels.recurrence_config

    def config(hidden_size, path="persistent", *args, **kwargs):
        cfg = real_config(hidden_size, path, *args, **kwargs)
        return dict(cfg, NARROW_TILES=True) if path == "grid_sync" else cfg

    monkeypatch.setattr(gru_kernels, "recurrence_config", config)
    seen = []
    for kernel in (gru_kernels.gru_fwd_kernel, gru_kernels.gru_bwd_kernel):
        def recording_run(*args, _run=kernel.run, grid, **kwargs):
            seen.append((grid[0], kwargs.get("TILE_ROWS", 0), kwargs["W_RESIDENT"]))
            return _run(*args, grid=grid, **kwargs)

        monkeypatch.setattr(kernel, "run", recording_run)
    _assert_as_close_to_fp64_as_cudnn(48, B, H, H, dtype, "grid_sync")
    assert set(seen) == {(-(-B // rows), rows, True)}, seen


@pytest.mark.parametrize("B,H,rows", [(16, 1024, 16), (64, 1024, 32), (13, 512, 16)],
                         ids=["B16-H1024", "B64-H1024-32rows", "B13-H512"])
def test_tma_rows_match_fp64(B, H, rows, monkeypatch):
    """bench/variants.py's "stacked, TMA rows" natively (gru_fwd_kernel's TMA_ROWS: h_{t-1}
    read by TMA copies, behind proxy fences at the grid barrier), bf16: against an fp64
    nn.GRU within cuDNN's own error, launched with the descriptor and the fences. B 64 in
    32-row tiles (the grid that fits 132 SMs); B 13: the block runs past the batch into the
    next step's rows. A missing fence would show as values of an older step."""
    from gru_triton.kernels import gru as gru_kernels

    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("TMA copies: sm_90 and up")
    real_config = gru_kernels.recurrence_config

    def config(hidden_size, path="persistent", *args, **kwargs):
        cfg = real_config(hidden_size, path, *args, **kwargs)
        if path != "grid_sync":
            return cfg
        return dict(cfg, BLOCK_B=rows, STACKED_GATES=True, TMA_ROWS=True)

    monkeypatch.setattr(gru_kernels, "recurrence_config", config)
    seen = []
    real_run = gru_kernels.gru_fwd_kernel.run

    def recording_run(*args, grid, **kwargs):
        seen.append((kwargs.get("TMA_ROWS", False), kwargs.get("PROXY_FENCE", False),
                     kwargs["BLOCK_B"], kwargs.get("h_desc") is not None))
        return real_run(*args, grid=grid, **kwargs)

    monkeypatch.setattr(gru_kernels.gru_fwd_kernel, "run", recording_run)
    _assert_as_close_to_fp64_as_cudnn(48, B, H, H, torch.bfloat16, "grid_sync")
    assert set(seen) == {(True, True, rows, True)}, seen


@pytest.mark.parametrize("B,H,rows,tma,dtype", [
    (16, 1024, 16, False, torch.bfloat16), (21, 1024, 16, True, torch.bfloat16),
    (64, 1024, 32, True, torch.bfloat16), (16, 512, 16, False, torch.float32)],
    ids=["bf16-B16", "bf16-B21-tma", "bf16-B64-32rows-tma", "tf32-H512"])
def test_stacked_at_4_warps_without_licm_matches_fp64(B, H, rows, tma, dtype, monkeypatch):
    """bench/variants.py's "stacked, 4 warps, no LICM", "stacked, TMA rows, 4 warps, no LICM"
    and "32 rows, stacked, TMA rows, 4 warps, no LICM" natively: the stacked forward in one
    warpgroup where the resident plan gives it two, its time loop compiled without
    loop-invariant code motion (NO_LICM), against an fp64 nn.GRU within cuDNN's own error
    (fp32 under nn.GRU's TF32 flag). B 21: a ragged second tile (and with TMA rows, a block
    that runs past the batch)."""
    from gru_triton.kernels import gru as gru_kernels

    if gru_kernels.shared_memory_limit(torch.device("cuda")) < 227 * 1024:
        pytest.skip("the stacked K = 1024 slice in 32-row tiles needs an H100's shared memory")
    if tma and torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("TMA copies: sm_90 and up")
    real_config, real_resident = gru_kernels.recurrence_config, gru_kernels.resident_config

    def config(hidden_size, path="persistent", batch=16, tensor_cores=True, forward=False,
               *args, **kwargs):
        cfg = real_config(hidden_size, path, batch, tensor_cores, forward, *args, **kwargs)
        if path == "grid_sync" and forward:
            cfg = dict(cfg, BLOCK_B=rows, STACKED_GATES=True, TMA_ROWS=tma, NO_LICM=True)
        return cfg

    def resident(cfg, *args, **kwargs):
        out = real_resident(cfg, *args, **kwargs)
        return dict(out, num_warps=4) if out is not None and cfg.get("NO_LICM") else out

    monkeypatch.setattr(gru_kernels, "recurrence_config", config)
    monkeypatch.setattr(gru_kernels, "resident_config", resident)
    seen = []
    real_run = gru_kernels.gru_fwd_kernel.run

    def recording_run(*args, grid, **kwargs):
        seen.append((kwargs["num_warps"], kwargs.get("NO_LICM"), kwargs.get("TMA_ROWS", False),
                     kwargs["BLOCK_B"], kwargs["W_RESIDENT"], kwargs.get("STACKED_GATES")))
        return real_run(*args, grid=grid, **kwargs)

    monkeypatch.setattr(gru_kernels.gru_fwd_kernel, "run", recording_run)
    with dispatch.rnn_fp32_precision("tf32"):
        _assert_as_close_to_fp64_as_cudnn(48, B, H, H, dtype, "grid_sync")
    assert set(seen) == {(4, True, tma, rows, True, True)}, seen


@pytest.mark.parametrize("H,dtype", [(2048, torch.bfloat16), (2048, torch.float16),
                                     (2000, torch.bfloat16)], ids=["bf16", "fp16", "bf16-H2000"])
def test_pipelined_backward_matches_fp64(H, dtype, monkeypatch):
    """bench/variants.py's "K 128, 3 stages" in the backward, natively, where its slice
    streams (B 64 at H 2048: a 64-row tile, no grid of 16-row tiles fits 132 SMs): the
    chunk loop over 3 stages, whose loads run ahead of the product, against an fp64 nn.GRU
    within cuDNN's own error. H 2000 ends in a ragged chunk (15 x 128 + 80)."""
    from gru_triton.kernels import gru as gru_kernels

    if gru_kernels.shared_memory_limit(torch.device("cuda")) < 185 * 1024:
        pytest.skip("three stages of 128-wide chunks take 185 KiB of shared memory (sm_90)")
    real_config = gru_kernels.recurrence_config

    def config(hidden_size, path="persistent", batch=16, tensor_cores=True, forward=False,
               *args, **kwargs):
        cfg = real_config(hidden_size, path, batch, tensor_cores, forward, *args, **kwargs)
        if path == "grid_sync" and not forward:
            cfg = dict(cfg, BLOCK_K=128, num_stages=3)
        return cfg

    monkeypatch.setattr(gru_kernels, "recurrence_config", config)
    seen = []
    real_run = gru_kernels.gru_bwd_kernel.run

    def recording_run(*args, **kwargs):
        seen.append((kwargs["W_RESIDENT"], kwargs["BLOCK_B"], kwargs["BLOCK_K"],
                     kwargs["num_stages"]))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(gru_kernels.gru_bwd_kernel, "run", recording_run)
    _assert_as_close_to_fp64_as_cudnn(48, 64, H, H, dtype, "grid_sync")
    assert set(seen) == {(False, 64, 128, 3)}, seen


@pytest.mark.parametrize("H,dtype,tma,warps", [
    (1024, torch.float32, False, 4), (1024, torch.float32, True, 4), (1024, torch.float32, True, 2),
    (1024, torch.bfloat16, True, 4), (512, torch.float32, False, 4)],
    ids=["tf32", "tf32-tma", "tf32-tma-2warps", "bf16-tma", "tf32-H512"])
def test_8_wide_stacked_forward_matches_fp64(H, dtype, tma, warps, monkeypatch):
    """bench/variants.py's "8 wide, stacked" natively, B 16 (fp32 under nn.GRU's TF32 flag,
    or bf16): 8 hidden units a program, the stacked slice 32 rows on mma.sync, its TF32
    K = 1024 slice held whole beside h; against an fp64 nn.GRU within cuDNN's own error,
    launched as planned (128 programs at H 1024)."""
    from gru_triton.kernels import gru as gru_kernels

    if tma and torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("TMA copies: sm_90 and up")
    if gru_kernels.shared_memory_limit(torch.device("cuda")) < 227 * 1024:
        pytest.skip("TF32's 8-wide K = 1024 slice with h beside it needs an H100's shared memory")
    real_config = gru_kernels.recurrence_config

    def config(hidden_size, path="persistent", batch=16, tensor_cores=True, forward=False,
               *args, **kwargs):
        cfg = real_config(hidden_size, path, batch, tensor_cores, forward, *args, **kwargs)
        if path == "grid_sync" and forward:
            cfg = dict(cfg, BLOCK_H=8, STACKED_GATES=True, TMA_ROWS=tma, num_warps=warps)
        return cfg

    monkeypatch.setattr(gru_kernels, "recurrence_config", config)
    seen = []
    real_run = gru_kernels.gru_fwd_kernel.run

    def recording_run(*args, grid, **kwargs):
        seen.append((grid, kwargs["BLOCK_H"], kwargs["W_RESIDENT"], kwargs.get("STACKED_GATES"),
                     kwargs.get("TMA_ROWS", False), kwargs["num_warps"]))
        return real_run(*args, grid=grid, **kwargs)

    monkeypatch.setattr(gru_kernels.gru_fwd_kernel, "run", recording_run)
    with dispatch.rnn_fp32_precision("tf32"):
        _assert_as_close_to_fp64_as_cudnn(48, 16, H, H, dtype, "grid_sync")
    assert set(seen) == {((1, H // 8), 8, True, True, tma, warps)}, seen


def test_tf32_launcher_at_h1024_matches_fp64():
    """The TF32 launch at H = 1024, B = 16 as the launchers plan it (W_hh streamed: the
    slice does not fit whole), held to the bound the split forms in K pieces are held to
    above: where both miss it, the bound, not the split form, is what is off."""
    _assert_as_close_to_fp64_as_cudnn(48, 16, 1024, 1024, torch.float32, "grid_sync")


@pytest.mark.parametrize("B,H", [(16, 512), (16, 1024), (64, 256), (64, 512), (64, 1024),
                                 (16, 2048)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_sixteen_bit_forms_as_launched(B, H, dtype, monkeypatch):
    """grid_sync's fp16/bf16 launches as the launchers now plan them (kernels.gru.
    _sixteen_bit_forms, from the H200's timings): the stacked forward where the slice is
    resident, K in 128-wide chunks over 3 pipeline stages where it is streamed (B 64 at
    H 1024, H 2048), and the backward split along K in 16-row tiles (32-wide chunks at B 64,
    H 1024), against an fp64 nn.GRU within cuDNN's own error, and launched in those forms."""
    from gru_triton.kernels import gru as gru_kernels

    seen = {}
    for name in ("gru_fwd_kernel", "gru_bwd_kernel"):
        kernel = getattr(gru_kernels, name)
        real_run = kernel.run

        def recording_run(*args, _name=name, _run=real_run, **kwargs):
            seen.setdefault(_name, []).append(
                (kwargs["W_RESIDENT"], kwargs.get("STACKED_GATES", False),
                 kwargs.get("SPLIT_K", 1), kwargs["BLOCK_K"], kwargs["num_stages"],
                 kwargs["BLOCK_B"], kwargs["BLOCK_H"]))
            return _run(*args, **kwargs)

        monkeypatch.setattr(kernel, "run", recording_run)
    if H == 2048 and gru_kernels.shared_memory_limit(torch.device("cuda")) < 227 * 1024:
        pytest.skip("the backward's slice in K pieces needs an H100's shared memory")
    _assert_as_close_to_fp64_as_cudnn(48, B, H, H, dtype, "grid_sync")
    streamed = B == 64 and H == 1024 or H == 2048
    fwd = (not streamed, not streamed, 1, 128 if streamed else H, 3 if streamed else 1, 16
           if B == 16 or not streamed else 64, 16)
    bwd = (True, False, 8, H, 1, 16, 32 if (B, H) == (64, 1024) else 16)
    assert set(seen["gru_fwd_kernel"]) == {fwd}, seen
    assert set(seen["gru_bwd_kernel"]) == {bwd}, seen


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_like_nn_gru(dtype):
    """Under CUDA autocast nn.GRU computes in fp16 whatever the autocast dtype (cuDNN's RNN
    is cast to half), and nn.GRUCell in the autocast dtype."""
    gru_triton.set_backend("triton")
    ref = torch.nn.GRU(32, 64, 2).cuda()
    ours = gru_triton.GRU(32, 64, 2).cuda()
    ours.load_state_dict(ref.state_dict())
    ref_cell, cell = torch.nn.GRUCell(32, 64).cuda(), gru_triton.GRUCell(32, 64).cuda()
    cell.load_state_dict(ref_cell.state_dict())
    x = torch.randn(20, 8, 32, device="cuda")
    with torch.autocast("cuda", dtype=dtype):
        out, h_n = ours(x)
        ref_out, ref_h_n = ref(x)
        h_cell, ref_h_cell = cell(x[0]), ref_cell(x[0])
    assert out.dtype == ref_out.dtype == h_n.dtype == ref_h_n.dtype == torch.float16
    assert h_cell.dtype == ref_h_cell.dtype == dtype
    assert max_rel_err(out.float(), ref_out.float()) <= 2e-2
    assert max_rel_err(h_cell.float(), ref_h_cell.float()) <= 2e-2
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in ours.parameters())


@pytest.mark.parametrize("lengths", [None, [16, 9, 3, 12]], ids=["full", "lengths"])
def test_no_host_synchronisation(lengths):
    """Forward and backward never wait for the GPU (CUDA-graph capturable)."""
    gru_triton.set_backend("triton")
    ours = gru_triton.GRU(24, 48, 2, bidirectional=True).cuda()
    x = torch.randn(16, 4, 24, device="cuda", requires_grad=True)
    ours(x, lengths=lengths)  # compile the kernels first; that may synchronise
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out, h_n = ours(x, lengths=lengths)
        (out.sum() + h_n.sum()).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_graph_capture_and_replay():
    gru_triton.set_backend("triton")
    ours = gru_triton.GRU(16, 32).cuda()
    static_x = torch.randn(12, 4, 16, device="cuda")
    expected, _ = ours(static_x)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(2):
            ours(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out, _ = ours(static_x)
    new_x = torch.randn_like(static_x)
    static_x.copy_(new_x)
    graph.replay()
    torch.cuda.synchronize()
    assert max_rel_err(static_out, ours(new_x)[0].detach()) <= 1e-6
    assert max_rel_err(expected.detach(), static_out) > 1e-3  # the replay used the new input


def test_packed_sequence_on_cuda_matches_cudnn():
    from torch.nn.utils.rnn import pack_sequence

    gru_triton.set_backend("triton")
    with dispatch.rnn_fp32_precision("ieee"):
        ref = torch.nn.GRU(8, 300, bidirectional=True).cuda()
        ours = gru_triton.GRU(8, 300, bidirectional=True).cuda()
        ours.load_state_dict(ref.state_dict())
        packed = pack_sequence([torch.randn(n, 8, device="cuda") for n in (40, 7, 33, 19)],
                               enforce_sorted=False)
        out, h_n = ours(packed)
        ref_out, ref_h_n = ref(packed)
    assert max_rel_err(out.data, ref_out.data) <= 2e-5
    assert max_rel_err(h_n, ref_h_n) <= 2e-5


@pytest.mark.parametrize("precision,batch,tol", [("ieee", 16, 2e-5), ("tf32", 64, 5e-3)],
                         ids=["ieee-B16", "tf32-B64"])
def test_grid_sync_runs_many_programs_per_batch_tile(precision, batch, tol):
    """On a GPU the grid-synchronised path really splits the hidden units (the interpreter
    can only run one program per tile), and its barrier keeps the steps in order; with TF32
    at B = 64 each program takes a 64-row batch tile (wgmma on sm_90)."""
    from gru_triton.kernels import gru as gru_kernels

    device = torch.device("cuda")
    assert gru_kernels.grid_sync_columns(batch, 1024, device, precision == "tf32") > 1
    gru_triton.set_backend("triton")
    with dispatch.rnn_fp32_precision(precision):
        ref = torch.nn.GRU(64, 1024).cuda()
        ours = gru_triton.GRU(64, 1024).cuda()
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(300, batch, 64, device="cuda")
        with dispatch.force_path("grid_sync"):
            for _ in range(3):  # repeated: a racy barrier shows up as run-to-run differences
                out, h_n = ours(x)
                assert max_rel_err(out, ref(x)[0]) <= tol


@pytest.mark.parametrize("hidden,batch", [(256, 16), (512, 64), (1024, 16), (1000, 64)],
                         ids=["H256-B16", "H512-B64", "H1024-B16", "H1000-B64"])
def test_tf32x3_keeps_ieee_accuracy(hidden, batch):
    """fp32 under nn.GRU's IEEE flag with the W_hh products as three TF32 tensor-core
    products ("tf32x3"): output, h_n and every gradient within the IEEE bound of nn.GRU's
    own IEEE run, on grid_sync (a resident split slice at H 256/512, forward only and in
    four K pieces at H 1024, the 64-row tile streamed at B 64, a 32-row tile at H 1000; the
    interpreter cannot tell, as it computes every dot exactly).
    The same run with plain TF32 is ~1e-4 away (docs/performance.md), so this bound tells
    the two apart."""
    _assert_tf32x3_within_ieee_bound(64, batch, hidden)


def _assert_tf32x3_within_ieee_bound(T, batch, hidden):
    """grid_sync with "tf32x3" products against nn.GRU's own IEEE run, fp32 under the IEEE
    flag: output, h_n and every gradient within 2e-5."""
    gru_triton.set_backend("triton")
    with dispatch.rnn_fp32_precision("ieee"):
        ref = torch.nn.GRU(hidden, hidden).cuda()
        ours = gru_triton.GRU(hidden, hidden).cuda()
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(T, batch, hidden, device="cuda")
        grad = torch.randn(T, batch, hidden, device="cuda")
        results = []
        for module, dots in ((ref, None), (ours, "tf32x3")):
            xi = x.clone().requires_grad_(True)
            with dispatch.force_path("grid_sync"), dispatch.force_ieee_dots(dots):
                out, h_n = module(xi)
                out.backward(grad)
            results.append([out, h_n, xi.grad, *(p.grad for p in module.parameters())])
    for got, expected in zip(*results, strict=True):
        assert max_rel_err(got, expected) <= 2e-5


@pytest.mark.parametrize("hidden,batch", [(2048, 16), (1008, 64)], ids=["H2048-B16", "H1008-B64"])
def test_tf32x3_pipelined_chunks_keep_ieee_accuracy(hidden, batch, monkeypatch):
    """bench/variants.py's "tf32x3, 3 stages": where tf32x3 streams W_hh (both kernels, a
    16-row tile at H 2048, a 64-row one at B 64 with a ragged last chunk at H 1008), its
    chunk loop pipelined over 3 stages, within the IEEE bound of nn.GRU's own IEEE run, as
    test_tf32x3_keeps_ieee_accuracy holds the launcher's."""
    from gru_triton.kernels import gru as gru_kernels

    real_config = gru_kernels.recurrence_config

    def config(hidden_size, path="persistent", *args, **kwargs):
        cfg = real_config(hidden_size, path, *args, **kwargs)
        return dict(cfg, num_stages=3) if path == "grid_sync" else cfg

    monkeypatch.setattr(gru_kernels, "recurrence_config", config)
    seen = set()
    for kernel in (gru_kernels.gru_fwd_kernel, gru_kernels.gru_bwd_kernel):
        def recording_run(*args, _run=kernel.run, _name=kernel.__name__, **kwargs):
            seen.add((_name, kwargs["W_RESIDENT"], kwargs["num_stages"], kwargs["DOT_PRECISION"]))
            return _run(*args, **kwargs)

        monkeypatch.setattr(kernel, "run", recording_run)
    _assert_tf32x3_within_ieee_bound(48, batch, hidden)
    assert seen == {(name, False, 3, "tf32x3") for name in ("gru_fwd_kernel", "gru_bwd_kernel")}


def test_packed_input_does_not_synchronise():
    from torch.nn.utils.rnn import pack_sequence

    gru_triton.set_backend("triton")
    ours = gru_triton.GRU(8, 32, bidirectional=True).cuda()
    packed = pack_sequence([torch.randn(n, 8, device="cuda") for n in (9, 4, 7)],
                           enforce_sorted=False)
    ours(packed)  # compile first
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out, h_n = ours(packed)
        (out.data.sum() + h_n.sum()).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_auto_hands_large_hidden_sizes_to_cudnn(launch_counter):
    """Where no kernel path was measured faster than cuDNN, "auto" runs nn.GRU's own
    op: the same numbers bit for bit, no kernel launched."""
    ref = torch.nn.GRU(32, 1024, 2).cuda()
    ours = gru_triton.GRU(32, 1024, 2).cuda()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(50, 8, 32, device="cuda")
    assert torch.equal(ours(x)[0], ref(x)[0])
    # nn.GRU's op refuses a strided hx on CUDA ("rnn: hx is not contiguous"); the route
    # takes it, as the kernels do.
    h0 = torch.randn(8, 1024, 2, device="cuda").permute(2, 0, 1)
    assert torch.equal(ours(x, h0)[1], ref(x, h0.contiguous())[1])
    assert launch_counter == {"fwd": 0, "bwd": 0}


def test_cudnn_route_compiles_fullgraph_on_cuda():
    """torch.compile(fullgraph=True) also traces the route to nn.GRU's own op on CUDA.
    In IEEE fp32: eager cuDNN follows the RNN TF32 flag, and the compiled graph (measured
    3.6e-4 apart by default on an H200) need not run the same TF32 kernels."""
    torch._dynamo.reset()
    ours = gru_triton.GRU(32, 512, 2, batch_first=True).cuda()
    x = torch.randn(8, 20, 32, device="cuda")
    with gru_triton.dispatch.rnn_fp32_precision("ieee"):
        expected = ours(x)[0]
        got = torch.compile(ours, fullgraph=True)(x)[0]
    assert max_rel_err(got, expected) <= 1e-5


def test_cudnn_route_takes_packed_input_without_synchronising():
    from torch.nn.utils.rnn import pack_sequence

    ref = torch.nn.GRU(8, 1024, bidirectional=True).cuda()
    ours = gru_triton.GRU(8, 1024, bidirectional=True).cuda()
    ours.load_state_dict(ref.state_dict())
    packed = pack_sequence([torch.randn(n, 8, device="cuda") for n in (9, 4, 7)],
                           enforce_sorted=False)
    ours(packed)  # warm up first; cuDNN plans may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out, h_n = ours(packed)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    ref_out, ref_h_n = ref(packed)
    assert torch.equal(out.data, ref_out.data) and torch.equal(h_n, ref_h_n)


def test_auto_runs_grid_sync_where_it_was_measured_faster(launch_counter, monkeypatch):
    """bf16 at H = 256, B = 16 is a row of the dispatcher's measured grid_sync table: auto
    runs it there (one grid-synchronised launch per layer and direction, each way) and
    matches nn.GRU within bf16's tolerance."""
    from gru_triton.kernels import gru as gru_kernels

    grid_synced = []
    real = gru_kernels.gru_fwd_kernel.run

    def recording_run(*args, **kwargs):
        grid_synced.append(kwargs["GRID_SYNC"])
        return real(*args, **kwargs)

    monkeypatch.setattr(gru_kernels.gru_fwd_kernel, "run", recording_run)
    ref = torch.nn.GRU(64, 256).cuda().bfloat16()
    ours = gru_triton.GRU(64, 256).cuda().bfloat16()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(40, 16, 64, device="cuda", dtype=torch.bfloat16)
    out, h_n = ours(x)
    assert grid_synced == [True]
    assert max_rel_err(out.float(), ref(x)[0].float()) <= 2e-2
    out.float().sum().backward()
    assert launch_counter["bwd"] == 1


def test_ieee_inference_runs_tf32x3_where_its_forward_won(launch_counter, monkeypatch):
    """fp32 under nn.GRU's IEEE flag at H 256, B 16 (dispatch.FORWARD_WINS["tf32x3"]): under
    no_grad auto runs grid_sync with "tf32x3" products, within the IEEE bound of nn.GRU's
    IEEE output; a call that autograd keeps for a backward goes to nn.GRU's own op, bit for
    bit, since there the forward + backward lost."""
    from gru_triton.kernels import gru as gru_kernels

    launched = []
    real = gru_kernels.gru_fwd_kernel.run

    def recording_run(*args, **kwargs):
        launched.append((kwargs["GRID_SYNC"], kwargs["DOT_PRECISION"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(gru_kernels.gru_fwd_kernel, "run", recording_run)
    with dispatch.rnn_fp32_precision("ieee"):
        ref = torch.nn.GRU(256, 256).cuda()
        ours = gru_triton.GRU(256, 256).cuda()
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(64, 16, 256, device="cuda")
        with torch.no_grad():
            out, h_n = ours(x)
            ref_out, ref_h_n = ref(x)
        assert launched == [(True, "tf32x3")]
        assert max_rel_err(out, ref_out) <= 2e-5 and max_rel_err(h_n, ref_h_n) <= 2e-5
        launched.clear()
        out, h_n = ours(x)
        assert launched == [] and launch_counter == {"fwd": 1, "bwd": 0}
        assert torch.equal(out, ref(x)[0])


@pytest.mark.parametrize("form", ["plain", "batch_first", "packed"])
def test_bidirectional_inference_runs_both_directions_at_once(form, monkeypatch):
    """bf16 at B 16, H 256, two bidirectional layers, without grad: each layer's reverse
    direction runs on the side stream beside the forward one (both grids fit), and every
    output and h_n equals, bit for bit, the run of one direction after the other; nn.GRU's
    within the benchmark's bf16 tolerance (two layers of bf16 rounding; the bit-equality is
    the point). With grad they run at once too (the default mode, "training"), and one
    after the other under directions_at_once("inference")."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from gru_triton import functional

    decisions = []
    real = functional._directions_at_once

    def recording(*args, **kwargs):
        decisions.append(real(*args, **kwargs))
        return decisions[-1]

    torch.manual_seed(0)
    ref = torch.nn.GRU(24, 256, 2, bidirectional=True, batch_first=form == "batch_first")
    ref = ref.cuda().bfloat16()
    ours = gru_triton.GRU(24, 256, 2, bidirectional=True, batch_first=form == "batch_first")
    ours = ours.cuda().bfloat16()
    ours.load_state_dict(ref.state_dict())
    T, B = 50, 16
    x = torch.randn(*((B, T, 24) if form == "batch_first" else (T, B, 24)), device="cuda",
                    dtype=torch.bfloat16)
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T

    def run(module):
        inp = pack_padded_sequence(x, lengths, enforce_sorted=False) if form == "packed" else x
        out, h_n = module(inp)
        return (pad_packed_sequence(out)[0] if form == "packed" else out), h_n

    with torch.no_grad():
        monkeypatch.setattr(functional, "_directions_at_once", recording)
        at_once = run(ours)
        monkeypatch.setattr(functional, "_directions_at_once", lambda *a, **k: False)
        one_by_one = run(ours)
        expected = run(ref)
    assert decisions == [True]
    for got, want, cudnn in zip(at_once, one_by_one, expected, strict=True):
        assert torch.equal(got, want)
        assert max_rel_err(got.float(), cudnn.float()) <= 5e-2
    monkeypatch.setattr(functional, "_directions_at_once", recording)
    run(ours)[0].float().sum().backward()
    with dispatch.directions_at_once("inference"):
        run(ours)[0].float().sum().backward()
    assert decisions == [True, True, False]


def test_bidirectional_directions_at_once_at_the_headline_shape(monkeypatch):
    """bf16 B 16, H 1024: 64 programs a direction, both resident on an H100 or H200 at once
    (not on a GPU with fewer than 128 SMs, where they run one after the other): equal to the
    one-after-the-other run, repeatedly, with the caller's stream taking memory between."""
    from gru_triton import functional

    ours = gru_triton.GRU(64, 1024, bidirectional=True).cuda().bfloat16()
    x = torch.randn(128, 16, 64, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        hx = torch.zeros(2, 16, 1024, device="cuda", dtype=torch.bfloat16)
        fits = functional._directions_at_once(x, hx, ours._flat_weights, lengths=None,
                                              reset_after=True)
        sms = torch.cuda.get_device_properties(0).multi_processor_count
        assert fits == (sms >= 128)
        with monkeypatch.context() as patch:
            patch.setattr(functional, "_directions_at_once", lambda *a, **k: False)
            one_by_one = ours(x)
        for _ in range(5):
            at_once = ours(x)
            torch.randn(4 << 20, device="cuda")  # the caller's stream takes memory meanwhile
            assert all(torch.equal(a, b) for a, b in zip(at_once, one_by_one, strict=True))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "tf32"])
def test_bidirectional_training_at_once(dtype, monkeypatch):
    """dispatch.directions_at_once("training"), the default: the reverse direction's
    forward runs on the side stream and autograd runs its backward there too, beside the
    forward direction's. Output, h_n and every gradient (input, h0, each weight and bias) equal the
    one-after-the-other run bit for bit, over three steps with the caller's stream taking
    memory between them (2 layers, B 16, H 256: both grids fit, forward and backward)."""
    from gru_triton import functional

    decisions = []
    real = functional._directions_at_once

    def recording(*args, **kwargs):
        decisions.append(real(*args, **kwargs))
        return decisions[-1]

    monkeypatch.setattr(functional, "_directions_at_once", recording)
    torch.manual_seed(0)
    ours = gru_triton.GRU(24, 256, 2, bidirectional=True).cuda().to(dtype)
    x = torch.randn(50, 16, 24, device="cuda", dtype=dtype)
    hx = torch.randn(4, 16, 256, device="cuda", dtype=dtype)
    g_out = torch.randn(50, 16, 512, device="cuda", dtype=dtype)
    g_h = torch.randn(4, 16, 256, device="cuda", dtype=dtype)

    def step():
        ours.zero_grad(set_to_none=True)
        xi, hi = x.clone().requires_grad_(), hx.clone().requires_grad_()
        out, h_n = ours(xi, hi)
        ((out * g_out).sum() + (h_n * g_h).sum()).backward()
        torch.randn(4 << 20, device="cuda")  # the caller's stream takes memory meanwhile
        return [out.detach(), h_n.detach(), xi.grad, hi.grad,
                *(p.grad.clone() for p in ours.parameters())]

    with dispatch.rnn_fp32_precision("tf32"):
        with dispatch.directions_at_once("never"):
            one_by_one = step()
        with dispatch.directions_at_once("training"):
            runs = [step() for _ in range(3)]
    assert decisions == [False, True, True, True]
    for at_once in runs:
        for got, want in zip(at_once, one_by_one, strict=True):
            assert torch.equal(got, want)


def test_bidirectional_reset_before_inference_at_once(monkeypatch):
    """The reset-before form runs on the persistent path (a program per batch tile, none
    waiting on another), so its two directions run at once at any size: equal bit for bit
    to one after the other, and to the reference within bf16's tolerance."""
    from gru_triton import functional

    decisions = []
    real = functional._directions_at_once

    def recording(*args, **kwargs):
        decisions.append(real(*args, **kwargs))
        return decisions[-1]

    ours = gru_triton.GRU(24, 96, 2, bidirectional=True, reset_after=False)
    ours = ours.cuda().bfloat16()
    x = torch.randn(30, 40, 24, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        monkeypatch.setattr(functional, "_directions_at_once", recording)
        at_once = ours(x)
        monkeypatch.setattr(functional, "_directions_at_once", lambda *a, **k: False)
        one_by_one = ours(x)
        gru_triton.set_backend("reference")
        expected = ours(x)
    assert decisions == [True]
    for got, want, ref in zip(at_once, one_by_one, expected, strict=True):
        assert torch.equal(got, want)
        assert max_rel_err(got.float(), ref.float()) <= 5e-2
