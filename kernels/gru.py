"""Fused GRU recurrence kernels (PyTorch's "reset after" form) and their launchers.

One launch walks one layer and one direction through time. Per step, each program takes a
batch tile and one or more chunks of the hidden units, computes its slice of
h_{t-1} @ W_hhᵀ for the three gates with ``tl.dot``, applies the gate math of
``gru_cell_forward`` and writes its slice of h_t. Two ways to drive it, same kernel:

* persistent (``n_steps == T``, one program column): each program owns a batch tile and *all*
  hidden units, so no other program ever needs its h_t; a CTA barrier between steps is the
  only synchronisation and the whole sequence is one launch.
* per step (``n_steps == 1``): the hidden units are split across programs and the launch
  boundary is the barrier; the host issues T launches.

The input projection (x @ W_ihᵀ + b_ih for all timesteps) and the weight gradients are large
GEMMs done by the caller before and after the recurrence, never per step.

Storage conventions (all contiguous, row-major):
  gates   (T, B, 3H)  acc dtype: in: x-side gate pre-activations [r | z | n];
                      out (when SAVE): the activations r, z, n, kept for backward
  hs      (T+1, B, H) acc dtype: hidden states by "slot". Forward direction: h0 in slot 0 and
                      h_t in slot t+1; reverse direction: h_t in slot t and h0 in slot T. Either
                      way the output sequence is a contiguous slice and h_{t-1} of a step is
                      one slot away.
  ghn     (T, B, H)   acc dtype: W_hn h_{t-1} + b_hn, the only pre-activation backward needs
                      that the activations do not give back.
  acc dtype is float32 for fp32/bf16/fp16 weights and float64 for fp64 weights.
"""

import os

import torch
import triton
import triton.language as tl


@triton.jit
def _tanh(x):
    # tl has no tanh that also runs in the interpreter; this form saturates cleanly at ±inf.
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def gru_cell_forward(gx_r, gx_z, gx_n, gh_r, gh_z, gh_n, h_prev):
    """The GRU gate math, once for every kernel path.

    gx_*: x-side pre-activations (b_ih included); gh_*: hidden-side ones (b_hh included).
    Returns (h_new, r, z, n), all in the dtype of the inputs (fp32 or fp64).
    """
    r = tl.sigmoid(gx_r + gh_r)
    z = tl.sigmoid(gx_z + gh_z)
    n = _tanh(gx_n + r * gh_n)
    h_new = n + z * (h_prev - n)
    return h_new, r, z, n


@triton.jit
def gru_cell_backward(dh, h_prev, r, z, n, gh_n):
    """Gradients through ``gru_cell_forward`` given dL/dh_new.

    Returns (d_r, d_z, d_n, d_gh_n, dh_prev_direct): d_r/d_z/d_n are the gradients of the
    gate pre-activations (equal on the x side and, for r and z, on the hidden side);
    d_gh_n = d_n * r is the hidden-side gradient of the candidate; dh_prev_direct = dh * z is
    the part of dL/dh_prev that does not pass through W_hh.
    """
    d_npre = dh * (1.0 - z) * (1.0 - n * n)
    d_zpre = dh * (h_prev - n) * z * (1.0 - z)
    d_rpre = d_npre * gh_n * r * (1.0 - r)
    return d_rpre, d_zpre, d_npre, d_npre * r, dh * z


