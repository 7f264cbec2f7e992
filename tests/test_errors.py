"""Bad input: the exception type and message nn.GRU gives, never a kernel launch."""

import warnings

import pytest
import torch

import gru_triton
from gru_triton import kernels


def _raised(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - comparing whatever both raise
        return type(e), str(e)
    return None


CONSTRUCTOR_CASES = {
    "hidden_size_zero": dict(input_size=4, hidden_size=0),
    "hidden_size_negative": dict(input_size=4, hidden_size=-3),
    "hidden_size_float": dict(input_size=4, hidden_size=3.0),
    "num_layers_zero": dict(input_size=4, hidden_size=3, num_layers=0),
    "num_layers_float": dict(input_size=4, hidden_size=3, num_layers=1.5),
    "input_size_zero": dict(input_size=0, hidden_size=3),
    "dropout_above_one": dict(input_size=4, hidden_size=3, dropout=1.5),
    "dropout_negative": dict(input_size=4, hidden_size=3, dropout=-0.1),
    "dropout_string": dict(input_size=4, hidden_size=3, dropout="0.5"),
}


@pytest.mark.parametrize("kwargs", CONSTRUCTOR_CASES.values(), ids=CONSTRUCTOR_CASES.keys())
def test_constructor_errors_match_nn_gru(kwargs):
    expected = _raised(lambda: torch.nn.GRU(**kwargs))
    assert expected is not None
    assert _raised(lambda: gru_triton.GRU(**kwargs)) == expected


def test_dropout_warning_matches_nn_gru():
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        torch.nn.GRU(4, 3, dropout=0.5)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        gru_triton.GRU(4, 3, dropout=0.5)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    assert len(ours) == 1


FORWARD_CASES = {
    "wrong_feature_size": lambda: (torch.randn(5, 2, 3), None),
    "input_1d": lambda: (torch.randn(5), None),
    "input_4d": lambda: (torch.randn(5, 2, 4, 1), None),
    "h0_wrong_layers": lambda: (torch.randn(5, 2, 4), torch.randn(3, 2, 6)),
    "h0_wrong_batch": lambda: (torch.randn(5, 2, 4), torch.randn(2, 3, 6)),
    "h0_wrong_hidden": lambda: (torch.randn(5, 2, 4), torch.randn(2, 2, 5)),
    "h0_2d_for_batched": lambda: (torch.randn(5, 2, 4), torch.randn(2, 6)),
    "h0_3d_for_unbatched": lambda: (torch.randn(5, 4), torch.randn(2, 1, 6)),
    "h0_unbatched_wrong_shape": lambda: (torch.randn(5, 4), torch.randn(3, 6)),
    "input_dtype_not_weight_dtype": lambda: (torch.randn(5, 2, 4, dtype=torch.float64), None),
    "integer_input": lambda: (torch.randint(0, 3, (5, 2, 4)), None),
    "empty_sequence": lambda: (torch.randn(0, 2, 4), None),
    "empty_unbatched_sequence": lambda: (torch.randn(0, 4), None),
}


@pytest.mark.parametrize("backend", ["triton", "reference", "auto"])
@pytest.mark.parametrize("make", FORWARD_CASES.values(), ids=FORWARD_CASES.keys())
def test_forward_errors_match_nn_gru(make, backend, launch_counter):
    gru_triton.set_backend(backend)
    ref = torch.nn.GRU(4, 6, num_layers=2)
    ours = gru_triton.GRU(4, 6, num_layers=2)
    ours.load_state_dict(ref.state_dict())
    x, h0 = make()
    expected = _raised(lambda: ref(x, h0))
    assert expected is not None
    assert _raised(lambda: ours(x, h0)) == expected
    assert launch_counter == {"fwd": 0, "bwd": 0}


def test_h0_dtype_mismatch_is_a_runtime_error(launch_counter):
    gru_triton.set_backend("triton")
    ours = gru_triton.GRU(4, 6)
    x, h0 = torch.randn(5, 2, 4), torch.randn(1, 2, 6, dtype=torch.float64)
    with pytest.raises(RuntimeError):  # nn.GRU: RuntimeError too (its message names mat1/mat2)
        torch.nn.GRU(4, 6)(x, h0)
    with pytest.raises(RuntimeError, match=r"hx dtype \(torch.float64\) does not match input dtype"):
        ours(x, h0)
    assert launch_counter["fwd"] == 0


def test_h0_on_another_device_is_rejected(launch_counter):
    gru_triton.set_backend("triton")
    ours = gru_triton.GRU(4, 6)
    x, h0 = torch.randn(5, 2, 4), torch.randn(1, 2, 6, device="meta")
    with pytest.raises(RuntimeError, match="Input and hidden tensors are not at the same device"):
        ours(x, h0)
    assert launch_counter["fwd"] == 0


def test_backend_names_are_checked(monkeypatch):
    with pytest.raises(ValueError, match="backend must be one of"):
        gru_triton.set_backend("cudnn")
    monkeypatch.setenv("GRU_TRITON_BACKEND", "fast")
    with pytest.raises(ValueError, match="GRU_TRITON_BACKEND must be one of"):
        gru_triton.get_backend()


def test_triton_backend_on_cpu_without_interpreter_says_how(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    gru_triton.set_backend("triton")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        gru_triton.GRU(4, 6)(torch.randn(3, 2, 4))


LAUNCHER_CASES = {
    "gates_not_3h": lambda: kernels.gru_forward(torch.zeros(2, 3, 10), torch.zeros(12, 4), None,
                                                torch.zeros(3, 4), reverse=False, save=False,
                                                path="persistent"),
    "w_hh_not_square": lambda: kernels.gru_forward(torch.zeros(2, 3, 12), torch.zeros(12, 5), None,
                                                   torch.zeros(3, 4), reverse=False, save=False,
                                                   path="persistent"),
    "h0_wrong_batch": lambda: kernels.gru_forward(torch.zeros(2, 3, 12), torch.zeros(12, 4), None,
                                                  torch.zeros(2, 4), reverse=False, save=False,
                                                  path="persistent"),
    "gates_not_contiguous": lambda: kernels.gru_forward(
        torch.zeros(3, 2, 12).transpose(0, 1), torch.zeros(12, 4), None, torch.zeros(3, 4),
        reverse=False, save=False, path="persistent"),
    "bad_precision": lambda: kernels.gru_forward(torch.zeros(2, 3, 12), torch.zeros(12, 4), None,
                                                 torch.zeros(3, 4), reverse=False, save=False,
                                                 path="persistent", dot_precision="tf64"),
    "bwd_wrong_dhs": lambda: kernels.gru_backward(
        torch.zeros(3, 3, 4), None, torch.zeros(2, 3, 12), torch.zeros(2, 3, 4),
        torch.zeros(2, 3, 4), torch.zeros(3, 4), torch.zeros(12, 4), reverse=False,
        path="persistent"),
    "bwd_wrong_h0": lambda: kernels.gru_backward(
        None, None, torch.zeros(2, 3, 12), torch.zeros(2, 3, 4), torch.zeros(2, 3, 4),
        torch.zeros(2, 4), torch.zeros(12, 4), reverse=False, path="persistent"),
    "bwd_overwrite_reset_before": lambda: kernels.gru_backward(
        None, None, torch.zeros(2, 3, 12), None, torch.zeros(2, 3, 4), torch.zeros(3, 4),
        torch.zeros(12, 4), reverse=False, path="persistent", reset_after=False,
        overwrite_gates=True),
    "bwd_wrong_dhn": lambda: kernels.gru_backward(
        None, torch.zeros(2, 4), torch.zeros(2, 3, 12), torch.zeros(2, 3, 4),
        torch.zeros(2, 3, 4), torch.zeros(3, 4), torch.zeros(12, 4), reverse=False,
        path="persistent"),
    "lengths_not_int32": lambda: kernels.gru_forward(
        torch.zeros(2, 3, 12), torch.zeros(12, 4), None, torch.zeros(3, 4),
        torch.tensor([2, 1, 1]), reverse=False, save=False, path="persistent"),
    "lengths_wrong_count": lambda: kernels.gru_forward(
        torch.zeros(2, 3, 12), torch.zeros(12, 4), None, torch.zeros(3, 4),
        torch.tensor([2, 1], dtype=torch.int32), reverse=False, save=False, path="persistent"),
    "reset_before_per_step": lambda: kernels.gru_forward(
        torch.zeros(2, 3, 12), torch.zeros(12, 4), None, torch.zeros(3, 4), reverse=False,
        save=False, path="per_step", reset_after=False),
}


@pytest.mark.parametrize("call", LAUNCHER_CASES.values(), ids=LAUNCHER_CASES.keys())
def test_launchers_reject_bad_shapes(call, launch_counter):
    with pytest.raises(ValueError):
        call()
    assert launch_counter == {"fwd": 0, "bwd": 0}


def test_grid_sync_plan_falls_back_when_the_grid_cannot_be_resident(monkeypatch):
    """A grid barrier with programs that cannot all be resident would hang: the launcher
    plans one column per SM at most, and per-step launches when even that does not fit."""
    from types import SimpleNamespace

    from gru_triton.kernels import gru as gru_kernels

    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(multi_processor_count=132))
    cuda = torch.device("cuda")

    def plan(batch, device=cuda, tensor_cores=True):
        grid, launches, grid_sync, cfg = gru_kernels._launch_plan(batch, 1024, "grid_sync",
                                                                  device, tensor_cores)
        return grid, launches, grid_sync, cfg["BLOCK_B"], cfg["BLOCK_H"]

    # B = 16 -> one 16-row tile; H = 1024 -> 64 chunks of 16: 64 programs, one launch.
    assert plan(16) == ((1, 64), 1, True, 16, 16)
    # B = 40 -> one tile of 64 rows (W_hh read once per step for all rows).
    assert plan(40) == ((1, 64), 1, True, 64, 16)
    # B = 640 -> 10 tiles of 64; 132 // 10 = 13 columns each.
    assert plan(640) == ((10, 13), 1, True, 64, 16)
    # Without tensor cores (IEEE fp32, fp64) the FMAs bind: 16-row tiles, 4 × 33 programs.
    assert plan(64, tensor_cores=False) == ((4, 33), 1, True, 16, 16)
    # B = 16384 -> 256 tiles > 132 SMs: not co-resident, so one launch per step instead,
    # with the per-step path's own tiles.
    assert plan(16384) == ((1024, 32), None, False, 16, 32)
    # The interpreter runs programs one after another: one column.
    assert plan(16, torch.device("cpu")) == ((1, 1), 1, True, 16, 16)


def test_grid_sync_forward_plan_owns_one_chunk_per_program_where_it_fits(monkeypatch):
    """The forward (tensor-core dots) takes 16-row tiles at 4 warps wherever a program per
    (tile, hidden chunk) fits on the SMs, so each program holds its W_hh slice on chip; the
    backward keeps the batch's tile; a slice of K >= 1024 goes back to 8 warps (it spills at
    4). Measured on an H200: bench/results/nvidia-h200-2026-11-25/variants.json."""
    from types import SimpleNamespace

    from gru_triton.kernels import gru as gru_kernels

    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(multi_processor_count=132))
    cuda = torch.device("cuda")

    def plan(batch, hidden, forward, tensor_cores=True):
        grid, launches, grid_sync, cfg = gru_kernels._launch_plan(
            batch, hidden, "grid_sync", cuda, tensor_cores, forward=forward)
        return grid, cfg["BLOCK_B"], cfg["num_warps"]

    # B = 64, H = 512: 4 tiles × 32 chunks = 128 programs <= 132.
    assert plan(64, 512, forward=True) == ((4, 32), 16, 4)
    assert plan(64, 512, forward=False) == ((1, 32), 64, 8)
    # B = 64, H = 1024: 4 × 64 programs would not fit; the 64-row tile stays, at 8 warps.
    assert plan(64, 1024, forward=True) == ((1, 64), 64, 8)
    # B = 16: one 16-row tile either way, 4 warps in the forward.
    assert plan(16, 2048, forward=True) == ((1, 128), 16, 4)
    # IEEE dots (no tensor cores) keep 16-row tiles at 8 warps.
    assert plan(64, 512, forward=True, tensor_cores=False) == ((4, 32), 16, 8)
    cfg = gru_kernels.recurrence_config(512, "grid_sync", 64, forward=True, sms=132)
    assert gru_kernels.resident_config(cfg, 512, 2, 227 * 1024)["num_warps"] == 4
    cfg = gru_kernels.recurrence_config(1024, "grid_sync", 16, forward=True, sms=132)
    # K = 1024 at 4 warps spills only where H is not a multiple of 16 (unvectorised loads).
    assert gru_kernels.resident_config(cfg, 1024, 2, 227 * 1024)["num_warps"] == 4
    assert gru_kernels.resident_config(cfg, 1000, 2, 227 * 1024)["num_warps"] == 8
    # The stacked product: 8 warps from 2 KiB rows, only for multiples of 16, and its padding
    # block counts against shared memory (an A100's 163 KiB no longer holds K = 1024).
    stacked = dict(cfg, STACKED_GATES=True)
    assert gru_kernels.resident_config(stacked, 512, 2, 227 * 1024)["num_warps"] == 4
    assert gru_kernels.resident_config(stacked, 512, 4, 227 * 1024)["num_warps"] == 8
    wide = gru_kernels.resident_config(stacked, 1024, 2, 227 * 1024)
    assert (wide["num_warps"], wide["STACKED_GATES"]) == (8, True)
    assert gru_kernels.resident_config(stacked, 1024, 2, 163 * 1024) is None
    assert gru_kernels.resident_config(cfg, 1024, 2, 163 * 1024) is not None
    assert "STACKED_GATES" not in gru_kernels.resident_config(stacked, 1000, 2, 227 * 1024)
    # A pipelined time loop would load h_{t-1} before the grid barrier that publishes it.
    assert gru_kernels.resident_config(dict(cfg, num_stages=3), 512, 2, 227 * 1024)["num_stages"] == 1
    # Split K: a warp per slice, no slice under a dot's 16 of K; not with the stacked
    # product.
    split = dict(cfg, SPLIT_K=8)
    got = gru_kernels.resident_config(split, 1000, 2, 227 * 1024)
    assert (got["SPLIT_K"], got["num_warps"], got["BLOCK_K"]) == (8, 8, 1024)
    got = gru_kernels.resident_config(split, 40, 2, 227 * 1024)
    assert (got["SPLIT_K"], got["num_warps"]) == (4, 4)
    assert "SPLIT_K" not in gru_kernels.resident_config(split, 16, 2, 227 * 1024)
    assert "SPLIT_K" not in gru_kernels.resident_config(dict(split, STACKED_GATES=True), 512, 2,
                                                        227 * 1024)
    # The backward (three operand rows): split, it stages one row operand at a time, so its
    # K = 1024 slice fits an A100's 163 KiB (compiled: 129 KiB), where the whole product's
    # three operands would take 196 KiB and spill their registers.
    back = gru_kernels.recurrence_config(1024, "grid_sync", 16, sms=132)
    assert gru_kernels.resident_config(back, 1024, 2, 227 * 1024, row_operands=3) is None
    got = gru_kernels.resident_config(dict(back, SPLIT_K=8), 1024, 2, 163 * 1024, row_operands=3)
    assert (got["SPLIT_K"], got["num_warps"], got["BLOCK_K"]) == (8, 8, 1024)
    # ... except where H is not a multiple of 16 at K = 1024 (it spills there): not resident.
    assert gru_kernels.resident_config(dict(back, SPLIT_K=8), 1000, 2, 227 * 1024,
                                       row_operands=3) is None
    # The whole backward product holds its slice up to K = 512, H a multiple of 16 or not;
    # per_step's 32-wide chunks only where it is (they spill otherwise).
    assert gru_kernels.resident_config(back, 512, 2, 227 * 1024, row_operands=3) is not None
    assert gru_kernels.resident_config(back, 504, 2, 227 * 1024, row_operands=3) is not None
    per_step = gru_kernels.recurrence_config(504, "per_step")
    assert per_step["BLOCK_H"] == 32
    assert gru_kernels.resident_config(per_step, 512, 2, 227 * 1024, row_operands=3) is not None
    assert gru_kernels.resident_config(per_step, 504, 2, 227 * 1024, row_operands=3) is None
    assert gru_kernels.resident_config(per_step, 248, 2, 227 * 1024, row_operands=3) is not None
    got = gru_kernels.resident_config(dict(back, SPLIT_K=8), 500, 4, 227 * 1024, row_operands=3)
    assert (got["SPLIT_K"], got["BLOCK_K"]) == (8, 512)
    # K pieces: where the whole row operand does not fit beside the slice, split forms stage
    # it half of K at a time: TF32 at K = 1024 and 16 bits at K = 2048 stay on an H100 (225
    # KiB compiled), not on an A100; not where H is not a multiple of 16 at K = 2048 (the
    # forward spills 40 bytes there) or without split K.
    for kernel_cfg, operands in ((cfg, 1), (back, 3)):
        for hidden, itemsize in ((1024, 4), (2048, 2)):
            got = gru_kernels.resident_config(dict(kernel_cfg, SPLIT_K=8), hidden, itemsize,
                                              227 * 1024, row_operands=operands)
            assert (got["SPLIT_K"], got["K_PIECES"], got["BLOCK_K"]) == (8, 2, hidden), got
            assert gru_kernels.resident_config(dict(kernel_cfg, SPLIT_K=8), hidden, itemsize,
                                               163 * 1024, row_operands=operands) is None
        assert gru_kernels.resident_config(dict(kernel_cfg, SPLIT_K=8), 2040, 2, 227 * 1024,
                                           row_operands=operands) is None
        assert gru_kernels.resident_config(kernel_cfg, 2048, 2, 227 * 1024,
                                           row_operands=operands) is None
        # Where the whole operand fits, one piece; asked for, two (at most 16 deep a slice).
        assert "K_PIECES" not in gru_kernels.resident_config(dict(kernel_cfg, SPLIT_K=8), 1024,
                                                             2, 227 * 1024, row_operands=operands)
        got = gru_kernels.resident_config(dict(kernel_cfg, SPLIT_K=8, K_PIECES=2), 100, 4,
                                          227 * 1024, row_operands=operands)
        assert (got["SPLIT_K"], got["K_PIECES"], got["num_warps"]) == (4, 2, 4)
    # 32-wide chunks, split: B 64 at H 1024 in 16 bits holds its slice on an H100 (both
    # kernels; 225 KiB compiled), not on an A100, and not where H is not a multiple of 16.
    for kernel_cfg, operands in ((cfg, 1), (back, 3)):
        wide = dict(kernel_cfg, BLOCK_H=32, SPLIT_K=8)
        got = gru_kernels.resident_config(wide, 1024, 2, 227 * 1024, row_operands=operands)
        assert (got["SPLIT_K"], got["BLOCK_H"], got["num_warps"]) == (8, 32, 8)
        assert gru_kernels.resident_config(wide, 1024, 2, 163 * 1024, row_operands=operands) is None
        assert gru_kernels.resident_config(wide, 1000, 2, 227 * 1024, row_operands=operands) is None


