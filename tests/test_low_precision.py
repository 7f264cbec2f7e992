"""bf16 / fp16: error against an fp64 reference at most about twice PyTorch's own."""

import pytest
import torch

import gru_triton
from gru_triton import dispatch
from tests.helpers import DEVICE, force_resident_form

CASES = [(dtype, bi, "persistent") for dtype in (torch.bfloat16, torch.float16)
         for bi in (False, True)]
# The 16-bit gate buffers go through every path's loads and stores (grid_sync's past L1).
CASES += [(torch.bfloat16, True, path) for path in ("per_step", "grid_sync")]


def _run(module, x, dtype):
    """Output, h_n and every gradient (input, then each parameter) of a loss on the output,
    with x (fp64) cast to ``dtype``."""
    xi = x.to(dtype).detach().clone().requires_grad_(True)
    out, h_n = module(xi)
    out.float().square().sum().backward()
    return [out, h_n, xi.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize(("dtype", "bidirectional", "path"), CASES,
                         ids=[f"{str(d)[6:]}-{'bi' if b else 'uni'}-{p}" for d, b, p in CASES])
def test_error_within_twice_pytorchs(dtype, bidirectional, path, triton_backend):
    T, B, I, H, L = 6, 5, 7, 37, 2
    exact = torch.nn.GRU(I, H, L, bidirectional=bidirectional).to(DEVICE, torch.float64)
    torch_lowp = torch.nn.GRU(I, H, L, bidirectional=bidirectional).to(DEVICE, dtype)
    ours = gru_triton.GRU(I, H, L, bidirectional=bidirectional).to(DEVICE, dtype)
    torch_lowp.load_state_dict(exact.state_dict())
    ours.load_state_dict(exact.state_dict())
    x = torch.randn(T, B, I, device=DEVICE, dtype=torch.float64)

    expected = _run(exact, x, torch.float64)
    with dispatch.force_path(path):
        got = _run(ours, x, dtype)
    baseline = _run(torch_lowp, x, dtype)
    for name, e, g, b in zip(["output", "h_n", "dx"] + [n for n, _ in ours.named_parameters()],
                             expected, got, baseline, strict=True):
        assert g.dtype == dtype, name
        ours_err = (g.double() - e).abs().max().item()
        torch_err = (b.double() - e).abs().max().item()
        scale = e.abs().max().item()
        # Floor: a couple of ulps of the largest value, for tensors PyTorch happens to get
        # nearly exactly right.
        floor = 4 * torch.finfo(dtype).eps * scale
        assert ours_err <= 2 * torch_err + floor, (
            f"{name}: error {ours_err:.3e} vs PyTorch's {torch_err:.3e} (scale {scale:.3e})")


def _rounded_as_stored(h, dtype):
    """h (fp32) as a kernel's store to a ``dtype`` buffer rounds it, in fp64. A GPU rounds
    to nearest even (``cvt.rn``), as torch does; the interpreter's fp32 -> bf16 conversion
    (triton-lang/triton PR #3811) drops the low 16 bits instead (measured with triton 3.9:
    499 of 1024 randn values differ from torch's rounding), so there bf16 is truncated.
    (The interpreter's bf16 errors in the other tests are pessimistic for that reason.)"""
    if dtype == torch.bfloat16 and h.device.type == "cpu":
        return (h.float().view(torch.int32) & -65536).view(torch.float32).double()
    return h.to(dtype).double()


def _emulated_states(gates, w_hh, b_hh, h0, reverse, round_state=False):
    """The 16-bit states a kernel stores, (T, B, H) in fp64, emulated: the recurrence in fp64
    from h0 (fp32), each W_hh product reading the previous state rounded to the weights'
    dtype, as a 16-bit tensor-core dot does (the first step's operand rounded by torch, as
    the launcher writes it), and the state itself carried unrounded, unless
    ``round_state`` (a recurrence that kept only the 16-bit states)."""
    T, H = gates.shape[0], w_hh.shape[1]
    state, operand = h0.double(), h0.to(w_hh.dtype).double()
    stored = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        gh = operand @ w_hh.double().T + b_hh.double()
        gx = gates[t].double()
        r = torch.sigmoid(gx[:, :H] + gh[:, :H])
        z = torch.sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        state = n + z * (state - n)
        operand = stored[t] = _rounded_as_stored(state.float(), w_hh.dtype)
        if round_state:
            state = operand
    return torch.stack(stored)


def _layer_operands(T, B, H, dtype, seed):
    """Seeded x-side gates (T, B, 3H), W_hh (3H, H), b_hh (3H,) in ``dtype``, h0 (B, H) fp32."""
    g = torch.Generator().manual_seed(seed)
    gates = torch.randn(T, B, 3 * H, generator=g).to(DEVICE, dtype)
    w_hh = (torch.randn(3 * H, H, generator=g) / H ** 0.5).to(DEVICE, dtype)
    b_hh = torch.randn(3 * H, generator=g).to(DEVICE, dtype)
    return gates, w_hh, b_hh, torch.randn(B, H, generator=g).to(DEVICE)


def _assert_emulated(stored, gates, w_hh, b_hh, h0, reverse):
    """The stored states (T, B, H, fp64) meet ``_emulated_states``: at most 5% of values
    differ, by at most one ulp of the largest state (a flipped rounding carries into the
    next steps as an absolute error, which is many ulps of a state near 0: fp16 4e-4 off by
    1e-5)."""
    expected = _emulated_states(gates, w_hh, b_hh, h0, reverse)
    assert (stored != expected).double().mean().item() <= 0.05
    assert (stored - expected).abs().max() <= torch.finfo(w_hh.dtype).eps * expected.abs().max()


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("path", dispatch.PATHS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_state_stays_fp32_and_dot_reads_it_rounded(dtype, path, reverse):
    """16-bit weights: the kernels store the states in 16 bits (the output, and what backward
    reads) and feed that rounded h_{t-1} to the W_hh product, as a tensor-core dot rounds
    its operand, while the state the gate math updates stays fp32. Against an fp64
    emulation of exactly that, a stored state differs only where fp32 and fp64 round to
    different sides of a 16-bit boundary, and the steps after it (measured: 0-0.7% of
    values); a recurrence that kept its state in 16 bits differs at 27-50% of them."""
    from gru_triton.kernels import gru_forward

    T = 7
    gates, w_hh, b_hh, h0 = _layer_operands(T, 5, 37, dtype, seed=3)
    hs, _ = gru_forward(gates.clone(), w_hh, b_hh, h0, reverse=reverse, save=False, path=path)
    assert hs.dtype == dtype
    stored = hs.double()
    _assert_emulated(stored, gates, w_hh, b_hh, h0, reverse)
    rounded_state = _emulated_states(gates, w_hh, b_hh, h0, reverse, round_state=True)
    assert (stored != rounded_state).double().mean().item() > 0.2  # the check can tell


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_reset_before_error_within_a_few_ulps(dtype, triton_backend):
    """The reset-before form in 16 bits (its phase 1's dot reads the 16-bit states, its phase 2
    the fp32 r ⊙ h scratch) against its fp64 reference. PyTorch has no such GRU to set the
    bound, so it is 4 units of the dtype's eps times the largest value, for the output, h_n
    and every gradient (measured here at 0.3-1.5 units over 4 seeds)."""
    T, B, I, H, L = 6, 5, 7, 37, 2
    exact = gru_triton.GRU(I, H, L, bidirectional=True, reset_after=False).to(DEVICE, torch.float64)
    ours = gru_triton.GRU(I, H, L, bidirectional=True, reset_after=False).to(DEVICE, dtype)
    ours.load_state_dict(exact.state_dict())
    x = torch.randn(T, B, I, device=DEVICE, dtype=torch.float64)

    gru_triton.set_backend("reference")
    expected = _run(exact, x, torch.float64)
    gru_triton.set_backend("triton")
    got = _run(ours, x, dtype)
    for name, e, g in zip(["output", "h_n", "dx"] + [n for n, _ in ours.named_parameters()],
                          expected, got, strict=True):
        assert g.dtype == dtype, name
        err = (g.double() - e).abs().max().item()
        bound = 4 * torch.finfo(dtype).eps * e.abs().max().item()
        assert err <= bound, f"{name}: error {err:.3e} > {bound:.3e}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_stacked_gates_store_the_same_16_bit_states(dtype, monkeypatch):
    """The stacked forward (STACKED_GATES, bench/variants.py's "stacked") with 16-bit weights:
    its slice is stacked in the weights' dtype and its product reads the rounded h_{t-1},
    so its stored states meet the same fp64 emulation as the three-product form. H = 48:
    a multiple of 16 (the stacked form's condition), two 32-unit chunks on per_step."""
    from gru_triton.kernels import gru_forward

    runs = force_resident_form(monkeypatch, STACKED_GATES=True)
    gates, w_hh, b_hh, h0 = _layer_operands(7, 5, 48, dtype, seed=4)
    hs, _ = gru_forward(gates.clone(), w_hh, b_hh, h0, reverse=False, save=False,
                        path="per_step")
    assert runs and set(runs) == {(True, True, 1, 1)}
    _assert_emulated(hs.double(), gates, w_hh, b_hh, h0, False)


@pytest.mark.parametrize("path,hidden", [("grid_sync", 16), ("per_step", 48)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_stacked_gates_in_32_row_tiles(dtype, path, hidden, monkeypatch):
    """The stacked forward in 32-row batch tiles (bench/variants.py's "32 rows, stacked":
    B 64 at H 1024 in a grid that fits 132 SMs), as resident_config plans it: the product's
    N is the tile's 32 rows. B 40: a full tile and a ragged one (8 rows); 16-wide hidden
    chunks, one on grid_sync (the interpreter's one column), three on per_step. Against the
    fp64 emulation, as the 16-row stacked form."""
    from gru_triton.kernels import gru as gru_kernels

    real = gru_kernels.recurrence_config

    def config(hidden_size, path="persistent", batch=16, *args, **kwargs):
        cfg = real(hidden_size, path, batch, *args, **kwargs)
        if path == "persistent":
            return cfg
        return dict(cfg, BLOCK_B=32, BLOCK_H=16, STACKED_GATES=True)

    monkeypatch.setattr(gru_kernels, "recurrence_config", config)
    runs = []
    real_run = gru_kernels.gru_fwd_kernel.run

    def recording_run(*args, grid, **kwargs):
        runs.append((grid, kwargs["BLOCK_B"], kwargs["W_RESIDENT"], kwargs.get("STACKED_GATES"),
                     kwargs["num_warps"]))
        return real_run(*args, grid=grid, **kwargs)

    monkeypatch.setattr(gru_kernels.gru_fwd_kernel, "run", recording_run)
    gates, w_hh, b_hh, h0 = _layer_operands(5, 40, hidden, dtype, seed=6)
    hs, _ = gru_kernels.gru_forward(gates.clone(), w_hh, b_hh, h0, reverse=False, save=False,
                                    path=path)
    assert runs and {run[0][:2] for run in runs} == {(2, hidden // 16)}
    assert {run[1:] for run in runs} == {(32, True, True, 8)}
    _assert_emulated(hs.double(), gates, w_hh, b_hh, h0, False)


# B 21's lengths for the stacked forms' tests: a last tile of 5 rows, rows ending at each step.
_B21_LENGTHS = [5, 2, 1, 4] * 5 + [3]


def _saving_forward(gates, w_hh, b_hh, h0, lens, reverse, path):
    """gru_forward with save=True on a copy of ``gates`` (it writes the saved activations
    over them): (hs, activations, ghn)."""
    from gru_triton.kernels import gru as gru_kernels

    saved = gates.clone()
    hs, ghn = gru_kernels.gru_forward(saved, w_hh, b_hh, h0, lens, reverse=reverse, save=True,
                                      path=path)
    return hs, saved, ghn


def _forward_form(monkeypatch, form: dict, record) -> list:
    """Makes every launch but the persistent path's take ``form`` over its tile config
    (a dict the caller may change between runs), and returns the list that gets
    ``record(grid, kwargs)`` for each launch of gru_fwd_kernel."""
    from gru_triton.kernels import gru as gru_kernels

    real_config, real_run = gru_kernels.recurrence_config, gru_kernels.gru_fwd_kernel.run
    runs = []

    def config(hidden_size, path="persistent", batch=16, *args, **kwargs):
        cfg = real_config(hidden_size, path, batch, *args, **kwargs)
        return cfg if path == "persistent" else dict(cfg, **form)

    def recording_run(*args, grid, **kwargs):
        runs.append(record(grid, kwargs))
        return real_run(*args, grid=grid, **kwargs)

    monkeypatch.setattr(gru_kernels, "recurrence_config", config)
    monkeypatch.setattr(gru_kernels.gru_fwd_kernel, "run", recording_run)
    return runs


# The block's rows past the batch are another slot's or step's, not yet written at first:
# whatever the buffer held goes through the product and the gate math in columns that are
# never stored (the bit-for-bit comparison would see one that was), and numpy (the
# interpreter) warns when that is inf or nan.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("reverse,lengths", [(False, False), (True, True)],
                         ids=["forward", "reverse-lengths"])
@pytest.mark.parametrize("path,hidden,rows", [("grid_sync", 16, 16), ("per_step", 48, 16),
                                              ("grid_sync", 16, 32)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_stacked_gates_read_h_by_tma(dtype, path, hidden, rows, reverse, lengths, monkeypatch):
    """TMA_ROWS (bench/variants.py's "stacked, TMA rows"): the stacked forward reads h_{t-1}
    through a descriptor over the states, block (rows, K), instead of pointer loads. Bit for
    bit the states and saved activations of the same form without it: the dot gets the
    same operand. B 21: the last tile's block runs past the batch into the next step's
    rows (or past the buffer), whose columns of the product must never reach a stored
    value; reversed with lengths, the rows walk the buffer the other way and a tile stops
    its products early. Launched with the descriptor, where the plan asks for it."""

    form = {"BLOCK_B": rows, "BLOCK_H": 16, "STACKED_GATES": True}

    def record(grid, kwargs):
        desc = kwargs.get("h_desc")
        return (kwargs.get("TMA_ROWS", False), kwargs["W_RESIDENT"],
                kwargs.get("STACKED_GATES", False), kwargs.get("PROXY_FENCE", False),
                None if desc is None else tuple(desc.block_shape))

    runs = _forward_form(monkeypatch, form, record)
    T, B = 5, 21
    block_k = 1 << (hidden - 1).bit_length()  # all of K, a power of two
    gates, w_hh, b_hh, h0 = _layer_operands(T, B, hidden, dtype, seed=9)
    lens = torch.tensor(_B21_LENGTHS, dtype=torch.int32, device=DEVICE) if lengths else None
    out = []
    for tma in (False, True):
        form["TMA_ROWS"] = tma
        runs.clear()
        out.append(_saving_forward(gates, w_hh, b_hh, h0, lens, reverse, path))
        fence = DEVICE.type == "cuda" and path == "grid_sync" and tma
        assert runs and set(runs) == {(tma, True, True, fence and
                                       torch.cuda.get_device_capability()[0] >= 9,
                                       (rows, block_k) if tma else None)}, runs
    for name, got, expected in zip(("hs", "activations", "ghn"), out[1], out[0], strict=True):
        assert torch.equal(got, expected), name
    if not lengths:
        _assert_emulated(out[1][0].double(), gates, w_hh, b_hh, h0, reverse)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # TMA rows past the batch, as above
@pytest.mark.parametrize("tma", [False, True], ids=["pointer-loads", "tma"])
@pytest.mark.parametrize("path,hidden", [("grid_sync", 16), ("per_step", 48)])
def test_stacked_forward_without_licm_computes_the_same_bits(path, hidden, tma, monkeypatch):
    """NO_LICM (bench/variants.py's "... no LICM"): the stacked forward's time loop compiled
    without loop-invariant code motion is the same arithmetic, only where the wgmma
    descriptors are computed moves: bit for bit the states and saved activations of the
    hoisted loop, bf16, B 21, reversed with lengths. Launched with the flag the plan asks
    for (the interpreter ignores it; on a GPU the two compiled loops are compared)."""

    form = {"BLOCK_B": 16, "BLOCK_H": 16, "STACKED_GATES": True, "TMA_ROWS": tma}
    runs = _forward_form(monkeypatch, form, lambda grid, kwargs: (
        kwargs.get("NO_LICM", False), kwargs.get("TMA_ROWS", False), kwargs["W_RESIDENT"],
        kwargs.get("STACKED_GATES", False)))
    T, B = 5, 21
    gates, w_hh, b_hh, h0 = _layer_operands(T, B, hidden, torch.bfloat16, seed=9)
    lens = torch.tensor(_B21_LENGTHS, dtype=torch.int32, device=DEVICE)
    out = []
    for no_licm in (False, True):
        form["NO_LICM"] = no_licm
        runs.clear()
        out.append(_saving_forward(gates, w_hh, b_hh, h0, lens, True, path))
        tma_copies = tma and (DEVICE.type == "cpu" or torch.cuda.get_device_capability()[0] >= 9)
        assert set(runs) == {(no_licm, tma_copies, True, True)}, runs
    for name, got, expected in zip(("hs", "activations", "ghn"), out[1], out[0], strict=True):
        assert torch.equal(got, expected), name


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # TMA rows past the batch, as above
@pytest.mark.parametrize("reverse,lengths", [(False, False), (True, True)],
                         ids=["forward", "reverse-lengths"])
@pytest.mark.parametrize("hidden", [48, 64])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_stacked_forward_in_8_wide_chunks(dtype, hidden, reverse, lengths, monkeypatch):
    """bench/variants.py's "8 wide, stacked": each program owns 8 hidden units, so its
    stacked slice is [W_r; W_z; W_n; 0] in 8-row blocks, 32 rows (the dot's M), and twice
    the programs hold half the slice each. The same states and saved activations as the
    16-wide stacked form, pointer loads or TMA rows: on the CPU bit for bit (each value the
    same sum), on a GPU (mma.sync against wgmma, another order) within the emulation's
    rounding. A gate block taken from the wrong 8 rows, or a chunk's units from another
    chunk, changes every state after it. Per_step, whose grid has a program per chunk."""

    form = {}
    runs = _forward_form(monkeypatch, form, lambda grid, kwargs: (
        grid, kwargs["BLOCK_H"], kwargs["W_RESIDENT"], kwargs.get("STACKED_GATES", False),
        kwargs.get("TMA_ROWS", False)))
    T, B = 5, 21
    gates, w_hh, b_hh, h0 = _layer_operands(T, B, hidden, dtype, seed=9)
    lens = torch.tensor(_B21_LENGTHS, dtype=torch.int32, device=DEVICE) if lengths else None
    out = []
    for width, tma in ((16, False), (8, False), (8, True)):
        form.update(BLOCK_B=16, BLOCK_H=width, STACKED_GATES=True, TMA_ROWS=tma)
        runs.clear()
        out.append(_saving_forward(gates, w_hh, b_hh, h0, lens, reverse, "per_step"))
        assert set(runs) == {((2, hidden // width), width, True, True, tma)}, runs
    for got in out[1:]:
        for name, g, e in zip(("hs", "activations", "ghn"), got, out[0], strict=True):
            if DEVICE.type == "cpu":
                assert torch.equal(g, e), name
            else:  # each within one ulp of the largest value of the emulation (above)
                bound = 2 * torch.finfo(dtype).eps * e.double().abs().max()
                assert (g.double() - e.double()).abs().max() <= bound, name
        if not lengths:
            _assert_emulated(got[0].double(), gates, w_hh, b_hh, h0, reverse)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_split_k_stores_the_same_16_bit_states(dtype, monkeypatch):
    """The split-K forward (SPLIT_K, bench/variants.py's "split K") with 16-bit weights: its
    slices hold the weights' dtype and read the rounded h_{t-1}, and the exact fp32 state
    it carries from step to step is the one the emulation carries. H = 112: K = 128, eight
    slices of 16, the last wholly past H (per_step's 32-wide chunks split only where H is
    a multiple of 16); per_step, so each step starts from the state its previous launch
    stored."""
    from gru_triton.kernels import gru_forward

    runs = force_resident_form(monkeypatch, SPLIT_K=8)
    gates, w_hh, b_hh, h0 = _layer_operands(7, 5, 112, dtype, seed=5)
    hs, _ = gru_forward(gates.clone(), w_hh, b_hh, h0, reverse=True, save=False,
                        path="per_step")
    assert runs and set(runs) == {(True, False, 8, 1)}
    _assert_emulated(hs.double(), gates, w_hh, b_hh, h0, True)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_resident_grid_sync_carries_the_fp32_state(dtype, reverse, monkeypatch):
    """grid_sync with the slice resident (one column, H = 16, as the interpreter can run it):
    one launch for all steps, whose program keeps its rows' exact state in registers from
    step to step and loads each step's x-side gates a step ahead. Its stored states meet
    the same fp64 emulation as the paths that reload the state every step."""
    from gru_triton.kernels import gru_forward

    runs = force_resident_form(monkeypatch)
    T = 7
    gates, w_hh, b_hh, h0 = _layer_operands(T, 5, 16, dtype, seed=6)
    hs, _ = gru_forward(gates.clone(), w_hh, b_hh, h0, reverse=reverse, save=False,
                        path="grid_sync")
    assert runs == [(True, False, 1, 1)]
    _assert_emulated(hs.double(), gates, w_hh, b_hh, h0, reverse)