@triton.jit
def _hidden_times_w_hh_t(h_rows, mask_b, w_hh_ptr, offs_j, mask_j, H,
                         acc_r, acc_z, acc_n,
                         DOT_PRECISION: tl.constexpr, DOT_IN_FP32: tl.constexpr,
                         BLOCK_K: tl.constexpr):
    """acc_g += h[b, :] @ W_hh[g*H + j, :]ᵀ for the three gates g; h_rows: (BLOCK_B,) row pointers."""
    w_dtype = tl.float32 if DOT_IN_FP32 else w_hh_ptr.dtype.element_ty
    for k0 in range(0, H, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < H
        b_h = tl.load(h_rows[:, None] + offs_k[None, :],
                      mask=mask_b[:, None] & mask_k[None, :], other=0.0).to(w_dtype)
        # Tile (k, j) of W_hh[g*H + j, k]: W_hh is (3H, H) row-major, so this is its transpose.
        p_w = w_hh_ptr + offs_j[None, :].to(tl.int64) * H + offs_k[:, None]
        mask_w = mask_k[:, None] & mask_j[None, :]
        b_wr = tl.load(p_w, mask=mask_w, other=0.0).to(w_dtype)
        b_wz = tl.load(p_w + H * H, mask=mask_w, other=0.0).to(w_dtype)
        b_wn = tl.load(p_w + 2 * H * H, mask=mask_w, other=0.0).to(w_dtype)
        acc_r = tl.dot(b_h, b_wr, acc_r, input_precision=DOT_PRECISION)
        acc_z = tl.dot(b_h, b_wz, acc_z, input_precision=DOT_PRECISION)
        acc_n = tl.dot(b_h, b_wn, acc_n, input_precision=DOT_PRECISION)
    return acc_r, acc_z, acc_n


@triton.jit
def _grad_gates_times_w_hh(dgx_rows, dghn_rows, mask_b, w_hh_ptr, offs_j, mask_j, H, acc,
                           DOT_PRECISION: tl.constexpr, DOT_IN_FP32: tl.constexpr,
                           BLOCK_K: tl.constexpr):
    """acc += [d_r | d_z | d_gh_n][b, :] @ W_hh[:, j]: the W_hh path of dL/dh_prev."""
    w_dtype = tl.float32 if DOT_IN_FP32 else w_hh_ptr.dtype.element_ty
    for k0 in range(0, H, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < H
        mask_d = mask_b[:, None] & mask_k[None, :]
        b_dr = tl.load(dgx_rows[:, None] + offs_k[None, :], mask=mask_d, other=0.0).to(w_dtype)
        b_dz = tl.load(dgx_rows[:, None] + H + offs_k[None, :], mask=mask_d, other=0.0).to(w_dtype)
        b_dn = tl.load(dghn_rows[:, None] + offs_k[None, :], mask=mask_d, other=0.0).to(w_dtype)
        p_w = w_hh_ptr + offs_k[:, None].to(tl.int64) * H + offs_j[None, :]
        mask_w = mask_k[:, None] & mask_j[None, :]
        b_wr = tl.load(p_w, mask=mask_w, other=0.0).to(w_dtype)
        b_wz = tl.load(p_w + H * H, mask=mask_w, other=0.0).to(w_dtype)
        b_wn = tl.load(p_w + 2 * H * H, mask=mask_w, other=0.0).to(w_dtype)
        acc = tl.dot(b_dr, b_wr, acc, input_precision=DOT_PRECISION)
        acc = tl.dot(b_dz, b_wz, acc, input_precision=DOT_PRECISION)
        acc = tl.dot(b_dn, b_wn, acc, input_precision=DOT_PRECISION)
    return acc


@triton.jit
def _batch_tile(B, BLOCK_B: tl.constexpr):
    """This program's batch rows: (mask, int64 row indices)."""
    offs_b = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    # int64 before multiplying: (slot * B + b) * 3H passes 2^31 at long, wide, large-batch shapes.
    return offs_b < B, offs_b.to(tl.int64)


@triton.jit
def gru_fwd_kernel(
    gates_ptr, w_hh_ptr, b_hh_ptr, hs_ptr, ghn_ptr,
    T, B, H, step_begin, n_steps,
    HAS_BIAS: tl.constexpr, REVERSE: tl.constexpr, SAVE: tl.constexpr,
    DOT_PRECISION: tl.constexpr, DOT_IN_FP32: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Steps [step_begin, step_begin + n_steps) of the forward recurrence (see module doc)."""
    acc_dtype = hs_ptr.dtype.element_ty
    mask_b, rows_b = _batch_tile(B, BLOCK_B)
    pid_h = tl.program_id(1)
    num_h_programs = tl.num_programs(1)
    for step in range(step_begin, step_begin + n_steps):
        if REVERSE:
            t = tl.cast(T - 1 - step, tl.int64)
            prev_slot = t + 1
            out_slot = t
        else:
            t = tl.cast(step, tl.int64)
            prev_slot = t
            out_slot = t + 1
        h_prev_rows = hs_ptr + (prev_slot * B + rows_b) * H
        h_out_rows = hs_ptr + (out_slot * B + rows_b) * H
        gate_rows = gates_ptr + (t * B + rows_b) * (3 * H)
        ghn_rows = ghn_ptr + (t * B + rows_b) * H
        for j in range(pid_h, tl.cdiv(H, BLOCK_H), num_h_programs):
            offs_j = j * BLOCK_H + tl.arange(0, BLOCK_H)
            mask_j = offs_j < H
            mask = mask_b[:, None] & mask_j[None, :]
            acc_r = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
            acc_z = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
            acc_n = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
            acc_r, acc_z, acc_n = _hidden_times_w_hh_t(
                h_prev_rows, mask_b, w_hh_ptr, offs_j, mask_j, H, acc_r, acc_z, acc_n,
                DOT_PRECISION, DOT_IN_FP32, BLOCK_K)
            if HAS_BIAS:
                acc_r += tl.load(b_hh_ptr + offs_j, mask=mask_j, other=0.0).to(acc_dtype)[None, :]
                acc_z += tl.load(b_hh_ptr + H + offs_j, mask=mask_j, other=0.0).to(acc_dtype)[None, :]
                acc_n += tl.load(b_hh_ptr + 2 * H + offs_j, mask=mask_j, other=0.0).to(acc_dtype)[None, :]
            p_gate = gate_rows[:, None] + offs_j[None, :]
            gx_r = tl.load(p_gate, mask=mask, other=0.0)
            gx_z = tl.load(p_gate + H, mask=mask, other=0.0)
            gx_n = tl.load(p_gate + 2 * H, mask=mask, other=0.0)
            h_prev = tl.load(h_prev_rows[:, None] + offs_j[None, :], mask=mask, other=0.0)
            h_new, r, z, n = gru_cell_forward(gx_r, gx_z, gx_n, acc_r, acc_z, acc_n, h_prev)
            tl.store(h_out_rows[:, None] + offs_j[None, :], h_new, mask=mask)
            if SAVE:
                tl.store(p_gate, r, mask=mask)
                tl.store(p_gate + H, z, mask=mask)
                tl.store(p_gate + 2 * H, n, mask=mask)
                tl.store(ghn_rows[:, None] + offs_j[None, :], acc_n, mask=mask)
        # h_t was written by other threads of this program; the next step reads all of it.
        tl.debug_barrier()


@triton.jit
def gru_bwd_kernel(
    dout_ptr, gates_ptr, ghn_ptr, hs_ptr, w_hh_ptr, dgx_ptr, dghn_ptr, dcarry_ptr,
    T, B, H, step_begin, n_steps,
    REVERSE: tl.constexpr, DOT_PRECISION: tl.constexpr, DOT_IN_FP32: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Backward steps [step_begin, step_begin + n_steps), counted from the last forward step.

    dout (T, B, H): dL/dh_t from the layer output. dcarry (2, B, H): ping-pong buffer of
    dh_t * z_t handed from one backward step to the next; slot 1 holds dL/dh_n on entry.
    Writes dgx (T, B, 3H) = [d_r | d_z | d_n] and dghn (T, B, H) = d_n * r.
    """
    acc_dtype = hs_ptr.dtype.element_ty
    mask_b, rows_b = _batch_tile(B, BLOCK_B)
    pid_h = tl.program_id(1)
    num_h_programs = tl.num_programs(1)
    for step in range(step_begin, step_begin + n_steps):
        # Backward step s undoes forward step T-1-s; t_next is the step undone just before.
        if REVERSE:
            t = tl.cast(step, tl.int64)
            t_next = t - 1
            prev_slot = t + 1
        else:
            t = tl.cast(T - 1 - step, tl.int64)
            t_next = t + 1
            prev_slot = t
        carry_in = dcarry_ptr + (((step + 1) % 2) * B + rows_b) * H
        carry_out = dcarry_ptr + ((step % 2) * B + rows_b) * H
        gate_rows = gates_ptr + (t * B + rows_b) * (3 * H)
        dgx_rows = dgx_ptr + (t * B + rows_b) * (3 * H)
        dghn_rows = dghn_ptr + (t * B + rows_b) * H
        dgx_next_rows = dgx_ptr + (t_next * B + rows_b) * (3 * H)
        dghn_next_rows = dghn_ptr + (t_next * B + rows_b) * H
        for j in range(pid_h, tl.cdiv(H, BLOCK_H), num_h_programs):
            offs_j = j * BLOCK_H + tl.arange(0, BLOCK_H)
            mask_j = offs_j < H
            mask = mask_b[:, None] & mask_j[None, :]
            p_bh = rows_b[:, None] * H + offs_j[None, :]
            dh = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
            if step > 0:
                dh = _grad_gates_times_w_hh(dgx_next_rows, dghn_next_rows, mask_b, w_hh_ptr,
                                            offs_j, mask_j, H, dh, DOT_PRECISION, DOT_IN_FP32, BLOCK_K)
            dh += tl.load(dout_ptr + t * B * H + p_bh, mask=mask, other=0.0)
            dh += tl.load(carry_in[:, None] + offs_j[None, :], mask=mask, other=0.0)
            p_gate = gate_rows[:, None] + offs_j[None, :]
            r = tl.load(p_gate, mask=mask, other=0.0)
            z = tl.load(p_gate + H, mask=mask, other=0.0)
            n = tl.load(p_gate + 2 * H, mask=mask, other=0.0)
            gh_n = tl.load(ghn_ptr + t * B * H + p_bh, mask=mask, other=0.0)
            h_prev = tl.load(hs_ptr + prev_slot * B * H + p_bh, mask=mask, other=0.0)
            d_r, d_z, d_n, d_ghn, dh_direct = gru_cell_backward(dh, h_prev, r, z, n, gh_n)
            p_dgx = dgx_rows[:, None] + offs_j[None, :]
            tl.store(p_dgx, d_r, mask=mask)
            tl.store(p_dgx + H, d_z, mask=mask)
            tl.store(p_dgx + 2 * H, d_n, mask=mask)
            tl.store(dghn_rows[:, None] + offs_j[None, :], d_ghn, mask=mask)
            tl.store(carry_out[:, None] + offs_j[None, :], dh_direct, mask=mask)
        tl.debug_barrier()


# ----------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------

_ACC_DTYPE = {torch.float32: torch.float32, torch.float16: torch.float32,
              torch.bfloat16: torch.float32, torch.float64: torch.float64}


def acc_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """The dtype the hidden state and accumulators are kept in for weights of ``dtype``."""
    if dtype not in _ACC_DTYPE:
        raise TypeError(f"gru_triton kernels support float16, bfloat16, float32 and float64, got {dtype}")
    return _ACC_DTYPE[dtype]


def recurrence_config(hidden_size: int) -> dict:
    """Tile sizes, warps and pipeline stages for both recurrence kernels at this shape.

    ``tl.dot`` needs every tile dimension >= 16. A 16-row batch tile × 32 hidden units ×
    32-wide K chunks at 8 warps and no software pipelining is the largest tile that compiles
    without register spills for fp32/tf32/bf16/fp16 on sm_80 and sm_90 in both kernels (the
    kernel report: 32- or 64-row batch tiles spill in the backward kernel, and so do 4 warps
    or 3 stages). So the tile does not depend on the batch: larger batches get more batch
    tiles, i.e. more programs.
    """
    block = 32 if hidden_size > 16 else 16
    return {"BLOCK_B": 16, "BLOCK_H": block, "BLOCK_K": block, "num_warps": 8, "num_stages": 1}


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _check_contiguous(**tensors) -> None:
    for name, x in tensors.items():
        if x is not None and not x.is_contiguous():
            raise ValueError(f"{name} must be contiguous")


def _dot_in_fp32(w_hh: torch.Tensor) -> bool:
    # The interpreter's tl.dot on bfloat16 tiles returns garbage (numpy has no bfloat16), so
    # there the tiles are widened to fp32 first: exact for bf16 values, and the fp32 dot with
    # fp32 accumulation is what the tensor cores compute on a GPU.
    return w_hh.dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _grid(batch: int, hidden_size: int, cfg: dict, persistent: bool):
    n_h = 1 if persistent else triton.cdiv(hidden_size, cfg["BLOCK_H"])
    return (triton.cdiv(batch, cfg["BLOCK_B"]), n_h)


def gru_forward(gates: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor | None,
                h0: torch.Tensor, *, reverse: bool, save: bool, persistent: bool,
                dot_precision: str = "ieee"):
    """Runs the recurrence of one GRU layer and direction.

    gates: (T, B, 3H), acc dtype: x @ W_ihᵀ + b_ih. Overwritten with the activations
        (r, z, n) when ``save`` (for backward); read only otherwise.
    w_hh: (3H, H), fp16/bf16/fp32/fp64. b_hh: (3H,) same dtype, or None.
    h0: (B, H), acc dtype.
    persistent: one launch walks all T steps (one program per batch tile, all hidden units);
        otherwise one launch per step with the hidden units split across programs.
    dot_precision: ``tl.dot`` input precision for fp32 weights ("ieee" or "tf32").
    Returns hs (T+1, B, H) acc dtype (slot layout in the module doc) and ghn (T, B, H), or
    None when not ``save``.
    """
    _check(gates.dim() == 3, f"gates must be (T, B, 3H), got {tuple(gates.shape)}")
    T, B, three_h = gates.shape
    H = w_hh.shape[1]
    _check(T > 0 and B > 0, f"T and B must be positive, got T={T}, B={B}")
    _check(tuple(w_hh.shape) == (3 * H, H), f"w_hh must be (3H, H), got {tuple(w_hh.shape)}")
    _check(three_h == 3 * H, f"gates must be (T, B, {3 * H}), got {tuple(gates.shape)}")
    _check(tuple(h0.shape) == (B, H), f"h0 must be ({B}, {H}), got {tuple(h0.shape)}")
    acc = acc_dtype_for(w_hh.dtype)
    _check(gates.dtype == acc and h0.dtype == acc, f"gates and h0 must be {acc}")
    _check(b_hh is None or (tuple(b_hh.shape) == (3 * H,) and b_hh.dtype == w_hh.dtype),
           "b_hh must be (3H,) with the dtype of w_hh")
    _check(dot_precision in ("ieee", "tf32"), f"unknown dot_precision {dot_precision!r}")
    _check_contiguous(gates=gates, w_hh=w_hh, b_hh=b_hh, h0=h0)

    hs = torch.empty((T + 1, B, H), dtype=acc, device=gates.device)
    hs[T if reverse else 0] = h0
    ghn = torch.empty((T, B, H), dtype=acc, device=gates.device) if save else hs
    cfg = recurrence_config(H)
    grid = _grid(B, H, cfg, persistent)
    meta = dict(HAS_BIAS=b_hh is not None, REVERSE=reverse, SAVE=save,
                DOT_PRECISION=dot_precision, DOT_IN_FP32=_dot_in_fp32(w_hh), **cfg)
    bias = b_hh if b_hh is not None else w_hh
    if persistent:
        gru_fwd_kernel[grid](gates, w_hh, bias, hs, ghn, T, B, H, 0, T, **meta)
    else:
        for step in range(T):
            gru_fwd_kernel[grid](gates, w_hh, bias, hs, ghn, T, B, H, step, 1, **meta)
    return hs, (ghn if save else None)


def gru_backward(dout: torch.Tensor, dh_n: torch.Tensor, gates: torch.Tensor,
                 ghn: torch.Tensor, hs: torch.Tensor, w_hh: torch.Tensor, *,
                 reverse: bool, persistent: bool, dot_precision: str = "ieee"):
    """Reverse-time pass of one GRU layer and direction.

    dout: (T, B, H) acc dtype, dL/d(output_t). dh_n: (B, H) acc dtype, dL/dh_n.
    gates, ghn, hs: what ``gru_forward(..., save=True)`` left. w_hh: (3H, H).
    Returns (dgx, dghn, dh_direct): dgx (T, B, 3H) the gate pre-activation gradients
    [d_r | d_z | d_n] (= dL/d(x @ W_ihᵀ + b_ih)); dghn (T, B, H) = d_n * r (the n-part of
    dL/d(h @ W_hhᵀ + b_hh); the r and z parts equal dgx's); dh_direct (B, H) = dh * z of the
    first forward step. dL/dh0 = dh_direct + [d_r | d_z | dghn]_first @ W_hh.
    """
    T, B, H = dout.shape
    acc = acc_dtype_for(w_hh.dtype)
    for name, x, shape in (("dout", dout, (T, B, H)), ("dh_n", dh_n, (B, H)),
                           ("gates", gates, (T, B, 3 * H)), ("ghn", ghn, (T, B, H)),
                           ("hs", hs, (T + 1, B, H)), ("w_hh", w_hh, (3 * H, H))):
        _check(tuple(x.shape) == shape, f"{name} must be {shape}, got {tuple(x.shape)}")
        _check(x is w_hh or x.dtype == acc, f"{name} must be {acc}, got {x.dtype}")
    _check_contiguous(dout=dout, dh_n=dh_n, gates=gates, ghn=ghn, hs=hs, w_hh=w_hh)

    dgx = torch.empty((T, B, 3 * H), dtype=acc, device=dout.device)
    dghn = torch.empty((T, B, H), dtype=acc, device=dout.device)
    dcarry = torch.empty((2, B, H), dtype=acc, device=dout.device)
    dcarry[1] = dh_n
    cfg = recurrence_config(H)
    grid = _grid(B, H, cfg, persistent)
    meta = dict(REVERSE=reverse, DOT_PRECISION=dot_precision, DOT_IN_FP32=_dot_in_fp32(w_hh), **cfg)
    args = (dout, gates, ghn, hs, w_hh, dgx, dghn, dcarry, T, B, H)
    if persistent:
        gru_bwd_kernel[grid](*args, 0, T, **meta)
    else:
        for step in range(T):
            gru_bwd_kernel[grid](*args, step, 1, **meta)
    return dgx, dghn, dcarry[(T - 1) % 2]