def test_8_wide_chunks_are_planned_only_stacked_and_resident(monkeypatch):
    """8-wide hidden chunks (bench/variants.py's "8 wide, stacked") are a form of the
    forward's stacked product alone, whose 32 rows are the dot's M: every other form would
    have an 8-wide dot, which does not compile. So resident_config holds such a slice only
    stacked, at the warps it was given (4: one 16 x 8 tile of the product each), and a plan
    that asks for them where that slice does not fit, or its grid not one program per chunk,
    runs the default tiles instead, as an H100 plans it."""
    from types import SimpleNamespace

    from gru_triton.kernels import gru as gru_kernels

    cfg = dict(gru_kernels.recurrence_config(1024, "grid_sync", 16, forward=True, sms=132),
               BLOCK_H=8, STACKED_GATES=True)
    for itemsize in (2, 4):  # a TF32 K = 1024 slice: 128 KiB with its padding, h 64 KiB
        got = gru_kernels.resident_config(cfg, 1024, itemsize, 227 * 1024)
        assert (got["BLOCK_H"], got["STACKED_GATES"], got["num_warps"], got["BLOCK_K"]) == (
            8, True, 4, 1024), got
    assert gru_kernels.resident_config(cfg, 1024, 4, 163 * 1024) is None  # an A100
    assert gru_kernels.resident_config(cfg, 1000, 2, 227 * 1024) is None  # not stacked there
    unstacked = {k: v for k, v in cfg.items() if k != "STACKED_GATES"}
    assert gru_kernels.resident_config(unstacked, 512, 2, 227 * 1024) is None
    assert gru_kernels.resident_config(cfg, 512, 2, 227 * 1024, row_operands=3) is None

    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(multi_processor_count=132,
                                                       shared_memory_per_block_optin=227 * 1024,
                                                       major=9))
    monkeypatch.setattr(gru_kernels, "_tf32_forms",
                        lambda cfg, hidden_size, batch, forward, sms:
                        {"BLOCK_H": 8, "STACKED_GATES": True} if forward else {})
    cuda = torch.device("cuda")

    def plan(batch, hidden):
        w_hh = torch.empty(3 * hidden, hidden, device="meta")
        grid, _, grid_sync, cfg, resident = gru_kernels._kernel_plan(
            w_hh, batch, "grid_sync", cuda, "tf32", True, True)
        return grid, cfg["BLOCK_H"], cfg.get("STACKED_GATES", False), resident

    assert plan(16, 1024) == ((1, 128), 8, True, True)
    assert plan(16, 512) == ((1, 64), 8, True, True)
    # B 64: 4 tiles x 128 chunks do not fit 132 SMs; H 1000: not stacked; H 2048: the slice
    # does not fit. Each runs the plan it had without the 8-wide form.
    for batch, hidden in ((64, 1024), (16, 1000), (16, 2048)):
        assert plan(batch, hidden)[1] == 16, (batch, hidden)
    monkeypatch.setattr(gru_kernels, "recurrence_config",
                        lambda *args, **kwargs: dict(cfg, BLOCK_K=32, num_stages=1))
    with pytest.raises(ValueError, match="8 wide run only as the forward's stacked product"):
        plan(64, 1024)


def test_tf32x3_resident_plan():
    """"tf32x3" dots (three TF32 products) hold twice the operands in registers, and the
    plain resident forms spill kilobytes with them (kernel report): the slice stays on chip
    only split along K, with 16-wide chunks, H a multiple of 16, K up to 1024 forward (from
    1024 in four K pieces) and 256 backward; and grid_sync's batch tile stops at 32 rows
    where H is not a multiple of 16."""
    from gru_triton.kernels import gru as gru_kernels

    fwd = gru_kernels.recurrence_config(512, "grid_sync", 16, forward=True, sms=132)
    got = gru_kernels.resident_config(fwd, 512, 4, 227 * 1024, three_pass=True)
    assert (got["SPLIT_K"], got["num_warps"], got["BLOCK_K"]) == (8, 8, 512)
    assert gru_kernels.resident_config(fwd, 512, 4, 163 * 1024, three_pass=True) is not None
    assert "SPLIT_K" not in gru_kernels.resident_config(fwd, 512, 4, 227 * 1024)
    # The forward at K = 1024 stages h a quarter of K at a time, on an H100 only.
    got = gru_kernels.resident_config(fwd, 1024, 4, 227 * 1024, three_pass=True)
    assert (got["SPLIT_K"], got["K_PIECES"], got["BLOCK_K"], got["num_warps"]) == (8, 4, 1024, 8)
    assert gru_kernels.resident_config(fwd, 1024, 4, 163 * 1024, three_pass=True) is None
    assert gru_kernels.resident_config(fwd, 2048, 4, 227 * 1024, three_pass=True) is None
    assert gru_kernels.resident_config(fwd, 504, 4, 227 * 1024, three_pass=True) is None
    assert "STACKED_GATES" not in gru_kernels.resident_config(
        dict(fwd, STACKED_GATES=True), 256, 4, 227 * 1024, three_pass=True)
    assert gru_kernels.resident_config(dict(fwd, BLOCK_H=32), 256, 4, 227 * 1024,
                                       three_pass=True) is None
    assert gru_kernels.resident_config(fwd, 64, 4, 227 * 1024, three_pass=True)["SPLIT_K"] == 4
    assert "SPLIT_K" not in gru_kernels.resident_config(fwd, 16, 4, 227 * 1024, three_pass=True)
    back = gru_kernels.recurrence_config(256, "grid_sync", 16, sms=132)
    got = gru_kernels.resident_config(back, 256, 4, 227 * 1024, row_operands=3, three_pass=True)
    assert (got["SPLIT_K"], got["BLOCK_K"]) == (8, 256)
    assert gru_kernels.resident_config(back, 512, 4, 227 * 1024, row_operands=3,
                                       three_pass=True) is None
    for hidden, three_pass, rows in ((1000, True, 32), (1000, False, 64), (1024, True, 64)):
        cfg = gru_kernels.recurrence_config(hidden, "grid_sync", 64, three_pass=three_pass)
        assert cfg["BLOCK_B"] == rows, (hidden, three_pass)
    plan = gru_kernels._launch_plan(64, 1000, "grid_sync", torch.device("cpu"), True,
                                    three_pass=True)
    assert plan[0][0] == 2 and plan[3]["BLOCK_B"] == 32


def _as_if_on_an_h100(monkeypatch):
    """kernels.gru planning as for an H100 (132 SMs, 227 KiB of shared memory a block)
    with the interpreter's CPU tensors."""
    from gru_triton.kernels import gru as gru_kernels

    monkeypatch.setattr(gru_kernels, "_sm_count", lambda device: 132)
    monkeypatch.setattr(gru_kernels, "shared_memory_limit", lambda device: 227 * 1024)
    return gru_kernels


@pytest.mark.parametrize("dtype,precision", [(torch.bfloat16, "ieee"), (torch.float16, "ieee"),
                                             (torch.float32, "tf32"), (torch.float32, "tf32x3"),
                                             (torch.float32, "ieee"), (torch.float64, "ieee")])
def test_every_plan_names_only_what_its_kernel_takes(dtype, precision, monkeypatch):
    """A key a kernel does not take fails its launch on a GPU (Triton refuses it), where
    the interpreter ignores it: tf32x3's resident backward was handed the forward's
    STACKED_GATES that way (the H200, 2026-12-04). Every path, batch and hidden size's
    plan, both kernels, as an H100 would plan it."""
    gru_kernels = _as_if_on_an_h100(monkeypatch)
    options = {"num_warps", "num_stages", "maxnreg"}
    for forward, kernel in ((True, gru_kernels.gru_fwd_kernel),
                            (False, gru_kernels.gru_bwd_kernel)):
        takes = set(kernel.arg_names) | options
        for path in gru_kernels.PATHS:
            for batch in (1, 16, 40, 64, 200):
                for hidden in (16, 48, 256, 512, 1000, 1024, 2048):
                    w_hh = torch.empty(3 * hidden, hidden, dtype=dtype)
                    *_, plan, _ = gru_kernels._kernel_plan(w_hh, batch, path, w_hh.device,
                                                           precision, True, forward)
                    assert set(plan) <= takes, (path, batch, hidden, set(plan) - takes)


def test_sixteen_bit_forms_are_planned_where_they_were_measured(monkeypatch):
    """fp16/bf16 on grid_sync (kernels.gru._sixteen_bit_forms, the H200's timings of
    2026-12-04): the stacked resident forward, the streamed forward in 128-wide K chunks
    over 3 stages, the backward's slice split along K in 16-row tiles, 32 wide where the
    16-wide grid does not fit; fp32 (TF32) and the shapes not timed keep their plans."""
    gru_kernels = _as_if_on_an_h100(monkeypatch)

    def plan(batch, hidden, forward, dtype=torch.bfloat16, precision="ieee"):
        w_hh = torch.empty(3 * hidden, hidden, dtype=dtype)
        grid, _, _, cfg, resident = gru_kernels._kernel_plan(
            w_hh, batch, "grid_sync", w_hh.device, precision, True, forward)
        return (grid, resident, cfg["BLOCK_B"], cfg["BLOCK_H"], cfg["BLOCK_K"],
                cfg["num_stages"], cfg.get("STACKED_GATES", False), cfg.get("SPLIT_K", 1))

    assert plan(16, 1024, True) == ((1, 64), True, 16, 16, 1024, 1, True, 1)
    assert plan(64, 512, True) == ((4, 32), True, 16, 16, 512, 1, True, 1)
    assert plan(64, 1024, True) == ((1, 64), False, 64, 16, 128, 3, False, 1)
    assert plan(16, 2048, True) == ((1, 128), False, 16, 16, 128, 3, False, 1)
    assert plan(16, 1024, False) == ((1, 64), True, 16, 16, 1024, 1, False, 8)
    assert plan(64, 256, False) == ((4, 16), True, 16, 16, 256, 1, False, 8)
    assert plan(64, 1024, False) == ((4, 32), True, 16, 32, 1024, 1, False, 8)
    # Not timed: B 16 under H 512 keeps its plain resident backward, H 128 everything.
    assert plan(16, 256, False) == ((1, 16), True, 16, 16, 256, 1, False, 1)
    assert plan(64, 128, True) == ((4, 8), True, 16, 16, 128, 1, False, 1)
    # Unaligned H: no stacked product (resident_config's rule), the three gates instead.
    assert plan(16, 1000, True)[1:] == (True, 16, 16, 1024, 1, False, 1)
    # TF32 has its own (test_tf32_forms_are_planned_where_they_were_measured).
    assert plan(64, 1024, True, torch.float32, "tf32")[1:] == (False, 64, 16, 32, 1, False, 1)
    # A stacked slice that does not fit (an A100's 163 KiB at K = 1024) leaves the three
    # gates' slice, which does.
    monkeypatch.setattr(gru_kernels, "shared_memory_limit", lambda device: 163 * 1024)
    assert plan(16, 1024, True) == ((1, 64), True, 16, 16, 1024, 1, False, 1)


def test_tf32_forms_are_planned_where_they_were_measured(monkeypatch):
    """fp32 with TF32 dots on grid_sync (kernels.gru._tf32_forms, the H200's timings): at
    K = 1024 and B <= 16 both kernels hold the slice split along K in two K pieces, where the
    launcher streamed W_hh; every other shape keeps its plan (B 64 H 512: the plain resident
    forward, which won there; B 32: not timed), and so do IEEE and tf32x3 dots."""
    gru_kernels = _as_if_on_an_h100(monkeypatch)

    def plan(batch, hidden, forward, precision="tf32"):
        w_hh = torch.empty(3 * hidden, hidden)
        grid, _, _, cfg, resident = gru_kernels._kernel_plan(
            w_hh, batch, "grid_sync", w_hh.device, precision, True, forward)
        return (grid, resident, cfg["BLOCK_B"], cfg["BLOCK_K"], cfg["num_warps"],
                cfg.get("SPLIT_K", 1), cfg.get("K_PIECES", 1))

    for forward in (True, False):
        assert plan(16, 1024, forward) == ((1, 64), True, 16, 1024, 8, 8, 2)
        assert plan(1, 1000, forward)[1:] == ((True, 16, 1024, 8, 8, 2) if forward else
                                              # unaligned: the split backward spills
                                              (False, 16, 32, 8, 1, 1))
        assert plan(16, 768, forward) == ((1, 48), True, 16, 1024, 8, 8, 2)
    assert plan(64, 512, True) == ((4, 32), True, 16, 512, 4, 1, 1)
    assert plan(32, 1024, True)[1:] == (False, 16, 32, 4, 1, 1)
    assert plan(16, 512, True)[3:] == (512, 4, 1, 1)
    assert plan(16, 2048, True)[1] is False
    assert plan(16, 1024, True, "ieee")[1:] == (False, 16, 32, 8, 1, 1)
    assert plan(16, 1024, False, "tf32x3")[5:] == (1, 1)


def test_narrow_tiles_are_planned_only_where_their_grid_fits(monkeypatch):
    """bench/variants.py's "narrow tiles" (kernels.gru._narrowed), as an H100 (132 SMs) plans
    it: grid_sync's 16-row tiles cover half the rows while twice the tiles, a program per
    hidden chunk each, still fit and add a tile, so the slice stays resident in every
    program; nothing changes where the grid would not fit (B 64 H 512: already 128
    programs; H 2048: 128 chunks), for a 64-row tile, or for a batch one tile already
    covers. The launchers never ask for it themselves (not measured on a GPU yet)."""
    gru_kernels = _as_if_on_an_h100(monkeypatch)
    real = gru_kernels.recurrence_config
    narrow = []

    def config(hidden_size, path="persistent", *args, **kwargs):
        cfg = real(hidden_size, path, *args, **kwargs)
        return dict(cfg, NARROW_TILES=True) if narrow and path == "grid_sync" else cfg

    monkeypatch.setattr(gru_kernels, "recurrence_config", config)

    def plan(batch, hidden, forward=True, dtype=torch.bfloat16, precision="ieee"):
        w_hh = torch.empty(3 * hidden, hidden, dtype=dtype)
        grid, _, _, cfg, resident = gru_kernels._kernel_plan(
            w_hh, batch, "grid_sync", w_hh.device, precision, True, forward)
        assert "NARROW_TILES" not in cfg  # resolved, not handed to the kernel
        return grid, resident, cfg.get("TILE_ROWS")

    launchers = {shape: plan(*shape) for shape in ((16, 1024), (16, 512), (64, 256))}
    assert all(rows is None for _, _, rows in launchers.values())
    narrow.append(True)
    for forward in (True, False):
        assert plan(16, 1024, forward) == ((2, 64), True, 8)
        assert plan(16, 1024, forward, torch.float32, "tf32") == ((2, 64), True, 8)
        assert plan(16, 512, forward) == ((4, 32), True, 4)
        assert plan(16, 256, forward) == ((8, 16), True, 2)
        assert plan(64, 256, forward) == ((8, 16), True, 8)
        assert plan(64, 512, forward) == ((4, 32), True, None)
        assert plan(16, 2048, forward)[::2] == ((1, 128), None)
        assert plan(1, 1024, forward) == ((1, 64), True, None)
    assert plan(64, 1024)[2] is None  # the streamed forward's 64-row tile
    assert plan(13, 1024) == ((2, 64), True, 8)


def test_a_resident_plan_that_does_not_fit_streams_instead(monkeypatch):
    """Where Triton compiles a resident slice larger than the GPU holds (triton 3.6 with
    tf32x3 at K = 1024 asked 400 KiB of an H200's 227), the launch streams W_hh instead of
    failing: the same numbers, a warning, and the resident form not compiled again."""
    from gru_triton.kernels import gru as gru_kernels
    from triton.runtime.errors import OutOfResources

    from tests.helpers import DEVICE

    T, B, H = 4, 3, 32
    g = torch.Generator().manual_seed(0)
    gates = torch.randn(T, B, 3 * H, generator=g).to(DEVICE)
    w_hh = (torch.randn(3 * H, H, generator=g) / H ** 0.5).to(DEVICE)
    h0 = torch.randn(B, H, generator=g).to(DEVICE)

    def forward():
        return gru_kernels.gru_forward(gates.clone(), w_hh, None, h0, reverse=False,
                                       save=False, path="per_step", dot_precision="tf32")[0]

    monkeypatch.setattr(gru_kernels, "_UNFIT_RESIDENT", set())
    expected = forward()
    real_run, tried = gru_kernels.gru_fwd_kernel.run, []

    def run(*args, **kwargs):
        tried.append(kwargs["W_RESIDENT"])
        if kwargs["W_RESIDENT"]:
            raise OutOfResources(409600, 232448, "shared memory")
        return real_run(*args, **kwargs)

    monkeypatch.setattr(gru_kernels.gru_fwd_kernel, "run", run)
    with pytest.warns(RuntimeWarning, match="streaming W_hh instead"):
        got = forward()
    assert torch.equal(got, expected)
    assert tried[0] and not any(tried[1:])
    tried.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forward()
    assert tried and not any(tried)
