"""Fused GRU recurrence kernels and their launchers.

One launch walks one layer and one direction through time. Per step, each program takes a
batch tile and one or more chunks of the hidden units, computes its slice of
h_{t-1} @ W_hhᵀ for the three gates with ``tl.dot``, applies the gate math
(``gru_gates_rz`` and ``gru_candidate_update``) and writes its slice of h_t. Three ways to
drive it, same kernel:

* persistent (``n_steps == T``, one program column): each program owns a batch tile and *all*
  hidden units, so no other program ever needs its h_t; a CTA barrier between steps is the
  only synchronisation and the whole sequence is one launch.
* per step (``n_steps == 1``): the hidden units are split across programs and the launch
  boundary is the barrier; the host issues T launches.
* grid-synchronised (``GRID_SYNC``, ``n_steps == T``): the hidden units are split across
  programs that are all resident at once, and a grid barrier per batch tile separates the
  steps; one launch.

Constexpr flags, not copies, select the rest: bias, per-row lengths (packed sequences), the
reset-after form (PyTorch's) or the reset-before form (Cho et al. 2014; each step in two
phases, persistent grid only), reverse direction, and whether to save for backward.

The input projection (x @ W_ihᵀ + b_ih for all timesteps) and the weight gradients are large
GEMMs done by the caller before and after the recurrence, never per step.

Storage conventions (all contiguous, row-major):
  gates   (T, B, 3H)  storage dtype: in: x-side gate pre-activations [r | z | n];
                      out (when SAVE): the activations r, z, n, kept for backward
  hs      (T, B, H)   storage dtype: h_t at row t, in either direction: the layer's output
                      itself, which backward reads, so it is the one copy of the states
                      (16-bit weights: rounded, as the output is; the recurrence itself
                      carries the state in the acc dtype, see F32_STATE). The forward writes
                      it into a (T+1)-row buffer whose row T holds h0, h_{t-1} of the first
                      step (t = 0, or T - 1 reversed), and returns the first T rows as a
                      tensor of their own; the backward takes h0 apart (``_state_base``).
                      So the output is a whole tensor, not a slice: its gradient reaches
                      backward as it is, where for a slice of a (T+1)-row tensor autograd
                      would build a zero-filled (T+1, B, H) gradient and copy into it.
  ghn     (T, B, H)   storage dtype, reset-after form only: the candidate's hidden-side
                      pre-activation W_hn h_{t-1} + b_hn, the one thing backward needs that the
                      activations do not give back (the reset-before backward needs nothing
                      more, so that form saves none).
  acc dtype: float32 for fp32/bf16/fp16 weights, float64 for fp64 weights; the recurrence
  state and every accumulation use it. storage dtype: the weights' dtype for fp16/bf16 (what
  is saved for backward and the per-step gradients are kept at the model's precision, as
  the products that consume them already round their operands to it), else the acc dtype.
"""

import os
import warnings

import torch
import triton
import triton.language as tl
from triton.runtime.errors import OutOfResources


@triton.jit
def _tanh(x):
    # tl has no tanh that also runs in the interpreter; this form saturates cleanly at ±inf.
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def gru_gates_rz(gx_r, gx_z, gh_r, gh_z):
    """Reset and update gates: (r, z) = σ(x-side + hidden-side pre-activations)."""
    return tl.sigmoid(gx_r + gh_r), tl.sigmoid(gx_z + gh_z)


@triton.jit
def gru_candidate_update(gx_n, gh_n, r, z, h_prev, RESET_AFTER: tl.constexpr):
    """Candidate and new state: returns (h_new, n).

    gh_n is W_hn h_{t-1} + b_hn in the reset-after form (PyTorch's; r scales it here) and
    W_hn (r ⊙ h_{t-1}) + b_hn in the reset-before form (Cho et al. 2014; r is already in it).
    """
    if RESET_AFTER:
        n = _tanh(gx_n + r * gh_n)
    else:
        n = _tanh(gx_n + gh_n)
    return n + z * (h_prev - n), n


@triton.jit
def gru_cell_backward(dh, h_prev, r, z, n, gh_n, RESET_AFTER: tl.constexpr):
    """Gradients through ``gru_gates_rz`` + ``gru_candidate_update`` given dL/dh_new.

    Returns (d_r, d_z, d_n, d_gh_n, dh_prev_direct): d_r/d_z/d_n are the gradients of the
    gate pre-activations (the same on the x side and, for r and z, on the hidden side);
    d_gh_n is the gradient of gh_n; dh_prev_direct = dh * z is the part of dL/dh_prev that
    passes through neither W_hh nor r ⊙ h. Reset-before: d_r is left 0 here because it needs
    all of d_n @ W_hn first (``gru_reset_gate_backward``).
    """
    d_n = dh * (1.0 - z) * (1.0 - n * n)
    d_z = dh * (h_prev - n) * z * (1.0 - z)
    if RESET_AFTER:
        d_r = d_n * gh_n * r * (1.0 - r)
        d_gh_n = d_n * r
    else:
        d_r = tl.zeros_like(d_n)
        d_gh_n = d_n
    return d_r, d_z, d_n, d_gh_n, dh * z


@triton.jit
def gru_reset_gate_backward(d_rh, h_prev, r):
    """Reset-before only: from d_rh = dL/d(r ⊙ h_{t-1}) (= d_n @ W_hn), returns the reset
    gate's pre-activation gradient and the part of dL/dh_{t-1} that flows through r ⊙ h."""
    return d_rh * h_prev * r * (1.0 - r), d_rh * r


@triton.jit
def _tf32_nearest(x):
    """fp32 x rounded to TF32 (10 mantissa bits) to nearest, ties away from zero: PTX's
    ``cvt.rna.tf32.f32``, what cuDNN and cuBLAS hand their tensor cores. Integer ops, not
    inline PTX, so the interpreter runs the same rounding; NaN is kept as it is (the carry
    would turn some NaNs into zeros or infinities).

    Why the kernels round at all: Triton hands the MMA the fp32 bits (no cvt in the PTX,
    sm_80 and sm_90) and the MMA drops each operand's low 13 bits, so every product leans
    toward zero; summed over T * B rows, the lean put bias_ih's gradient at H 1024 2.7x as
    far from fp64 as cuDNN's (H200, bench/tf32_bias_lean.py)."""
    bits = x.to(tl.uint32, bitcast=True)
    nearest = ((bits + 0x1000) & 0xFFFFE000).to(tl.float32, bitcast=True)
    return tl.where(x == x, nearest, x)


@triton.jit
def _dot_operand(x, w_dtype, ROUND: tl.constexpr):
    """x (any shape), a row operand of a W_hh product, as a ``tl.dot`` operand: in w_dtype,
    and with ROUND (TF32 dots whose rows the producer did not round: the reset-before form)
    on fp32 data, rounded to TF32 (``_tf32_nearest``). The reset-after kernels' TF32 rows
    come rounded from their producer (ROWS_ROUNDED): rounded here, between the load and the
    dot, the operand went through registers and an extra barrier per K chunk, and the H200's
    backward took 26-49% longer a step. W_hh comes rounded from the launchers
    (``tf32_nearest``)."""
    x = x.to(w_dtype)
    if ROUND and x.dtype == tl.float32:
        x = _tf32_nearest(x)
    return x


@triton.jit
def _gate_tiles(p_w, mask_w, H, w_dtype, DO_RZ: tl.constexpr, DO_N: tl.constexpr):
    """The tiles at p_w of the r, z (DO_RZ) and n (DO_N) gates' blocks of W_hh, which lie
    H * H apart; a gate not asked for is 0.0 (unused)."""
    b_wr, b_wz, b_wn = 0.0, 0.0, 0.0
    if DO_RZ:
        b_wr = tl.load(p_w, mask=mask_w, other=0.0).to(w_dtype)
        b_wz = tl.load(p_w + H * H, mask=mask_w, other=0.0).to(w_dtype)
    if DO_N:
        b_wn = tl.load(p_w + 2 * H * H, mask=mask_w, other=0.0).to(w_dtype)
    return b_wr, b_wz, b_wn


@triton.jit
def _w_hh_t_tiles(w_hh_ptr, offs_j, mask_j, offs_k, H, w_dtype,
                  DO_RZ: tl.constexpr, DO_N: tl.constexpr):
    """Tiles (k, j) of W_hh[g*H + j, k] for the gates g asked for (W_hh is (3H, H)
    row-major, so these are tiles of its transpose): (len(offs_k), len(offs_j)) each."""
    p_w = w_hh_ptr + offs_j[None, :].to(tl.int64) * H + offs_k[:, None]
    mask_w = (offs_k < H)[:, None] & mask_j[None, :]
    return _gate_tiles(p_w, mask_w, H, w_dtype, DO_RZ, DO_N)


@triton.jit
def _hidden_times_w_hh_t(h_rows, hn_rows, mask_b, w_hh_ptr, offs_j, mask_j, H,
                         acc_r, acc_z, acc_n, w_res_r, w_res_z, w_res_n,
                         DO_RZ: tl.constexpr, DO_N: tl.constexpr, N_FROM_H: tl.constexpr,
                         W_RESIDENT: tl.constexpr, DOT_PRECISION: tl.constexpr,
                         ROUND_ROWS: tl.constexpr, DOT_IN_FP32: tl.constexpr,
                         LOAD_CACHE: tl.constexpr, BLOCK_K: tl.constexpr):
    """acc_g += rows[b, :] @ W_hh[g*H + j, :]ᵀ for the gates asked for.

    h_rows / hn_rows: (BLOCK_B,) row pointers of the operand of the r/z gates and of the n
    gate; N_FROM_H: they are the same rows (reset-after), so the tile is loaded once.
    W_RESIDENT: w_res_r/z/n are this chunk's tiles of all three gates over all of K
    (BLOCK_K >= H, so one pass), loaded by the caller before its time loop; else W_hh is
    read here, BLOCK_K columns at a time.
    """
    w_dtype = tl.float32 if DOT_IN_FP32 else w_hh_ptr.dtype.element_ty
    for k0 in range(0, H, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < H
        mask_hk = mask_b[:, None] & mask_k[None, :]
        if DO_RZ or N_FROM_H:
            b_h = _dot_operand(tl.load(h_rows[:, None] + offs_k[None, :], mask=mask_hk,
                                       other=0.0, cache_modifier=LOAD_CACHE),
                               w_dtype, ROUND_ROWS)
        if DO_N:
            if N_FROM_H:
                b_hn = b_h
            else:
                b_hn = _dot_operand(tl.load(hn_rows[:, None] + offs_k[None, :], mask=mask_hk,
                                            other=0.0, cache_modifier=LOAD_CACHE),
                                    w_dtype, ROUND_ROWS)
        if W_RESIDENT:
            b_wr, b_wz, b_wn = w_res_r, w_res_z, w_res_n
        else:
            b_wr, b_wz, b_wn = _w_hh_t_tiles(w_hh_ptr, offs_j, mask_j, offs_k, H, w_dtype,
                                             DO_RZ, DO_N)
        # out_dtype is said because triton 3.6 (the GPU image's) takes fp32 for it and then
        # rejects an fp64 accumulator.
        acc_dtype = acc_r.dtype
        if DO_RZ:
            acc_r = tl.dot(b_h, b_wr, acc_r, input_precision=DOT_PRECISION, out_dtype=acc_dtype)
            acc_z = tl.dot(b_h, b_wz, acc_z, input_precision=DOT_PRECISION, out_dtype=acc_dtype)
        if DO_N:
            acc_n = tl.dot(b_hn, b_wn, acc_n, input_precision=DOT_PRECISION, out_dtype=acc_dtype)
    return acc_r, acc_z, acc_n


@triton.jit
def _k_order(j0, BLOCK_K: tl.constexpr, ROTATE_K: tl.constexpr):
    """The columns of K a resident product walks, (BLOCK_K,): 0, 1, ..., or with ROTATE_K
    from the program's own chunk j0 on, wrapping around (j0 % BLOCK_K, ..., BLOCK_K - 1, 0,
    ...). Rotated, the programs' reads of h_{t-1} right after the grid barrier start at
    different lines instead of all at column 0's (bench/exchange_bench.py's "barrier,
    rotated"); the product is the same, summed over K in another order."""
    offs_k = tl.arange(0, BLOCK_K)
    if ROTATE_K:
        offs_k = (offs_k + j0 % BLOCK_K) % BLOCK_K
    return offs_k


@triton.jit
def _stacked_w_hh(w_hh_ptr, j0, H, w_dtype, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                  ROTATE_K: tl.constexpr):
    """Rows [W_r[j]; W_z[j]; W_n[j]; 0] of W_hh for the hidden units j0 + [0, BLOCK_H), all
    of K (BLOCK_K >= H) in ``_k_order``: (4 * BLOCK_H, BLOCK_K). The fourth block is zeros
    because a dot's tile dimensions are powers of two."""
    m = tl.arange(0, 4 * BLOCK_H)
    gate = m // BLOCK_H
    j = j0 + m % BLOCK_H
    offs_k = _k_order(j0, BLOCK_K, ROTATE_K)
    p_w = w_hh_ptr + (gate * H + j).to(tl.int64)[:, None] * H + offs_k[None, :]
    mask_w = ((gate < 3) & (j < H))[:, None] & (offs_k < H)[None, :]
    return tl.load(p_w, mask=mask_w, other=0.0).to(w_dtype)


@triton.jit
def _stacked_gates_times_hidden(w_stack, h_rows, mask_b, H, j0, acc_dtype, w_dtype,
                                DOT_PRECISION: tl.constexpr, ROUND_ROWS: tl.constexpr,
                                LOAD_CACHE: tl.constexpr,
                                BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                                ROTATE_K: tl.constexpr, h_desc=None, desc_row=0,
                                TMA_ROWS: tl.constexpr = False):
    """rows[b, :] @ W_hh[g*H + j, :]ᵀ for the three gates as one product, transposed:
    w_stack (4 * BLOCK_H, BLOCK_K) (``_stacked_w_hh`` for the chunk j0, its K in the same
    ``_k_order``) @ h_{t-1}ᵀ (BLOCK_K, BLOCK_B). Returns the r, z, n tiles, (BLOCK_B,
    BLOCK_H) each, in acc_dtype.

    Why transposed and stacked: the (BLOCK_B, BLOCK_H) = 16 × 16 tile of one gate is one
    warp's MMA tile, so every further warp repeats the whole product, reading the program's
    W_hh slice from shared memory once per warp per step (the compiled sm_90 kernel at
    H = 1024: 8 warps × 128 KiB of ldmatrix per step). Stacked, the product is 64 rows tall:
    the warps split its rows, and on sm_90 one warpgroup issues it as wgmma, which reads
    both operands from shared memory without the per-warp copies.

    TMA_ROWS (16-bit, or TF32 rows rounded by their producer; K in its own order): h_{t-1}'s
    rows come from ``h_desc``, a descriptor over them as rows, block (BLOCK_B, BLOCK_K)
    starting at row ``desc_row`` (``_desc_row``): on sm_90
    one TMA copy puts them in shared memory, where the wgmma reads them, instead of every
    thread loading its share into registers and storing it there. The block's rows past the
    batch hold whatever follows it (another step's rows, or zeros past the buffer); their
    columns of the product are their own and are never stored.
    """
    if TMA_ROWS:
        tl.static_assert(not ROTATE_K and not ROUND_ROWS, "TMA rows: rows as the dot takes "
                         "them, K in order")
        b_h = _dot_operand(h_desc.load([desc_row, 0]), w_dtype, False)
    else:
        offs_k = _k_order(j0, BLOCK_K, ROTATE_K)
        mask_hk = mask_b[:, None] & (offs_k < H)[None, :]
        b_h = _dot_operand(tl.load(h_rows[:, None] + offs_k[None, :], mask=mask_hk, other=0.0,
                                   cache_modifier=LOAD_CACHE), w_dtype, ROUND_ROWS)
    acc = tl.dot(w_stack, tl.trans(b_h), input_precision=DOT_PRECISION, out_dtype=acc_dtype)
    # (4 * BLOCK_H, BLOCK_B), row g * BLOCK_H + j -> [g // 2, g % 2, j, b] -> [b, j, g // 2,
    # g % 2]; split takes the last axis: g % 2 first, then g // 2.
    parts = tl.permute(tl.reshape(acc, (2, 2, BLOCK_H, acc.shape[1])), (3, 2, 0, 1))
    even, odd = tl.split(parts)
    acc_r, acc_n = tl.split(even)
    acc_z, _ = tl.split(odd)
    return acc_r, acc_z, acc_n


@triton.jit
def _split_k_slices(w_hh_ptr, offs_j, mask_j, H, w_dtype, TRANSPOSED: tl.constexpr,
                    K_BEGIN: tl.constexpr, SPLIT_K: tl.constexpr, BLOCK_K: tl.constexpr):
    """The r, z, n gates' tiles of W_hh over K_BEGIN + [0, BLOCK_K), cut along K into
    SPLIT_K slices: (SPLIT_K, BLOCK_K // SPLIT_K, len(offs_j)) each, tile [s, k, j] holding
    the gate's W_hh[g*H + j, K_BEGIN + s*KC + k] (TRANSPOSED: the forward's rows @ W_hhᵀ) or
    W_hh[g*H + K_BEGIN + s*KC + k, j] (the backward's gradients @ W_hh)."""
    KC: tl.constexpr = BLOCK_K // SPLIT_K
    offs_k = (K_BEGIN + tl.arange(0, SPLIT_K) * KC)[:, None, None] + tl.arange(0, KC)[None, :, None]
    if TRANSPOSED:
        p_w = w_hh_ptr + offs_j[None, None, :].to(tl.int64) * H + offs_k
    else:
        p_w = w_hh_ptr + offs_k.to(tl.int64) * H + offs_j[None, None, :]
    mask_w = (offs_k < H) & mask_j[None, None, :]
    return _gate_tiles(p_w, mask_w, H, w_dtype, True, True)


@triton.jit
def _split_k_pieces(w_hh_ptr, offs_j, mask_j, H, w_dtype, TRANSPOSED: tl.constexpr,
                    SPLIT_K: tl.constexpr, K_PIECES: tl.constexpr, BLOCK_K: tl.constexpr):
    """The resident slice of a split-K program (BLOCK_K >= H), cut along K into K_PIECES
    pieces: for the r, z and n gates, a tuple of ``_split_k_slices`` per piece, each
    (SPLIT_K, BLOCK_K // (K_PIECES * SPLIT_K), len(offs_j))."""
    KP: tl.constexpr = BLOCK_K // K_PIECES
    ws_r, ws_z, ws_n = (), (), ()
    for p in tl.static_range(K_PIECES):
        w_r, w_z, w_n = _split_k_slices(w_hh_ptr, offs_j, mask_j, H, w_dtype, TRANSPOSED,
                                        p * KP, SPLIT_K, KP)
        ws_r, ws_z, ws_n = ws_r + (w_r,), ws_z + (w_z,), ws_n + (w_n,)
    return ws_r, ws_z, ws_n


@triton.jit
def _split_k_rows(rows, mask_b, H, w_dtype, ROUND_ROWS: tl.constexpr,
                  LOAD_CACHE: tl.constexpr, K_BEGIN: tl.constexpr, SPLIT_K: tl.constexpr,
                  BLOCK_K: tl.constexpr):
    """The (BLOCK_B, BLOCK_K) row operand at rows[b] + K_BEGIN + k, cut along K as
    ``_split_k_slices`` cuts the slice: (SPLIT_K, BLOCK_B, BLOCK_K // SPLIT_K), in w_dtype."""
    KC: tl.constexpr = BLOCK_K // SPLIT_K
    offs_k = (K_BEGIN + tl.arange(0, SPLIT_K) * KC)[:, None, None] + tl.arange(0, KC)[None, None, :]
    return _dot_operand(tl.load(rows[None, :, None] + offs_k,
                                mask=mask_b[None, :, None] & (offs_k < H), other=0.0,
                                cache_modifier=LOAD_CACHE), w_dtype, ROUND_ROWS)


@triton.jit
def _split_k_hidden_times_w_hh_t(h_rows, mask_b, H, ws_r, ws_z, ws_n, acc_dtype, w_dtype,
                                 DOT_PRECISION: tl.constexpr, ROUND_ROWS: tl.constexpr,
                                 LOAD_CACHE: tl.constexpr,
                                 SPLIT_K: tl.constexpr, K_PIECES: tl.constexpr,
                                 BLOCK_K: tl.constexpr):
    """rows[b, :] @ W_hh[g*H + j, :]ᵀ for the three gates, with K cut into SPLIT_K slices
    (ws_r/z/n from ``_split_k_pieces``, TRANSPOSED): one batched product per gate and K
    piece, (SPLIT_K, BLOCK_B, BLOCK_H), summed over the slices. Returns the r, z, n tiles,
    (BLOCK_B, BLOCK_H) each, in acc_dtype.

    Why: a gate's 16 × 16 tile is one warp's MMA tile, so in ``_hidden_times_w_hh_t`` every
    warp runs the whole product and reads the whole slice from shared memory each step. A
    batched product gives each warp its own K slice (Triton lays a 3-d dot's warps along the
    batch axis), so each step reads the slice and h from shared memory once, and the warps
    add their partial tiles (through shared memory, 3 × SPLIT_K × BLOCK_B × BLOCK_H values).
    K_PIECES > 1: h is staged for the dots a piece of K at a time, so shared memory holds the
    slice and one piece of h, and registers one piece's operands (``resident_config``: what
    keeps a K = 2048 slice in 16 bits, or 1024 in TF32, on an H100)."""
    KP: tl.constexpr = BLOCK_K // K_PIECES
    acc_r, acc_z, acc_n = 0.0, 0.0, 0.0
    for p in tl.static_range(K_PIECES):
        b_h = _split_k_rows(h_rows, mask_b, H, w_dtype, ROUND_ROWS, LOAD_CACHE, p * KP,
                            SPLIT_K, KP)
        # Each piece's partial tiles are summed across the warps before the next piece: summed
        # once over both, ptxas held every gate's operands at once and spilled (K = 2048).
        part_r = tl.sum(tl.dot(b_h, ws_r[p], input_precision=DOT_PRECISION, out_dtype=acc_dtype),
                        axis=0)
        part_z = tl.sum(tl.dot(b_h, ws_z[p], input_precision=DOT_PRECISION, out_dtype=acc_dtype),
                        axis=0)
        part_n = tl.sum(tl.dot(b_h, ws_n[p], input_precision=DOT_PRECISION, out_dtype=acc_dtype),
                        axis=0)
        if p == 0:
            acc_r, acc_z, acc_n = part_r, part_z, part_n
        else:
            acc_r, acc_z, acc_n = acc_r + part_r, acc_z + part_z, acc_n + part_n
    return acc_r, acc_z, acc_n


@triton.jit
def _w_hh_tiles(w_hh_ptr, offs_k, offs_j, mask_j, H, w_dtype,
                DO_RZ: tl.constexpr, DO_N: tl.constexpr):
    """Tiles (k, j) of W_g[k, j] for the gates g asked for (W_hh = [W_r; W_z; W_n], each
    (H, H)): (len(offs_k), len(offs_j)) each."""
    p_w = w_hh_ptr + offs_k[:, None].to(tl.int64) * H + offs_j[None, :]
    mask_w = (offs_k < H)[:, None] & mask_j[None, :]
    return _gate_tiles(p_w, mask_w, H, w_dtype, DO_RZ, DO_N)


@triton.jit
def _grad_gates_times_w_hh(dgx_rows, dghn_rows, mask_b, w_hh_ptr, offs_j, mask_j, H, acc,
                           w_res_r, w_res_z, w_res_n,
                           DO_RZ: tl.constexpr, DO_N: tl.constexpr, W_RESIDENT: tl.constexpr,
                           DOT_PRECISION: tl.constexpr, ROUND_ROWS: tl.constexpr,
                           DOT_IN_FP32: tl.constexpr,
                           LOAD_CACHE: tl.constexpr, BLOCK_K: tl.constexpr):
    """acc += [d_r | d_z][b, :] @ W_hh[:2H, j] (DO_RZ) + d_gh_n[b, :] @ W_hn[:, j] (DO_N).

    W_RESIDENT: w_res_r/z/n are this chunk's columns of the three gates over all of K
    (BLOCK_K >= H, one pass), loaded by the caller before its time loop."""
    w_dtype = tl.float32 if DOT_IN_FP32 else w_hh_ptr.dtype.element_ty
    for k0 in range(0, H, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < H
        mask_d = mask_b[:, None] & mask_k[None, :]
        if DO_RZ:
            b_dr = _dot_operand(tl.load(dgx_rows[:, None] + offs_k[None, :], mask=mask_d,
                                        other=0.0, cache_modifier=LOAD_CACHE),
                                w_dtype, ROUND_ROWS)
            b_dz = _dot_operand(tl.load(dgx_rows[:, None] + H + offs_k[None, :], mask=mask_d,
                                        other=0.0, cache_modifier=LOAD_CACHE),
                                w_dtype, ROUND_ROWS)
        if DO_N:
            b_dn = _dot_operand(tl.load(dghn_rows[:, None] + offs_k[None, :], mask=mask_d,
                                        other=0.0, cache_modifier=LOAD_CACHE),
                                w_dtype, ROUND_ROWS)
        if W_RESIDENT:
            b_wr, b_wz, b_wn = w_res_r, w_res_z, w_res_n
        else:
            b_wr, b_wz, b_wn = _w_hh_tiles(w_hh_ptr, offs_k, offs_j, mask_j, H, w_dtype,
                                           DO_RZ, DO_N)
        acc_dtype = acc.dtype  # said for triton 3.6, as in _hidden_times_w_hh_t
        if DO_RZ:
            acc = tl.dot(b_dr, b_wr, acc, input_precision=DOT_PRECISION, out_dtype=acc_dtype)
            acc = tl.dot(b_dz, b_wz, acc, input_precision=DOT_PRECISION, out_dtype=acc_dtype)
        if DO_N:
            acc = tl.dot(b_dn, b_wn, acc, input_precision=DOT_PRECISION, out_dtype=acc_dtype)
    return acc


@triton.jit
def _split_k_grad_gates_times_w_hh(dgx_rows, dghn_rows, mask_b, H, ws_r, ws_z, ws_n, acc_dtype,
                                   w_dtype, DOT_PRECISION: tl.constexpr,
                                   ROUND_ROWS: tl.constexpr,
                                   LOAD_CACHE: tl.constexpr, SPLIT_K: tl.constexpr,
                                   K_PIECES: tl.constexpr, BLOCK_K: tl.constexpr):
    """[d_r | d_z][b, :] @ W_hh[:2H, j] + d_gh_n[b, :] @ W_hn[:, j] with K cut into SPLIT_K
    slices (ws_r/z/n from ``_split_k_pieces``, not TRANSPOSED): the three gates' batched
    products, per K piece, accumulate in one (SPLIT_K, BLOCK_B, BLOCK_H) tile, summed over
    the slices once. Returns (BLOCK_B, BLOCK_H) in acc_dtype.

    Why, as for the forward (``_split_k_hidden_times_w_hh_t``): each warp multiplies its own
    K slice instead of repeating the whole product, so a step reads the slice and the three
    operand rows from shared memory once; and the operands, (BLOCK_B, K) each, are spread
    over the warps, which lets them stay in registers at K = 1024 (kernel report). They are
    staged one at a time, a piece of K at a time."""
    KP: tl.constexpr = BLOCK_K // K_PIECES
    acc = tl.zeros((SPLIT_K, dgx_rows.shape[0], ws_r[0].shape[2]), dtype=acc_dtype)
    for p in tl.static_range(K_PIECES):
        acc = tl.dot(_split_k_rows(dgx_rows, mask_b, H, w_dtype, ROUND_ROWS, LOAD_CACHE,
                                   p * KP, SPLIT_K, KP), ws_r[p], acc,
                     input_precision=DOT_PRECISION, out_dtype=acc_dtype)
        acc = tl.dot(_split_k_rows(dgx_rows + H, mask_b, H, w_dtype, ROUND_ROWS, LOAD_CACHE,
                                   p * KP, SPLIT_K, KP), ws_z[p], acc,
                     input_precision=DOT_PRECISION, out_dtype=acc_dtype)
        acc = tl.dot(_split_k_rows(dghn_rows, mask_b, H, w_dtype, ROUND_ROWS, LOAD_CACHE,
                                   p * KP, SPLIT_K, KP), ws_n[p], acc,
                     input_precision=DOT_PRECISION, out_dtype=acc_dtype)
    return tl.sum(acc, axis=0)


@triton.jit
def _batch_tile(B, BLOCK_B: tl.constexpr, TILE_ROWS: tl.constexpr):
    """This program's batch rows: (mask, int64 row indices), (BLOCK_B,) each.

    TILE_ROWS (0: BLOCK_B): the rows a tile covers, fewer than the BLOCK_B a dot needs (16 at
    least), the others masked. Masked rows issue no loads, so each program of a
    grid-synchronised step reads TILE_ROWS rows of the others' h_t, not BLOCK_B: where twice
    the tiles still fit on the SMs, the exchange (whose time grows with what each program
    reads, docs/performance.md) halves its bytes per program, and the products keep their
    shape (their masked rows are zeros)."""
    offs = tl.arange(0, BLOCK_B)
    if TILE_ROWS == 0:
        offs_b = tl.program_id(0) * BLOCK_B + offs
        mask_b = offs_b < B
    else:
        offs_b = tl.program_id(0) * TILE_ROWS + offs
        mask_b = (offs < TILE_ROWS) & (offs_b < B)
    # int64 before multiplying: (t * B + b) * 3H passes 2^31 at long, wide, large-batch shapes.
    return mask_b, offs_b.to(tl.int64)


@triton.jit
def _desc_row(prev_row, step, B, ROWS_ROUNDED: tl.constexpr, BLOCK_B: tl.constexpr):
    """The first row of this program's block of h_{t-1} in gru_fwd_kernel's h_desc: in hs
    as ((T + 1) * B, H) rows, or with ROWS_ROUNDED in the rounded ping-pong hd as (2 * B, H)
    rows (slot step % 2, as the pointer loads read it)."""
    if ROWS_ROUNDED:
        first = (step % 2) * B
    else:
        first = prev_row * B
    return (first + tl.program_id(0) * BLOCK_B).to(tl.int32)


@triton.jit
def _proxy_fence():
    """``fence.proxy.async.global`` in every thread: orders the thread's generic-proxy
    accesses of global memory (plain loads and stores, the grid barrier's release and
    acquire) with its async-proxy ones (TMA copies, which read through another path; PTX
    ISA, "Async Proxy"). GPU only: the interpreter runs no inline PTX."""
    tl.inline_asm_elementwise("fence.proxy.async.global;\n\tmov.b32 $0, $1;", "=r,r",
                              [tl.full([1], 0, tl.int32)], dtype=tl.int32, is_pure=False,
                              pack=1)


@triton.jit
def _grid_arrive(sync_ptr):
    """This program's half of the grid-wide step boundary (``_grid_barrier``): once its
    threads have finished their stores (CTA barrier), one atomic releases them to the whole
    GPU. Stores made after it are not ordered before the other programs' next step."""
    tl.debug_barrier()
    tl.atomic_add(sync_ptr + tl.program_id(0), 1, sem="release", scope="gpu")


@triton.jit
def _grid_wait(sync_ptr, generation):
    """Spins on an acquiring read of the counter until every program of this batch tile has
    arrived ``generation`` times."""
    counter = sync_ptr + tl.program_id(0)
    target = generation * tl.num_programs(1)
    arrived = tl.atomic_add(counter, 0, sem="acquire", scope="gpu")
    while arrived < target:
        arrived = tl.atomic_add(counter, 0, sem="acquire", scope="gpu")
    tl.debug_barrier()


@triton.jit
def _grid_barrier(sync_ptr, generation):
    """Returns once every program of this batch tile (same program_id(0)) has called it
    ``generation`` times: the grid-wide step boundary of the grid-synchronised path.

    The launcher guarantees that all programs are resident at once (cooperative launch),
    without which this would deadlock. The interpreter runs programs one after another, so
    there it only ever runs with one program per batch tile.
    """
    _grid_arrive(sync_ptr)
    _grid_wait(sync_ptr, generation)


@triton.jit
def _tile_length(lengths_ptr, rows_b, mask_b, HAS_LENGTHS: tl.constexpr):
    """The longest sequence of this batch tile (0 without lengths: then unused)."""
    if HAS_LENGTHS:
        return tl.max(tl.load(lengths_ptr + rows_b, mask=mask_b, other=0), axis=0)
    else:
        return 0


@triton.jit
def _hidden_bias(b_hh_ptr, gate, offs_j, mask_j, H, acc_dtype):
    """b_hh of one gate (0 r, 1 z, 2 n) at the hidden units offs_j, as a (1, len(offs_j)) row
    in acc_dtype. Loaded where it is added rather than held across the product: it is an L1
    hit, and the registers are scarcer."""
    return tl.load(b_hh_ptr + gate * H + offs_j, mask=mask_j, other=0.0).to(acc_dtype)[None, :]


@triton.jit
def _three_gates(gate_rows, offs_j, mask, H, acc_dtype):
    """The x-side pre-activations of r, z and n at (gate_rows[b] + g * H + offs_j[j]),
    (BLOCK_B, BLOCK_H) each in acc_dtype, from one load of all three: three loads would each
    be followed by the layout conversion that waits for it, three round trips in a row."""
    g = tl.arange(0, 4)
    p = gate_rows[:, None, None] + offs_j[None, :, None] + (g * H)[None, None, :]
    x = tl.load(p, mask=mask[:, :, None] & (g < 3)[None, None, :], other=0.0).to(acc_dtype)
    # [b, j, g] -> [b, j, g // 2, g % 2]; split takes the last axis: g % 2 first.
    even, odd = tl.split(tl.reshape(x, (x.shape[0], x.shape[1], 2, 2)))
    gx_r, gx_n = tl.split(even)
    gx_z, _ = tl.split(odd)
    return gx_r, gx_z, gx_n


@triton.jit
def _past_length(keep, h_new, h_prev, r, z, n, gh_n):
    """Where keep is False (a row past its length): the state stays h_prev, and what is saved
    for backward is r = 0, z = 1, n = 0, gh_n = 0 (gru_fwd_kernel's doc says why)."""
    return (tl.where(keep, h_new, h_prev), tl.where(keep, r, 0.0), tl.where(keep, z, 1.0),
            tl.where(keep, n, 0.0), tl.where(keep, gh_n, 0.0))


@triton.jit
def _save_activations(p_gate, p_ghn, r, z, n, gh_n, mask, H, SAVE_GHN: tl.constexpr):
    """Stores r, z, n over the step's x-side gates at p_gate (gates H apart) and, reset-after
    (SAVE_GHN), gh_n at p_ghn, for backward. The stores round to the storage dtype (the
    model's, for fp16/bf16 weights)."""
    tl.store(p_gate, r, mask=mask)
    tl.store(p_gate + H, z, mask=mask)
    tl.store(p_gate + 2 * H, n, mask=mask)
    if SAVE_GHN:
        tl.store(p_ghn, gh_n, mask=mask)


@triton.jit
def _steps(step, T, REVERSE: tl.constexpr):
    """(t, row of h_{t-1}) of forward step ``step`` in the forward's states buffer, whose
    row T holds h0 (module doc), int64. Arithmetic, not a select: selecting h0's pointer at
    the first step cost the 4-warp resident step at K = 1024 some 15 registers and spills."""
    if REVERSE:
        t = tl.cast(T - 1 - step, tl.int64)
        return t, t + 1
    else:
        t = tl.cast(step, tl.int64)
        return t, (t + T) % (T + 1)


@triton.jit
def _state_base(hs_ptr, h0_ptr, t_prev, T, B, H):
    """For the backward: where h_{t-1}, whose time is t_prev, starts: hs row t_prev, or h0
    where t_prev is -1 or T (module doc). Its batch row b is H * b further on either way."""
    initial = (t_prev < 0) | (t_prev >= T)
    return tl.where(initial, h0_ptr, hs_ptr + t_prev * B * H)


@triton.jit
def gru_fwd_kernel(
    gates_ptr, w_hh_ptr, b_hh_ptr, hs_ptr, ghn_ptr, rh_ptr, hf_ptr, hd_ptr, lengths_ptr,
    sync_ptr, T, B, H, step_begin, n_steps,
    HAS_BIAS: tl.constexpr, HAS_LENGTHS: tl.constexpr, RESET_AFTER: tl.constexpr,
    REVERSE: tl.constexpr, SAVE: tl.constexpr, GRID_SYNC: tl.constexpr, F32_STATE: tl.constexpr,
    W_RESIDENT: tl.constexpr, DOT_PRECISION: tl.constexpr, DOT_IN_FP32: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
    STACKED_GATES: tl.constexpr = False, SPLIT_K: tl.constexpr = 1, K_PIECES: tl.constexpr = 1,
    ROWS_ROUNDED: tl.constexpr = False, ROTATE_K: tl.constexpr = False,
    TILE_ROWS: tl.constexpr = 0, TMA_ROWS: tl.constexpr = False,
    PROXY_FENCE: tl.constexpr = False, NO_LICM: tl.constexpr = False, h_desc=None,
):
    """Steps [step_begin, step_begin + n_steps) of the forward recurrence (see module doc).

    With lengths, a row past its length keeps its state (h_t = h_{t-1}) and, when SAVE, its
    saved activations are r = 0, z = 1, n = 0, for which the backward formulas pass dh
    through unchanged and give zero gate gradients; a tile whose rows are all past their
    lengths skips the W_hh products. Reset-before needs all of r ⊙ h_{t-1} before any n, so
    a step is two phases with a CTA barrier between them, and only the persistent grid
    (one program owns all hidden units of its rows) can run it.

    F32_STATE (16-bit weights, whose hs holds the states rounded to their dtype): the exact
    state the gate math updates lives in hf (2, B, H), acc dtype, a ping-pong (slot step % 2
    read, the other written). The W_hh products read h_{t-1} from hs, 16-bit: the dot rounds
    its operand to the weights' dtype anyway, so the numbers do not change, and every
    program's read of its rows of h_{t-1}, once per hidden chunk and step, is half the bytes
    of fp32: at B = 64 those reads are most of a grid-synchronised step's traffic
    (docs/performance.md). Without F32_STATE hf is hs.

    W_RESIDENT (reset-after; the launcher guarantees one hidden chunk per program and
    BLOCK_K >= H): the program's slice of W_hh, all of K, is loaded once, before the time
    loop, and the dots keep that operand in shared memory for every step (each step reads it
    back from there: the kernel report checks the shared memory and counts those reads), so
    the steps stop streaming W_hh from L2. Such a program also owns its rows' state for the
    whole launch, so that state stays in registers from step to step (hf and hs are still
    written, for the next launch and for backward), and with GRID_SYNC a step is ordered
    around the grid barrier: only h_t, which the other programs read next, is stored before
    this program arrives; the next step's x-side gates are loaded, and the saved activations
    and the exact state stored, while it waits (docs/performance.md, "What a resident step
    waits for").

    STACKED_GATES (with W_RESIDENT): the resident slice is the three gates' rows stacked, and
    each step's product is one transposed dot (``_stacked_gates_times_hidden``, which says
    why); the numbers are the same products, summed over K in the dot's own order. ROTATE_K
    (with STACKED_GATES): each program walks K from its own chunk on (``_k_order``).

    SPLIT_K (with W_RESIDENT, not STACKED_GATES): the slice is held cut along K into SPLIT_K
    slices, one per warp, and each gate's product is a batched dot summed over them
    (``_split_k_hidden_times_w_hh_t``, which says why); K_PIECES > 1: each slice in that many
    pieces along K, with h staged for the dots a piece at a time (``resident_config`` says
    where).

    ROWS_ROUNDED (TF32 dots, reset-after): the W_hh products read h_{t-1} from hd (2, B, H),
    fp32, a ping-pong of the states rounded to TF32 (``_tf32_nearest``) by the program that
    computes them (slot step % 2 read, the other written, as hf; the launcher puts h0's in
    slot 0), so the dots load their operand unchanged; the gate math reads the exact state
    from hs (or its registers). Without it TF32 rows are rounded as they are loaded.

    TILE_ROWS (0: BLOCK_B): a batch tile covers that many rows, the dots' other rows masked
    (``_batch_tile``), so each program reads fewer rows of h_{t-1} a step.

    TMA_ROWS (with STACKED_GATES and TILE_ROWS 0; 16-bit, or TF32 with ROWS_ROUNDED): the
    product reads h_{t-1} through h_desc, a descriptor over the rows it reads, in (BLOCK_B,
    BLOCK_K) blocks: hs as ((T + 1) * B, H) rows, or hd as (2 * B, H) (``_desc_row``,
    ``_stacked_gates_times_hidden``). PROXY_FENCE (GRID_SYNC, where the descriptor's loads
    are TMA copies: sm_90): each program fences the proxies after storing h_t and after the
    barrier's acquire (``_proxy_fence``), so its copies read what the other programs stored.

    NO_LICM: the time loop is compiled with loop-invariant code motion off
    (``tl.range(..., disable_licm=True)``). On, what no step changes is computed once before
    the loop and held in registers for the whole launch; for the stacked product that is its
    wgmma instructions' 64-bit shared-memory descriptors (128 at bf16 K = 1024), which made
    its 4-warp form spill under triton 3.6.0. Off, each step computes them where they are
    used, in uniform registers, and the step loop is as long as before (sm_90 SASS, bf16
    K = 1024, 8 warps: 627 instructions against 629; registers 135 against 254). The
    backward kernel has no such flag: its split forms spill with it at K >= 1024.
    """
    acc_dtype = hf_ptr.dtype.element_ty
    ROUND_LOADS: tl.constexpr = DOT_PRECISION == "tf32" and not ROWS_ROUNDED
    # Data other programs wrote this launch is read past L1, which is not coherent.
    LOAD_CACHE: tl.constexpr = ".cg" if GRID_SYNC else ""
    mask_b, rows_b = _batch_tile(B, BLOCK_B, TILE_ROWS)
    tile_len = _tile_length(lengths_ptr, rows_b, mask_b, HAS_LENGTHS)
    pid_h = tl.program_id(1)
    num_h_programs = tl.num_programs(1)
    w_dtype = tl.float32 if DOT_IN_FP32 else w_hh_ptr.dtype.element_ty
    # Only the plain resident form (tiles) and the split-K one (tuples of pieces) use them.
    w_res_r, w_res_z, w_res_n = 0.0, 0.0, 0.0
    if W_RESIDENT:
        # The one hidden chunk this program owns for the whole launch.
        offs_j = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
        mask_j = offs_j < H
        mask = mask_b[:, None] & mask_j[None, :]
        if STACKED_GATES:
            w_stack = _stacked_w_hh(w_hh_ptr, pid_h * BLOCK_H, H, w_dtype, BLOCK_H, BLOCK_K,
                                    ROTATE_K)
        elif SPLIT_K > 1:
            w_res_r, w_res_z, w_res_n = _split_k_pieces(
                w_hh_ptr, offs_j, mask_j, H, w_dtype, True, SPLIT_K, K_PIECES, BLOCK_K)
        else:
            w_res_r, w_res_z, w_res_n = _w_hh_t_tiles(
                w_hh_ptr, offs_j, mask_j, tl.arange(0, BLOCK_K), H, w_dtype, True, True)
        if HAS_LENGTHS:
            row_len = tl.load(lengths_ptr + rows_b, mask=mask_b, other=0)[:, None]
        first_t, first_prev = _steps(step_begin, T, REVERSE)
        if F32_STATE:
            first_rows = hf_ptr + ((step_begin % 2) * B + rows_b) * H
        else:
            first_rows = hs_ptr + (first_prev * B + rows_b) * H
        h_state = tl.load(first_rows[:, None] + offs_j[None, :], mask=mask, other=0.0).to(acc_dtype)
        if GRID_SYNC:
            gx_r, gx_z, gx_n = _three_gates(gates_ptr + (first_t * B + rows_b) * (3 * H),
                                            offs_j, mask, H, acc_dtype)
    for step in tl.range(step_begin, step_begin + n_steps, disable_licm=NO_LICM):
        t, prev_row = _steps(step, T, REVERSE)
        if HAS_LENGTHS:
            tile_active = t < tile_len
        else:
            tile_active: tl.constexpr = True
        dot_rows = hs_ptr + (prev_row * B + rows_b) * H
        h_out_rows = hs_ptr + (t * B + rows_b) * H
        if F32_STATE:
            # The barrier after each step orders every read of one slot before its rewrite.
            h_prev_rows = hf_ptr + ((step % 2) * B + rows_b) * H
            state_out_rows = hf_ptr + (((step + 1) % 2) * B + rows_b) * H
        else:
            h_prev_rows = dot_rows
            state_out_rows = h_out_rows  # unused
        # The rounded copy's slots, ordered by the same barriers as hf's.
        rounded_out_rows = hd_ptr + (((step + 1) % 2) * B + rows_b) * H
        if ROWS_ROUNDED:
            dot_rows = hd_ptr + ((step % 2) * B + rows_b) * H
        gate_rows = gates_ptr + (t * B + rows_b) * (3 * H)
        ghn_rows = ghn_ptr + (t * B + rows_b) * H
        rh_rows = rh_ptr + rows_b * H
        if W_RESIDENT:
            p_gate = gate_rows[:, None] + offs_j[None, :]
            acc_r = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
            acc_z = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
            acc_n = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
            if tile_active:
                if STACKED_GATES:
                    acc_r, acc_z, acc_n = _stacked_gates_times_hidden(
                        w_stack, dot_rows, mask_b, H, pid_h * BLOCK_H, acc_dtype, w_dtype,
                        DOT_PRECISION, ROUND_LOADS, LOAD_CACHE, BLOCK_H, BLOCK_K, ROTATE_K,
                        h_desc, _desc_row(prev_row, step, B, ROWS_ROUNDED, BLOCK_B), TMA_ROWS)
                elif SPLIT_K > 1:
                    acc_r, acc_z, acc_n = _split_k_hidden_times_w_hh_t(
                        dot_rows, mask_b, H, w_res_r, w_res_z, w_res_n, acc_dtype, w_dtype,
                        DOT_PRECISION, ROUND_LOADS, LOAD_CACHE, SPLIT_K, K_PIECES, BLOCK_K)
                else:
                    acc_r, acc_z, acc_n = _hidden_times_w_hh_t(
                        dot_rows, dot_rows, mask_b, w_hh_ptr, offs_j, mask_j, H, acc_r, acc_z,
                        acc_n, w_res_r, w_res_z, w_res_n, True, True, True, True,
                        DOT_PRECISION, ROUND_LOADS, DOT_IN_FP32, LOAD_CACHE, BLOCK_K)
            if HAS_BIAS:
                acc_r += _hidden_bias(b_hh_ptr, 0, offs_j, mask_j, H, acc_dtype)
                acc_z += _hidden_bias(b_hh_ptr, 1, offs_j, mask_j, H, acc_dtype)
                acc_n += _hidden_bias(b_hh_ptr, 2, offs_j, mask_j, H, acc_dtype)
            if not GRID_SYNC:
                gx_r, gx_z, gx_n = _three_gates(gate_rows, offs_j, mask, H, acc_dtype)
            r, z = gru_gates_rz(gx_r, gx_z, acc_r, acc_z)
            h_new, n = gru_candidate_update(gx_n, acc_n, r, z, h_state, True)
            if HAS_LENGTHS:
                h_new, r, z, n, acc_n = _past_length(t < row_len, h_new, h_state, r, z, n, acc_n)
            tl.store(h_out_rows[:, None] + offs_j[None, :], h_new, mask=mask)
            if ROWS_ROUNDED:
                tl.store(rounded_out_rows[:, None] + offs_j[None, :], _tf32_nearest(h_new),
                         mask=mask)
            h_state = h_new
            if GRID_SYNC:
                if PROXY_FENCE:
                    _proxy_fence()
                _grid_arrive(sync_ptr)
                # The next step's x-side gates do not wait on the other programs: loaded now,
                # their round trip overlaps the barrier instead of following the next product.
                next_t = t - 1 if REVERSE else t + 1
                gx_r, gx_z, gx_n = _three_gates(gates_ptr + (next_t * B + rows_b) * (3 * H),
                                                offs_j, mask & (tl.full(mask.shape, step + 1, tl.int32)
                                                                < step_begin + n_steps), H, acc_dtype)
            if F32_STATE:
                tl.store(state_out_rows[:, None] + offs_j[None, :], h_new, mask=mask)
            if SAVE:
                _save_activations(p_gate, ghn_rows[:, None] + offs_j[None, :], r, z, n, acc_n,
                                  mask, H, True)
            if GRID_SYNC:
                _grid_wait(sync_ptr, step - step_begin + 1)
                if PROXY_FENCE:
                    _proxy_fence()
            else:
                tl.debug_barrier()
        else:
            if not RESET_AFTER:
                # Phase 1: r and z of every hidden unit, and r ⊙ h_{t-1} for phase 2's product.
                for j in range(pid_h, tl.cdiv(H, BLOCK_H), num_h_programs):
                    offs_j = j * BLOCK_H + tl.arange(0, BLOCK_H)
                    mask_j = offs_j < H
                    mask = mask_b[:, None] & mask_j[None, :]
                    acc_r = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
                    acc_z = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
                    if tile_active:
                        acc_r, acc_z, _ = _hidden_times_w_hh_t(
                            dot_rows, dot_rows, mask_b, w_hh_ptr, offs_j, mask_j, H,
                            acc_r, acc_z, acc_r, w_res_r, w_res_z, w_res_n, True, False, True, False,
                            DOT_PRECISION, ROUND_LOADS, DOT_IN_FP32, "", BLOCK_K)
                    if HAS_BIAS:
                        acc_r += _hidden_bias(b_hh_ptr, 0, offs_j, mask_j, H, acc_dtype)
                        acc_z += _hidden_bias(b_hh_ptr, 1, offs_j, mask_j, H, acc_dtype)
                    p_gate = gate_rows[:, None] + offs_j[None, :]
                    gx_r = tl.load(p_gate, mask=mask, other=0.0).to(acc_dtype)
                    gx_z = tl.load(p_gate + H, mask=mask, other=0.0).to(acc_dtype)
                    r, z = gru_gates_rz(gx_r, gx_z, acc_r, acc_z)
                    h_prev = tl.load(h_prev_rows[:, None] + offs_j[None, :], mask=mask, other=0.0)
                    # Handed to phase 2 through scratch: r ⊙ h_{t-1} and z in the acc dtype (z
                    # enters the update, which 16-bit gate storage would round), r in gates (it is
                    # only saved, which rounds it anyway).
                    p_rh = rh_rows[:, None] + offs_j[None, :]
                    tl.store(p_rh, r * h_prev, mask=mask)
                    tl.store(p_rh + B * H, z, mask=mask)
                    tl.store(p_gate, r, mask=mask)
                tl.debug_barrier()
            for j in range(pid_h, tl.cdiv(H, BLOCK_H), num_h_programs):
                offs_j = j * BLOCK_H + tl.arange(0, BLOCK_H)
                mask_j = offs_j < H
                mask = mask_b[:, None] & mask_j[None, :]
                p_gate = gate_rows[:, None] + offs_j[None, :]
                acc_r = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
                acc_z = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
                acc_n = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
                if tile_active:
                    acc_r, acc_z, acc_n = _hidden_times_w_hh_t(
                        dot_rows, rh_rows, mask_b, w_hh_ptr, offs_j, mask_j, H, acc_r, acc_z,
                        acc_n, w_res_r, w_res_z, w_res_n, RESET_AFTER, True, RESET_AFTER,
                        False, DOT_PRECISION, ROUND_LOADS, DOT_IN_FP32, LOAD_CACHE, BLOCK_K)
                if HAS_BIAS:
                    acc_n += _hidden_bias(b_hh_ptr, 2, offs_j, mask_j, H, acc_dtype)
                if RESET_AFTER:
                    if HAS_BIAS:
                        acc_r += _hidden_bias(b_hh_ptr, 0, offs_j, mask_j, H, acc_dtype)
                        acc_z += _hidden_bias(b_hh_ptr, 1, offs_j, mask_j, H, acc_dtype)
                    gx_r = tl.load(p_gate, mask=mask, other=0.0).to(acc_dtype)
                    gx_z = tl.load(p_gate + H, mask=mask, other=0.0).to(acc_dtype)
                    r, z = gru_gates_rz(gx_r, gx_z, acc_r, acc_z)
                else:
                    r = tl.load(p_gate, mask=mask, other=0.0).to(acc_dtype)
                    z = tl.load(rh_rows[:, None] + B * H + offs_j[None, :], mask=mask, other=0.0)
                gx_n = tl.load(p_gate + 2 * H, mask=mask, other=0.0).to(acc_dtype)
                h_prev = tl.load(h_prev_rows[:, None] + offs_j[None, :], mask=mask, other=0.0)
                h_new, n = gru_candidate_update(gx_n, acc_n, r, z, h_prev, RESET_AFTER)
                if HAS_LENGTHS:
                    # Re-read (from L1) rather than held in registers across the W_hh products.
                    keep = (t < tl.load(lengths_ptr + rows_b, mask=mask_b, other=0))[:, None]
                    h_new, r, z, n, acc_n = _past_length(keep, h_new, h_prev, r, z, n, acc_n)
                tl.store(h_out_rows[:, None] + offs_j[None, :], h_new, mask=mask)
                if ROWS_ROUNDED:
                    tl.store(rounded_out_rows[:, None] + offs_j[None, :], _tf32_nearest(h_new),
                             mask=mask)
                if F32_STATE:
                    tl.store(state_out_rows[:, None] + offs_j[None, :], h_new, mask=mask)
                if SAVE:
                    _save_activations(p_gate, ghn_rows[:, None] + offs_j[None, :], r, z, n,
                                      acc_n, mask, H, RESET_AFTER)
            # h_t was written by other threads (and, grid-synchronised, other programs); the
            # next step reads all of it.
            if GRID_SYNC:
                _grid_barrier(sync_ptr, step - step_begin + 1)
            else:
                tl.debug_barrier()


@triton.jit
def _bwd_steps(step, T, REVERSE: tl.constexpr):
    """(t, t_next, t_prev) of backward step ``step``, int64: it undoes forward step t; t_next
    is the forward step undone just before it, t_prev the time of h_{t-1} (``_state_base``)."""
    if REVERSE:
        t = tl.cast(step, tl.int64)
        return t, t - 1, t + 1
    else:
        t = tl.cast(T - 1 - step, tl.int64)
        return t, t + 1, t - 1


@triton.jit
def _bwd_step_inputs(dhs_ptr, gates_ptr, ghn_ptr, hs_ptr, h0_ptr, t, t_prev, rows_b, offs_j,
                     mask, T, B, H, acc_dtype, HAS_DHS: tl.constexpr,
                     RESET_AFTER: tl.constexpr):
    """What backward step t reads besides the W_hh product, (BLOCK_B, BLOCK_H) tiles in
    acc_dtype: dL/dh_t from the output (dhs row t; 0.0 without HAS_DHS), the saved r, z, n,
    gh_n (reset-after; n again otherwise, unused) and h_{t-1} (time t_prev, ``_state_base``).

    r, z and n are three loads, not the forward's one (``_three_gates``): loaded as one,
    the streamed step's 64-row tiles spilled (fp32 and fp64, 64-88 bytes on sm_90) and the
    resident step at K = 512 took 18 more registers (spilling 72 bytes on sm_90 where H is
    not a multiple of 16). The resident grid_sync step loads them while it waits at the
    barrier, where their round trips overlap it anyway."""
    p_bh = rows_b[:, None] * H + offs_j[None, :]
    d_out = 0.0
    if HAS_DHS:
        d_out = tl.load(dhs_ptr + t * B * H + p_bh, mask=mask, other=0.0).to(acc_dtype)
    p_gate = gates_ptr + (t * B + rows_b)[:, None] * (3 * H) + offs_j[None, :]
    r = tl.load(p_gate, mask=mask, other=0.0).to(acc_dtype)
    z = tl.load(p_gate + H, mask=mask, other=0.0).to(acc_dtype)
    n = tl.load(p_gate + 2 * H, mask=mask, other=0.0).to(acc_dtype)
    gh_n = n
    if RESET_AFTER:
        gh_n = tl.load(ghn_ptr + t * B * H + p_bh, mask=mask, other=0.0).to(acc_dtype)
    h_prev = tl.load(_state_base(hs_ptr, h0_ptr, t_prev, T, B, H) + p_bh, mask=mask,
                     other=0.0).to(acc_dtype)
    return d_out, r, z, n, gh_n, h_prev


@triton.jit
def _store_gate_grads(p_dgx, p_dghn, d_r, d_z, d_n, d_ghn, mask, H):
    """d_r, d_z, d_n at p_dgx (H apart) and d_gh_n at p_dghn, rounded to their dtype."""
    tl.store(p_dgx, d_r, mask=mask)
    tl.store(p_dgx + H, d_z, mask=mask)
    tl.store(p_dgx + 2 * H, d_n, mask=mask)
    tl.store(p_dghn, d_ghn, mask=mask)


@triton.jit
def _store_rounded_grads(p_dd, d_r, d_z, d_ghn, mask, H):
    """d_r, d_z and d_gh_n rounded to TF32 at p_dd (H apart): the next step's dot operands."""
    tl.store(p_dd, _tf32_nearest(d_r), mask=mask)
    tl.store(p_dd + H, _tf32_nearest(d_z), mask=mask)
    tl.store(p_dd + 2 * H, _tf32_nearest(d_ghn), mask=mask)


@triton.jit
def gru_bwd_kernel(
    dhs_ptr, gates_ptr, ghn_ptr, hs_ptr, h0_ptr, w_hh_ptr, lengths_ptr, sync_ptr, dgx_ptr,
    dghn_ptr, dcarry_ptr, dd_ptr, T, B, H, step_begin, n_steps,
    HAS_DHS: tl.constexpr, HAS_LENGTHS: tl.constexpr, RESET_AFTER: tl.constexpr,
    REVERSE: tl.constexpr,
    GRID_SYNC: tl.constexpr, W_RESIDENT: tl.constexpr,
    DOT_PRECISION: tl.constexpr, DOT_IN_FP32: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
    SPLIT_K: tl.constexpr = 1, K_PIECES: tl.constexpr = 1, ROWS_ROUNDED: tl.constexpr = False,
    TILE_ROWS: tl.constexpr = 0,
):
    """Backward steps [step_begin, step_begin + n_steps), counted from the last forward step.

    dhs (T, B, H), any float dtype: dL/d(hs), the output's gradient (read only when HAS_DHS;
    otherwise the output has none). hs, h0: the states, as the forward left them (module
    doc). dcarry (2, B, H), acc dtype: ping-pong buffer of the part of dL/dh_{t-1} that does
    not pass through W_hh, handed from one backward step to the next; slot 1 holds dL/dh_n
    on entry (the gradient that enters the last forward step's output
    besides dhs). Writes dgx (T, B, 3H) = [d_r | d_z | d_n] and dghn (T, B, H) =
    dL/d(gh_n), both in the storage dtype (the next step's products round them to the
    weights' dtype anyway). Rows past their lengths need no special case here: their saved
    activations (see gru_fwd_kernel) make every gate gradient 0 and carry dh through; only
    the W_hh products of wholly finished tiles are skipped.

    W_RESIDENT (reset-after; one hidden chunk per program, BLOCK_K >= H): as in
    gru_fwd_kernel, the program's W_hh columns are loaded once and kept on chip for every
    step, and, owning its chunk for the whole launch, the program carries its part of
    dcarry in registers (still stored each step, for a following launch and the caller).
    With GRID_SYNC a step is ordered around the barrier as the forward's is: only the gate
    gradients, which the other programs read next, are stored before this program arrives,
    and the next step's saved activations are loaded while it waits. SPLIT_K (with
    W_RESIDENT): the slice is held cut along K into SPLIT_K slices, one per warp
    (``_split_k_grad_gates_times_w_hh``, which says why), in K_PIECES pieces along K.

    ROWS_ROUNDED (TF32 dots, reset-after): the W_hh products read the gate gradients of the
    step before from dd (2, B, 3H), fp32, a ping-pong of [d_r | d_z | d_gh_n] rounded to
    TF32 (``_tf32_nearest``) by the program that computes them (slot step % 2 written, the
    other read), so the dots load their operand unchanged; dgx and dghn keep them exact.

    TILE_ROWS: as in gru_fwd_kernel (fewer rows of the gate gradients read a step).
    """
    acc_dtype = dcarry_ptr.dtype.element_ty
    ROUND_LOADS: tl.constexpr = DOT_PRECISION == "tf32" and not ROWS_ROUNDED
    # Data other programs wrote this launch is read past L1, which is not coherent.
    LOAD_CACHE: tl.constexpr = ".cg" if GRID_SYNC else ""
    mask_b, rows_b = _batch_tile(B, BLOCK_B, TILE_ROWS)
    tile_len = _tile_length(lengths_ptr, rows_b, mask_b, HAS_LENGTHS)
    pid_h = tl.program_id(1)
    num_h_programs = tl.num_programs(1)
    w_dtype = tl.float32 if DOT_IN_FP32 else w_hh_ptr.dtype.element_ty
    # Only the resident forms use them (split K: tuples of pieces).
    w_res_r, w_res_z, w_res_n = 0.0, 0.0, 0.0
    if W_RESIDENT:
        # As in gru_fwd_kernel: one hidden chunk per program, its W_hh columns kept on chip.
        offs_j = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
        mask_j = offs_j < H
        mask = mask_b[:, None] & mask_j[None, :]
        if SPLIT_K > 1:
            w_res_r, w_res_z, w_res_n = _split_k_pieces(
                w_hh_ptr, offs_j, mask_j, H, w_dtype, False, SPLIT_K, K_PIECES, BLOCK_K)
        else:
            w_res_r, w_res_z, w_res_n = _w_hh_tiles(w_hh_ptr, tl.arange(0, BLOCK_K), offs_j,
                                                    mask_j, H, w_dtype, True, True)
        carry = tl.load(dcarry_ptr + (((step_begin + 1) % 2) * B + rows_b)[:, None] * H
                        + offs_j[None, :], mask=mask, other=0.0)
        if GRID_SYNC:
            first_t, _, first_prev = _bwd_steps(step_begin, T, REVERSE)
            d_out, r, z, n, gh_n, h_prev = _bwd_step_inputs(
                dhs_ptr, gates_ptr, ghn_ptr, hs_ptr, h0_ptr, first_t, first_prev, rows_b, offs_j,
                mask, T, B, H, acc_dtype, HAS_DHS, True)
    for step in range(step_begin, step_begin + n_steps):
        t, t_next, t_prev = _bwd_steps(step, T, REVERSE)
        if HAS_LENGTHS:
            tile_active = t < tile_len
            next_active = (step > 0) & (t_next < tile_len)
        else:
            tile_active: tl.constexpr = True
            next_active = step > 0
        carry_in = dcarry_ptr + (((step + 1) % 2) * B + rows_b) * H
        carry_out = dcarry_ptr + ((step % 2) * B + rows_b) * H
        gate_rows = gates_ptr + (t * B + rows_b) * (3 * H)
        dgx_rows = dgx_ptr + (t * B + rows_b) * (3 * H)
        dghn_rows = dghn_ptr + (t * B + rows_b) * H
        dgx_next_rows = dgx_ptr + (t_next * B + rows_b) * (3 * H)
        dghn_next_rows = dghn_ptr + (t_next * B + rows_b) * H
        rounded_out_rows = dd_ptr + ((step % 2) * B + rows_b) * (3 * H)
        if ROWS_ROUNDED:
            dgx_next_rows = dd_ptr + (((step + 1) % 2) * B + rows_b) * (3 * H)
            dghn_next_rows = dgx_next_rows + 2 * H
        if W_RESIDENT:
            dh = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
            if next_active:
                if SPLIT_K > 1:
                    dh = _split_k_grad_gates_times_w_hh(
                        dgx_next_rows, dghn_next_rows, mask_b, H, w_res_r, w_res_z, w_res_n,
                        acc_dtype, w_dtype, DOT_PRECISION, ROUND_LOADS, LOAD_CACHE, SPLIT_K,
                        K_PIECES, BLOCK_K)
                else:
                    dh = _grad_gates_times_w_hh(dgx_next_rows, dghn_next_rows, mask_b, w_hh_ptr,
                                                offs_j, mask_j, H, dh, w_res_r, w_res_z, w_res_n,
                                                True, True, True,
                                                DOT_PRECISION, ROUND_LOADS, DOT_IN_FP32, LOAD_CACHE, BLOCK_K)
            if not GRID_SYNC:
                d_out, r, z, n, gh_n, h_prev = _bwd_step_inputs(
                    dhs_ptr, gates_ptr, ghn_ptr, hs_ptr, h0_ptr, t, t_prev, rows_b, offs_j, mask,
                    T, B, H, acc_dtype, HAS_DHS, True)
            d_r, d_z, d_n, d_ghn, carry = gru_cell_backward(dh + d_out + carry, h_prev, r, z, n,
                                                            gh_n, True)
            _store_gate_grads(dgx_rows[:, None] + offs_j[None, :],
                              dghn_rows[:, None] + offs_j[None, :], d_r, d_z, d_n, d_ghn, mask, H)
            if ROWS_ROUNDED:
                _store_rounded_grads(rounded_out_rows[:, None] + offs_j[None, :], d_r, d_z,
                                     d_ghn, mask, H)
            if GRID_SYNC:
                _grid_arrive(sync_ptr)
                # The next step's inputs do not wait on the other programs: loaded now, their
                # round trip overlaps the barrier instead of following the next product.
                after_t, _, after_prev = _bwd_steps(step + 1, T, REVERSE)
                more = tl.full(mask.shape, step + 1, tl.int32) < step_begin + n_steps
                d_out, r, z, n, gh_n, h_prev = _bwd_step_inputs(
                    dhs_ptr, gates_ptr, ghn_ptr, hs_ptr, h0_ptr, after_t, after_prev, rows_b,
                    offs_j, mask & more, T, B, H, acc_dtype, HAS_DHS, True)
            tl.store(carry_out[:, None] + offs_j[None, :], carry, mask=mask)
            if GRID_SYNC:
                _grid_wait(sync_ptr, step - step_begin + 1)
            else:
                tl.debug_barrier()
        else:
            for j in range(pid_h, tl.cdiv(H, BLOCK_H), num_h_programs):
                offs_j = j * BLOCK_H + tl.arange(0, BLOCK_H)
                mask_j = offs_j < H
                mask = mask_b[:, None] & mask_j[None, :]
                dh = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
                if next_active:
                    dh = _grad_gates_times_w_hh(dgx_next_rows, dghn_next_rows, mask_b, w_hh_ptr,
                                                offs_j, mask_j, H, dh, w_res_r, w_res_z, w_res_n,
                                                True, RESET_AFTER, False,
                                                DOT_PRECISION, ROUND_LOADS, DOT_IN_FP32, LOAD_CACHE, BLOCK_K)
                d_out, r, z, n, gh_n, h_prev = _bwd_step_inputs(
                    dhs_ptr, gates_ptr, ghn_ptr, hs_ptr, h0_ptr, t, t_prev, rows_b, offs_j, mask,
                    T, B, H, acc_dtype, HAS_DHS, RESET_AFTER)
                dh += d_out + tl.load(carry_in[:, None] + offs_j[None, :], mask=mask, other=0.0)
                d_r, d_z, d_n, d_ghn, dh_direct = gru_cell_backward(dh, h_prev, r, z, n, gh_n,
                                                                    RESET_AFTER)
                _store_gate_grads(dgx_rows[:, None] + offs_j[None, :],
                                  dghn_rows[:, None] + offs_j[None, :], d_r, d_z, d_n, d_ghn,
                                  mask, H)
                if ROWS_ROUNDED:
                    _store_rounded_grads(rounded_out_rows[:, None] + offs_j[None, :], d_r, d_z,
                                         d_ghn, mask, H)
                tl.store(carry_out[:, None] + offs_j[None, :], dh_direct, mask=mask)
            if not RESET_AFTER:
                # Phase 2: dL/d(r ⊙ h_{t-1}) = d_n @ W_hn needs every d_n of this step.
                tl.debug_barrier()
                for j in range(pid_h, tl.cdiv(H, BLOCK_H), num_h_programs):
                    offs_j = j * BLOCK_H + tl.arange(0, BLOCK_H)
                    mask_j = offs_j < H
                    mask = mask_b[:, None] & mask_j[None, :]
                    d_rh = tl.zeros((BLOCK_B, BLOCK_H), dtype=acc_dtype)
                    if tile_active:
                        d_rh = _grad_gates_times_w_hh(dgx_rows, dghn_rows, mask_b, w_hh_ptr,
                                                      offs_j, mask_j, H, d_rh, w_res_r, w_res_z,
                                                      w_res_n, False, True, False,
                                                      DOT_PRECISION, ROUND_LOADS, DOT_IN_FP32, "", BLOCK_K)
                    r = tl.load(gate_rows[:, None] + offs_j[None, :], mask=mask,
                                other=0.0).to(acc_dtype)
                    h_prev = tl.load(_state_base(hs_ptr, h0_ptr, t_prev, T, B, H)
                                     + rows_b[:, None] * H + offs_j[None, :], mask=mask,
                                     other=0.0).to(acc_dtype)
                    d_r, dh_via_r = gru_reset_gate_backward(d_rh, h_prev, r)
                    tl.store(dgx_rows[:, None] + offs_j[None, :], d_r, mask=mask)
                    p_carry = carry_out[:, None] + offs_j[None, :]
                    tl.store(p_carry, tl.load(p_carry, mask=mask, other=0.0) + dh_via_r,
                             mask=mask)
            if GRID_SYNC:
                _grid_barrier(sync_ptr, step - step_begin + 1)
            else:
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


def storage_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the gate buffers (x-side pre-activations, saved activations, per-step
    gradients) for weights of ``dtype``: the weights' own for fp16/bf16, halving what a
    training step keeps; the acc dtype otherwise."""
    acc = acc_dtype_for(dtype)
    return dtype if dtype.itemsize < acc.itemsize else acc


def recurrence_config(hidden_size: int, path: str = "persistent", batch: int = 16,
                      tensor_cores: bool = True, forward: bool = False,
                      sms: int | None = None, three_pass: bool = False,
                      forms: str | None = None) -> dict:
    """Tile sizes, warps, pipeline stages and register budget of the recurrence kernels for
    one path ("persistent", "per_step" or "grid_sync"), batch size, and whether the dots run
    on tensor cores (fp16/bf16, and fp32 with TF32 dots; not IEEE fp32 or fp64).
    ``forward``: for gru_fwd_kernel (only grid_sync's differs); ``sms``: the GPU's SM count,
    None where unknown; ``three_pass``: fp32 weights with "tf32x3" dots (``resident_config``),
    whose grid_sync batch tile stops at 32 rows where H is not a multiple of 16 (64 rows
    spill 8 bytes on sm_80 there, kernel report); ``forms``: "16-bit" (fp16/bf16 weights) or
    "tf32" (fp32 weights, TF32 dots), which get grid_sync's forms measured faster for them
    (``_sixteen_bit_forms``, ``_tf32_forms``).

    ``tl.dot`` needs every tile dimension >= 16.

    persistent and per_step: a 16-row batch tile × 32 hidden units × 32-wide K chunks at 8
    warps and no software pipelining is the largest tile that compiles without register
    spills for fp32/tf32/bf16/fp16 on sm_80 and sm_90 in both kernels at ``maxnreg`` 168 (the
    kernel report: 32- or 64-row batch tiles spill in the backward kernel, and so do 4 warps
    or 3 stages), so larger batches get more batch tiles. Left alone, ptxas aims at 128
    registers (two 256-thread programs per SM) and spills 16-24 bytes in the fp16/bf16
    kernels with lengths on sm_90; these grids are small (a few programs per SM at most), so
    the budget goes to registers instead of occupancy.

    grid_sync: every program reads its batch tile's slice of W_hh each step, so a tile that
    covers all rows (up to 64) reads W_hh once per step instead of once per 16 rows (the cost
    model's first lever, docs/performance.md). The grid has one program per SM by
    construction, so a program may take the whole register file (``maxnreg`` 255; 8 warps ×
    32 threads × 256 registers = 65536): a 64-row × 16-unit tile then compiles without spills
    in both kernels (kernel report; at 168 registers it spilled 8-112 bytes), and uses
    ``wgmma`` on sm_90. 16 hidden units rather than 32 split H over twice the programs.
    Without tensor cores the step is bound by the FMAs, not the reads (cost model), so the
    batch stays in 16-row tiles there, which spreads the FMAs over the most programs.

    grid_sync's forward with tensor cores, as measured on an H200 (bench/variants.py, bf16,
    T 256, µs/step; bench/results/nvidia-h200-2026-11-25/variants.json): 16-row tiles
    wherever a program per (16-row tile, hidden chunk) fits on the SMs, since each program
    then owns one chunk and keeps its W_hh slice on chip (W_RESIDENT; B 64: H 256 7.04 ->
    4.70, H 512 12.17 -> 6.64, against 64-row tiles), and 4 warps with 16-row tiles (a
    16×16 tile is too small to split, so 8 warps repeat each MMA: H 256 4.70 -> 3.75, H 512
    6.64 -> 5.19, H 2048 B 16 43.3 -> 38.0). Where the grid does not fit (B 64 at H 1024)
    16-row tiles re-read W_hh per tile and lost (20.9 -> 45.4), so the batch's tile stays;
    wider tiles at 4 warps spill (kernel report), and measured no faster (20.9).
    """
    block = 32 if hidden_size > 16 else 16
    if path == "grid_sync":
        most = 16 if not tensor_cores else 32 if three_pass and hidden_size % 16 else 64
        rows = min(most, max(16, triton.next_power_of_2(batch)))
        warps = 8
        if forward and tensor_cores:
            if sms is not None and triton.cdiv(batch, 16) * triton.cdiv(hidden_size, 16) <= sms:
                rows = 16
            warps = 4 if rows == 16 else 8
        cfg = {"BLOCK_B": rows, "BLOCK_H": 16, "BLOCK_K": block, "num_warps": warps,
               "num_stages": 1, "maxnreg": 255}
        if forms is not None and tensor_cores and sms is not None:
            measured = {"16-bit": _sixteen_bit_forms, "tf32": _tf32_forms}[forms]
            cfg.update(measured(cfg, hidden_size, batch, forward, sms))
        return cfg
    return {"BLOCK_B": 16, "BLOCK_H": block, "BLOCK_K": block, "num_warps": 8, "num_stages": 1,
            "maxnreg": 168}


def _sixteen_bit_forms(cfg: dict, hidden_size: int, batch: int, forward: bool,
                       sms: int) -> dict:
    """What grid_sync's fp16/bf16 launches change in ``cfg``, as measured on an H200 (bf16,
    T 256, µs per step, bench/results/nvidia-h200-2026-12-04/variants*.json; fp16 runs the
    same code). Only the shapes timed there, H 256-2048: elsewhere nothing changes.

    Forward, slice resident (16-row tiles, a chunk per program): the three gates' products
    as one stacked dot (STACKED_GATES; ``resident_config`` keeps it where H is a multiple
    of 16): B 16 H 1024 5.41 -> 4.02, B 64 H 512 4.10 -> 2.95, B 64 H 256 3.08 -> 2.27
    (B 16 at H 256/512, not timed, runs B 64's programs, a quarter as many).
    Forward, streamed (B 64 at H 1024: the 16-row grid does not fit 132 SMs; B 16 at
    H 2048: the slice does not fit shared memory), from H 1024, H a multiple of 16: K in
    128-wide chunks with Triton's software pipelining of the chunk loop over 3 stages, so
    each chunk's L2 round trip overlaps the last one's product: 20.74 -> 9.88 and 37.98 ->
    11.00 (the split resident form: 13.75). The resident plan sets its own BLOCK_K and 1
    stage.
    Backward, up to H 2048: 16-row tiles with the slice resident and split along K (SPLIT_K)
    wherever a (16-row, 16-wide) grid fits the SMs, else 32-wide chunks if that grid does
    (H a multiple of 16): forward + backward B 16 H 1024 27.67 -> 11.48, B 16 H 2048 80.83
    -> 47.73, B 64 H 512 22.95 -> 9.42, B 64 H 256 14.05 -> 7.58, B 64 H 1024 (32 wide)
    55.10 -> 30.27; the backward alone at B 16 H 512 6.32 -> 4.13 (step-breakdown-bwd.json).
    Not at B <= 16 under H 512, whose plain resident backward was not timed against it."""
    if not 256 <= hidden_size <= 2048:
        return {}
    if forward:
        forms = {"STACKED_GATES": True} if cfg["BLOCK_B"] == 16 else {}
        if hidden_size >= 1024 and hidden_size % 16 == 0:
            # Unaligned, the 64-row tile spills so (224-248 bytes, kernel report).
            forms.update(BLOCK_K=128, num_stages=3)
        return forms
    if batch <= 16 and hidden_size < 512:
        return {}  # there the plain resident backward was not timed against the split one
    tiles = triton.cdiv(batch, 16)
    if tiles * triton.cdiv(hidden_size, 16) <= sms:
        return {"BLOCK_B": 16, "SPLIT_K": 8}
    if hidden_size % 16 == 0 and tiles * triton.cdiv(hidden_size, 32) <= sms:
        return {"BLOCK_B": 16, "BLOCK_H": 32, "SPLIT_K": 8}
    return {}


def _tf32_forms(cfg: dict, hidden_size: int, batch: int, forward: bool, sms: int) -> dict:
    """What grid_sync's fp32 launches with TF32 dots change in ``cfg``, as measured on an
    H200 (``bench/variants.py --dtype tf32``, T 256, µs per step): only at K = 1024 (H 513 to
    1024) for B <= 16, the one shape timed where it won, since nowhere else does a TF32 slice
    stay on chip only when split.

    There the slice held split along K, in two K pieces (``resident_config``), against the
    launcher's streamed W_hh (32-wide K chunks): the forward at B 16, H 1024 13.56 against
    24.12 with truncated operands (bench/results/nvidia-h200-2026-12-04/variants-tf32.json)
    and 13.71 against 24.91 with the rows rounded as they were loaded (…-tf32-rounding/);
    the backward, forward + backward with the launcher's forward, 33.38 against 54.55
    truncated (variants-tf32-bwd.json). Rounded as loaded, the split backward spilled and
    was not planned, so that run timed no split backward; the rows are now rounded by their
    producers, whose split backward compiles to the truncated loop plus the stores
    (kernel report: 244 registers, no spills), not yet timed. At B 64, H 512 the split
    forward lost (8.08 against the plain resident 5.63) and the backward is the same
    either way (a 64-row tile, never resident)."""
    if 512 < hidden_size <= 1024 and batch <= 16:
        return {"SPLIT_K": 8}
    return {}


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _check_contiguous(**tensors) -> None:
    for name, x in tensors.items():
        if x is not None and not x.is_contiguous():
            raise ValueError(f"{name} must be contiguous")


# ``tl.dot`` input precisions for fp32 weights: "ieee" (CUDA-core FMAs), "tf32" (one
# tensor-core product, 10-bit mantissas) and "tf32x3" (three: each operand split into a
# TF32 part and a TF32 remainder, big·big + big·small + small·big, which gives back IEEE
# fp32's accuracy; docs/performance.md, "IEEE fp32 on tensor cores").
DOT_PRECISIONS = ("ieee", "tf32", "tf32x3")


def _uses_tensor_cores(w_hh: torch.Tensor, dot_precision: str) -> bool:
    return w_hh.dtype in (torch.float16, torch.bfloat16) or (
        w_hh.dtype == torch.float32 and dot_precision in ("tf32", "tf32x3"))


def _three_pass(w_hh: torch.Tensor, dot_precision: str) -> bool:
    """Whether the dots run as three TF32 products (fp32 weights only: the precision names
    how fp32 operands are multiplied, and means nothing for the others)."""
    return w_hh.dtype == torch.float32 and dot_precision == "tf32x3"


def tf32_nearest(w: torch.Tensor) -> torch.Tensor:
    """A copy of fp32 ``w`` rounded to TF32 to nearest, ties away from zero, NaN kept: what
    ``_tf32_nearest`` does to the row operands in the kernels, done to W_hh once a launch
    instead of where the kernels load it. Why not in the kernels: a resident slice passes
    through registers to be rounded, and the TF32 split backward's K = 1024 slice then
    spilled (104 bytes on sm_90, kernel report); a streamed one would be rounded again every
    step."""
    # In place past the first op: the copy, and a mask a quarter of it, are all it allocates
    # (a training step's peak holds them).
    nearest = w.view(torch.int32).add(0x1000).bitwise_and_(~0x1FFF).view(torch.float32)
    return torch.where(torch.isnan(w), w, nearest, out=nearest)


def _rows_rounded(w_hh: torch.Tensor, dot_precision: str, reset_after: bool) -> bool:
    """Whether the kernels' TF32 row operands come rounded from their producer (ROWS_ROUNDED
    in gru_fwd_kernel and gru_bwd_kernel): fp32 weights, "tf32" dots, the reset-after form
    (the reset-before form rounds its rows as it loads them)."""
    return w_hh.dtype == torch.float32 and dot_precision == "tf32" and reset_after


def _tf32_operand(w_hh: torch.Tensor, dot_precision: str) -> torch.Tensor:
    """W_hh as the kernels' dots take it: TF32-rounded for fp32 weights under "tf32"."""
    if w_hh.dtype == torch.float32 and dot_precision == "tf32":
        return tf32_nearest(w_hh)
    return w_hh


def _dot_in_fp32(w_hh: torch.Tensor) -> bool:
    # The interpreter's tl.dot on bfloat16 tiles returns garbage (numpy has no bfloat16), so
    # there the tiles are widened to fp32 first: exact for bf16 values, and the fp32 dot with
    # fp32 accumulation is what the tensor cores compute on a GPU.
    return w_hh.dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


PATHS = ("persistent", "per_step", "grid_sync")


def _sm_count(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).multi_processor_count


def tile_rows(cfg: dict) -> int:
    """The batch rows one program's tile covers: ``cfg["TILE_ROWS"]`` where set (fewer than
    its BLOCK_B, ``_batch_tile``), else BLOCK_B."""
    return cfg.get("TILE_ROWS") or cfg["BLOCK_B"]


def _narrowed(cfg: dict, batch: int, hidden_size: int, sms: int | None) -> dict:
    """``cfg`` with a request for narrow tiles (``cfg["NARROW_TILES"]``, grid_sync's 16-row
    tiles) resolved: TILE_ROWS halved while twice the tiles, a program per (tile, hidden
    chunk), still fit on the SMs and add a tile. Each program then reads that many rows of
    h_t (the backward: of the gate gradients) a step instead of 16, and every tile holds its
    own copy of the slice, so the copies, not the bytes read from L2 a step, double: bf16
    B 16 H 1024, 64 chunks, reads 8 rows in 2 × 64 = 128 programs on 132 SMs. Not picked by
    the launchers: bench/variants.py's "narrow tiles" times it. The H200's exchange alone
    (store, barrier, read; bench/results/nvidia-h200-2026-12-04/exchange.json) took 3.71 µs
    at 64 programs reading 32 KiB each, 2.43 at 128 reading 16 KiB."""
    cfg = dict(cfg)
    if not cfg.pop("NARROW_TILES", False) or sms is None or cfg["BLOCK_B"] != 16:
        return cfg
    rows = tile_rows(cfg)
    chunks = triton.cdiv(hidden_size, cfg["BLOCK_H"])
    while (rows > 1 and triton.cdiv(batch, rows // 2) > triton.cdiv(batch, rows)
           and triton.cdiv(batch, rows // 2) * chunks <= sms):
        rows //= 2
    if rows < cfg["BLOCK_B"]:
        cfg["TILE_ROWS"] = rows
    return cfg


def grid_sync_columns(batch: int, hidden_size: int, device: torch.device,
                      tensor_cores: bool = True, forward: bool = False,
                      three_pass: bool = False, forms: str | None = None) -> int:
    """Programs per batch tile on the grid-synchronised path, or 0 where its grid cannot be
    resident all at once (it would deadlock): one program per SM (its ``maxnreg`` of 255 ×
    256 threads takes the whole register file), so tiles × columns must not exceed the SM
    count. The interpreter runs programs one after another, so there one column is the most
    that can pass a barrier."""
    sms = _sm_count(device)
    cfg = _narrowed(recurrence_config(hidden_size, "grid_sync", batch, tensor_cores, forward,
                                      sms, three_pass, forms), batch, hidden_size, sms)
    tiles = triton.cdiv(batch, tile_rows(cfg))
    chunks = triton.cdiv(hidden_size, cfg["BLOCK_H"])
    if sms is None:
        return 1
    return min(chunks, sms // tiles)


def _launch_plan(batch: int, hidden_size: int, path: str, device: torch.device,
                 tensor_cores: bool = True, forward: bool = False, three_pass: bool = False,
                 forms: str | None = None):
    """(grid, number of launches, grid-synchronised?, tile config) for a path and kernel
    (``forward``: gru_fwd_kernel); a grid-synchronised grid that cannot be co-resident falls
    back to one launch per step."""
    if path == "grid_sync":
        columns = grid_sync_columns(batch, hidden_size, device, tensor_cores, forward,
                                    three_pass, forms)
        if columns >= 1:
            sms = _sm_count(device)
            cfg = _narrowed(recurrence_config(hidden_size, "grid_sync", batch, tensor_cores,
                                              forward, sms, three_pass, forms),
                            batch, hidden_size, sms)
            return (triton.cdiv(batch, tile_rows(cfg)), columns), 1, True, cfg
        path = "per_step"
    cfg = recurrence_config(hidden_size, path, batch)
    tiles = triton.cdiv(batch, tile_rows(cfg))
    if path == "persistent":
        return (tiles, 1), 1, False, cfg
    return (tiles, triton.cdiv(hidden_size, cfg["BLOCK_H"])), None, False, cfg


def grid_sync_programs(w_hh: torch.Tensor, batch: int, device: torch.device,
                       dot_precision: str, forward: bool = True) -> int:
    """How many programs the grid_sync path's one launch of gru_fwd_kernel (``forward``) or
    gru_bwd_kernel holds at once for weights like ``w_hh`` (3H, H) and ``batch`` rows, all
    of them resident until it ends; 0 where that path falls back to a launch per step."""
    grid, _, grid_sync, _, _ = _kernel_plan(w_hh, batch, "grid_sync", device, dot_precision,
                                            True, forward)
    return grid[0] * grid[1] if grid_sync else 0


def shared_memory_limit(device: torch.device) -> int:
    """Shared memory one program may take (the per-block opt-in limit; an H100 has 227 KiB,
    an A100 163 KiB). The interpreter plans as an H100 would."""
    if device.type == "cuda":
        # Without the opt-in figure (an older torch), the 48 KiB every block may take.
        return getattr(torch.cuda.get_device_properties(device), "shared_memory_per_block_optin",
                       48 * 1024)
    return 227 * 1024


def resident_config(cfg: dict, hidden_size: int, itemsize: int, smem_limit: int,
                    row_operands: int = 1, three_pass: bool = False) -> dict | None:
    """``cfg`` with BLOCK_K widened to all of K (W_RESIDENT), or None where the program's
    W_hh slice does not fit on chip.

    row_operands: the (BLOCK_B, K) dot operands a step stages, 1 in the forward kernel (h),
    3 in the backward (d_r, d_z, d_n). What the tiles take, as the kernel report measures
    it: the three gates' (K, BLOCK_H) slices (four with ``cfg["STACKED_GATES"]``, whose
    fourth is padding) and those operands in shared memory, plus a few KiB of the kernel's
    own. The operands also pass through registers, and past 24576 elements they spill (the
    backward at H = 1024: 3 × 16 × 1024, 8-16 bytes). Only 16-row batch tiles (with 32
    rows the forward spills on sm_80), except in the stacked product, whose wgmma takes the
    batch tile as its N: 32 rows at 8 warps compile without spills up to K = 1024 on sm_90
    (232 registers, 193 KiB of shared memory) and K = 512 on sm_80 (182; kernel report), so
    B 64 at H 1024, whose 16-row grid does not fit 132 SMs, keeps its slice on chip in a
    32-row grid (bench/variants.py's "32 rows, stacked"; not timed yet). The whole register file
    too (``maxnreg`` 255, as grid_sync's programs have): at 168 registers per_step's 16×32
    tile spilled 8 bytes at H = 512 on sm_90.

    Warps, from the kernel report. Triton compiles a kernel once for arguments that are
    multiples of 16 (H here) and once for the rest, and only the first vectorises the loads
    of h. Compiled that way, the forward's 16-row tile holds a K = 1024 slice at 4 warps
    without spilling (sm_80 and sm_90), and 4 warps measured 6.4 µs/step against 8 warps'
    8.9 (bf16, B 16, H 1024, H200, bench/variants.py). A hidden size that is not a multiple
    of 16 gets the scalar loads, which spill at 4 warps once a row of the slice takes 2 KiB
    (K = 1024 at 16 bits: 16 bytes on sm_90, 72 on sm_80; K = 512 in TF32: 16 on sm_90), so
    those get 8 warps. The stacked product (``STACKED_GATES``, forward only)
    spills at 4 warps once a row of the slice takes 2 KiB (K = 1024 at 16 bits, 512 at
    fp32) and, unaligned, at any warp count from K = 512 at 16 bits, so it takes 8 warps
    there and runs only where H is a multiple of 16. In 8-wide hidden chunks (BLOCK_H 8,
    the stacked product only: its 32 rows are the dot's M, where any other form would have
    an 8-wide dot) the product is mma.sync's, not wgmma's, and 4 warps take one 16 × 8 tile
    of it each; 8 would repeat each tile, reading the slice from shared memory twice as
    often (compiled, sm_90, K = 1024: 388 against 768 KiB a step in TF32, 0 spills at 4
    warps under triton 3.9 and 3.6.0), so it keeps the warps ``cfg`` gives.
    ``cfg["SPLIT_K"]`` (not with the
    stacked product): the slice cut along K into that many slices, at most one per 16 of K,
    one warp each (no spills at 8 warps up to K = 1024 on either target). With 32-wide
    hidden chunks (BLOCK_H 32: half the programs, so B 64 at H 1024 has one chunk per
    program on 132 SMs) it spills wherever H is not a multiple of 16 (kernel report: 8-184
    bytes from K = 64; at K = 1024 80 bytes forward, 1688 backward on sm_90), so there it
    is not split. The split backward
    stages its three operands one after another (shared memory as for one), so its slice stays
    on chip up to K = 1024 in 16 bits (129 KiB, an A100 included) and 512 in TF32; an H that
    is not a multiple of 16 spills it at K = 1024 (112 bytes on sm_90), so there the backward
    is not split, and with three operands of K = 1024 not resident.

    ``K_PIECES`` 2 (split only, asked for by ``cfg`` or given where the whole row operand
    does not fit): the row operands are staged for the dots half of K at a time, so shared
    memory holds the slice and half an operand. That keeps a K = 2048 slice in 16 bits, or
    1024 in TF32, on an H100 (kernel report: 225 KiB, 232-252 registers, no spills, H a
    multiple of 16; the forward spills 40 bytes at
    K = 2048 otherwise, so there it is not split). Its grid, a 16-wide chunk per program,
    fits 132 SMs up to H = 2048 at B <= 16.
    ``cfg`` may ask for more pieces (``three_pass`` at K = 1024 takes 4); each warp's slice
    of a piece stays at least a dot's 16 deep.

    ``three_pass`` (fp32 weights with "tf32x3" dots): each dot splits both operands into a
    TF32 part and a remainder and runs three products, so it holds twice the operands in
    registers. The plain resident forms then spill kilobytes from K = 256 (kernel report:
    1.3-5.8 KiB forward and backward; per_step's 32-wide chunk from K = 64), the split ones
    do not up to K = 512 in the forward and 256 in the backward, with 16-wide chunks and an H
    that is a multiple of 16 (48-272 bytes past that K, 40 at K = 512 unaligned, 224 with
    32-wide chunks). So with three passes the slice is held only there, split along K
    (SPLIT_K 8 unless ``cfg`` says otherwise); elsewhere the steps stream W_hh. The forward
    at K = 1024 too, with h staged a quarter of K at a time (K_PIECES 4: 249 registers, 209
    KiB of shared memory on sm_90, no spills; in halves it spilled 48 bytes): an H100 only.
    """
    k_full = max(16, triton.next_power_of_2(hidden_size))
    if three_pass:
        if (k_full > (1024 if row_operands == 1 else 256) or cfg["BLOCK_H"] != 16
                or hidden_size % 16):
            return None
        cfg = dict(cfg, SPLIT_K=cfg.get("SPLIT_K", 8), STACKED_GATES=False)
        if k_full == 1024:
            cfg["K_PIECES"] = 4
    stacked = cfg.get("STACKED_GATES", False) and row_operands == 1
    if stacked and hidden_size % 16:
        cfg, stacked = dict(cfg, STACKED_GATES=False), False
    if cfg["BLOCK_H"] < 16 and not stacked:
        return None  # only the stacked product's dot has the chunk in a dimension >= 16
    # SPLIT_K: one K slice per warp, each at least a dot's 16 deep.
    split = 1 if stacked else min(cfg.get("SPLIT_K", 1), k_full // 16)
    if split > 1 and hidden_size % 16 and (row_operands > 1 and k_full >= 1024
                                           or cfg["BLOCK_H"] > 16 or k_full >= 2048):
        split = 1
    # The split backward takes its three operands one at a time, each spread over the warps.
    rows = (1 if split > 1 else row_operands) * cfg["BLOCK_B"]
    gate_rows = (4 if stacked else 3) * cfg["BLOCK_H"]
    # Beyond the tiles, the kernel report's resident rows take up to 4.5 KiB of shared
    # memory (K >= 256), the split ones up to 3 KiB: 3 KiB lets the split forward hold a
    # 32-wide chunk at K = 1024 in 16 bits on an H100 (225 KiB compiled, of 227).
    slack = 3072 if split > 1 else 4096
    # K_PIECES 2 (split only): the row operand staged half of K at a time, where the whole
    # of it does not fit beside the slice (or its registers would spill); more where asked.
    pieces = 1
    if split > 1 and k_full >= 64 and (
            cfg.get("K_PIECES", 1) > 1 or rows * k_full > 24576
            or (gate_rows + rows) * k_full * itemsize + slack > smem_limit):
        pieces = max(2, cfg.get("K_PIECES", 1))
        split = min(split, k_full // (16 * pieces))
    need = (gate_rows * k_full + rows * k_full // pieces) * itemsize + slack
    # per_step's 32-wide backward chunk, H not a multiple of 16 (scalar operand loads),
    # spills at K = 512 (8 bytes on sm_90): its operands stay under 24576 elements there.
    most = (16384 if split == 1 and row_operands > 1 and cfg["BLOCK_H"] > 16
            and hidden_size % 16 else 32768 if stacked else 24576)
    tile_fits = cfg["BLOCK_B"] == 16 or (stacked and cfg["BLOCK_B"] == 32)
    if not tile_fits or rows * k_full // pieces > most or need > smem_limit:
        return None
    warps = cfg["num_warps"]
    if split > 1:
        warps = split
    elif stacked and cfg["BLOCK_H"] >= 16 and (k_full * itemsize >= 2048 or cfg["BLOCK_B"] > 16):
        warps = 8
    elif not stacked and k_full * itemsize >= 2048 and hidden_size % 16:
        warps = 8
    # num_stages 1: the resident product has no K loop to pipeline, and a pipelined time loop
    # would load the next step's h before the grid barrier that makes it ready.
    out = dict(cfg, BLOCK_K=k_full, maxnreg=255, num_warps=warps, num_stages=1)
    out.pop("SPLIT_K", None)
    out.pop("K_PIECES", None)
    # gru_bwd_kernel has no STACKED_GATES (nor ROTATE_K or TMA_ROWS, which only the stacked
    # product takes): a key it does not take fails its launch.
    out.pop("STACKED_GATES", None)
    rotate = out.pop("ROTATE_K", False)
    tma = out.pop("TMA_ROWS", False)
    if stacked:
        out["STACKED_GATES"] = True
        if rotate:
            out["ROTATE_K"] = True
        elif tma and itemsize in (2, 4) and not out.get("TILE_ROWS"):
            # A (BLOCK_B, K) descriptor block of the rows, in K's own order, all of them (a
            # stacked fp32 slice is TF32's, whose rows come rounded: ROWS_ROUNDED).
            out["TMA_ROWS"] = True
    if split > 1:
        out["SPLIT_K"] = split
    if pieces > 1:
        out["K_PIECES"] = pieces
    return out


def _resident_plan(cfg: dict, grid: tuple, w_hh: torch.Tensor, dot_precision: str,
                   reset_after: bool, row_operands: int) -> dict | None:
    """A program that owns one hidden chunk for the whole launch (per_step, and grid_sync with
    a column per chunk) keeps that chunk's W_hh slice on chip where it fits: the resident
    config, or None. Tensor-core dots only: their operands live in shared memory; IEEE fp32
    ones would hold the slice in registers, which cannot."""
    H = w_hh.shape[1]
    if not (reset_after and _uses_tensor_cores(w_hh, dot_precision)
            and grid[1] == triton.cdiv(H, cfg["BLOCK_H"])):
        return None
    return resident_config(cfg, H, w_hh.element_size(), shared_memory_limit(w_hh.device),
                           row_operands, three_pass=_three_pass(w_hh, dot_precision))


# Resident plans that did not fit when compiled, by (kernel, device, weight dtype, dot
# precision, plan): Triton's own lowering can stage more than ``resident_config`` counts
# (triton 3.6 holds tf32x3's slice twice in shared memory: 400 KiB at K = 1024 on an H200).
# Their launches stream W_hh instead, without compiling the resident form again.
_UNFIT_RESIDENT: set = set()


def _unfit_key(w_hh: torch.Tensor, dot_precision: str, forward: bool, plan: dict) -> tuple:
    return (forward, str(w_hh.device), w_hh.dtype, dot_precision, tuple(sorted(plan.items())))


def _kernel_plan(w_hh: torch.Tensor, batch: int, path: str, device: torch.device,
                 dot_precision: str, reset_after: bool, forward: bool):
    """How gru_fwd_kernel (``forward``) or gru_bwd_kernel runs for weights like ``w_hh``
    (3H, H) and ``batch`` rows: (grid, number of launches, grid-synchronised?, the tile
    keys the kernel takes, whether its W_hh slice is resident).

    fp16/bf16 get ``_sixteen_bit_forms``, fp32 with TF32 dots ``_tf32_forms``; the
    backward's were measured with the slice resident only, so where it is not (an A100's
    shared memory, say) the backward keeps the tiles it had. A stacked slice takes a fourth
    gate's rows: where that does not fit, the three gates' may."""
    H = w_hh.shape[1]
    tensor_cores = _uses_tensor_cores(w_hh, dot_precision)
    three_pass = _three_pass(w_hh, dot_precision)
    measured = ("16-bit" if w_hh.dtype in (torch.float16, torch.bfloat16)
                else "tf32" if w_hh.dtype == torch.float32 and dot_precision == "tf32"
                else None)
    for forms in dict.fromkeys((measured, None)):
        grid, launches, grid_sync, cfg = _launch_plan(batch, H, path, device, tensor_cores,
                                                      forward, three_pass, forms)
        candidates = [cfg]
        if cfg.get("STACKED_GATES"):
            candidates.append({k: v for k, v in cfg.items() if k != "STACKED_GATES"})
        for candidate in candidates:
            resident = _resident_plan(candidate, grid, w_hh, dot_precision, reset_after,
                                      row_operands=1 if forward else 3)
            if resident is not None and resident.get("TMA_ROWS") and not _tma_copies(device):
                # Without TMA the descriptor's load is per-thread loads, which spilled (sm_80).
                resident = {k: v for k, v in resident.items() if k != "TMA_ROWS"}
            if resident is not None and (_unfit_key(w_hh, dot_precision, forward, resident)
                                         not in _UNFIT_RESIDENT):
                return grid, launches, grid_sync, resident, True
        if cfg["BLOCK_H"] < 16:
            continue  # 8-wide chunks run only resident and stacked: the default tiles instead
        if forward or not forms:
            streamed = {k: v for k, v in cfg.items()
                        if k not in ("STACKED_GATES", "SPLIT_K", "ROTATE_K", "TMA_ROWS")}
            return grid, launches, grid_sync, streamed, False
    raise ValueError(f"hidden chunks {cfg['BLOCK_H']} wide run only as the forward's stacked "
                     f"product with its W_hh slice on chip, which does not fit here (H {H}, "
                     f"batch {batch})")


def _launch_fitting(kernel, plan_args, head, tail, T, meta):
    """``_launch`` of ``kernel`` as ``_kernel_plan(*plan_args)`` plans it, with ``meta``
    besides the plan; a resident plan that turns out not to fit (``_UNFIT_RESIDENT``) is
    planned again without it, and a warning says so once."""
    w_hh, _, _, device, dot_precision, _, forward = plan_args
    while True:
        grid, launches, grid_sync, plan, resident = _kernel_plan(*plan_args)
        try:
            _launch(kernel, grid, head, tail, T, launches, grid_sync,
                    dict(meta, W_RESIDENT=resident, **plan), device)
            return
        except OutOfResources as err:
            if not resident:
                raise
            _UNFIT_RESIDENT.add(_unfit_key(w_hh, dot_precision, forward, plan))
            warnings.warn(f"{kernel.__name__}: the resident W_hh slice ({plan}) does not fit "
                          f"this GPU as this Triton compiles it ({err}); streaming W_hh instead",
                          RuntimeWarning, stacklevel=3)


def _rows_descriptor(rows: torch.Tensor, meta: dict):
    """gru_fwd_kernel's h_desc for TMA_ROWS: ``rows`` (the states (T + 1, B, H), or the
    TF32-rounded ping-pong (2, B, H)) as rows, read in (BLOCK_B, BLOCK_K) blocks (past H, and
    past the last row, the copy fills zeros)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    rows = rows.view(-1, rows.shape[-1])
    return TensorDescriptor.from_tensor(rows, [meta["BLOCK_B"], meta["BLOCK_K"]])


def _tma_copies(device: torch.device) -> bool:
    """Whether a descriptor's loads are TMA copies here: sm_90 and up. The interpreter, which
    runs them as loads of its own, counts as one, so that the tests run what sm_90 does."""
    return device.type != "cuda" or torch.cuda.get_device_properties(device).major >= 9


def _launch(kernel, grid, head, tail, T, launches, grid_sync, meta, device):
    """Launches ``kernel(*head, sync_ptr, *tail, step_begin, n_steps)`` as planned by
    ``_launch_plan``; sync_ptr is a fresh zeroed counter per batch tile when grid-synchronised
    (and an unused placeholder otherwise). A TMA_ROWS plan (gru_fwd_kernel, whose states are
    head[3] and rounded TF32 rows head[7]) gets its descriptor, and on sm_90 the fences its
    copies need."""
    if meta.get("TMA_ROWS"):
        # TMA wants 16-byte aligned rows: the buffers are fresh, and the stacked product
        # that TMA_ROWS comes with runs only where H is a multiple of 16.
        rows = head[7] if meta["ROWS_ROUNDED"] else head[3]
        meta = dict(meta, h_desc=_rows_descriptor(rows, meta),
                    PROXY_FENCE=device.type == "cuda" and launches == 1 and grid_sync)
    if launches == 1 and grid_sync:
        sync = torch.zeros(grid[0], dtype=torch.int32, device=device)
        # A cooperative launch refuses a grid that cannot be co-resident instead of hanging.
        extra = {"launch_cooperative_grid": True} if device.type == "cuda" else {}
        kernel[grid](*head, sync, *tail, 0, T, GRID_SYNC=True, **meta, **extra)
    elif launches == 1:
        kernel[grid](*head, head[0], *tail, 0, T, GRID_SYNC=False, **meta)
    else:
        for step in range(T):
            kernel[grid](*head, head[0], *tail, step, 1, GRID_SYNC=False, **meta)


def _check_lengths(lengths, batch: int, device) -> None:
    if lengths is None:
        return
    _check(tuple(lengths.shape) == (batch,) and lengths.dtype == torch.int32
           and lengths.device == device,
           f"lengths must be int32 of shape ({batch},) on {device}, got {lengths.dtype} "
           f"{tuple(lengths.shape)} on {lengths.device}")
    _check_contiguous(lengths=lengths)


def gru_forward(gates: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor | None,
                h0: torch.Tensor, lengths: torch.Tensor | None = None, *, reverse: bool,
                save: bool, path: str, reset_after: bool = True, dot_precision: str = "ieee"):
    """Runs the recurrence of one GRU layer and direction.

    gates: (T, B, 3H), storage dtype (``storage_dtype_for(w_hh.dtype)``): x @ W_ihᵀ + b_ih.
        Used as scratch: overwritten with the activations (r, z, n) when ``save`` (for
        backward), left undefined otherwise.
    w_hh: (3H, H), fp16/bf16/fp32/fp64. b_hh: (3H,) same dtype, or None.
    h0: (B, H), acc dtype.
    lengths: (B,) int32 on the same device, each in [1, T] (the launcher does not read them:
        that would synchronise with the GPU), or None for full-length rows. A row past its
        length keeps its state, so the last step's row of hs holds each row's final state.
    path: "persistent": one launch walks all T steps, one program per batch tile owning all
        hidden units; "per_step": one launch per step, hidden units split across programs;
        "grid_sync": one launch, hidden units split across co-resident programs that meet at
        a grid barrier after every step (falls back to "per_step" where the grid cannot be
        co-resident).
    reset_after: PyTorch's GRU (True) or the reset-before form (False; persistent only).
    dot_precision: ``tl.dot`` input precision for fp32 weights, one of ``DOT_PRECISIONS``.
    Returns hs (T, B, H) storage dtype, h_t at row t (module doc; for 16-bit weights the
    states rounded to their dtype, which is what the layer outputs and backward reads, with
    h0 rounded the same way), and ghn (T, B, H) storage dtype, or None when not ``save`` or
    in the reset-before form (which needs none).
    """
    _check(gates.dim() == 3, f"gates must be (T, B, 3H), got {tuple(gates.shape)}")
    T, B, three_h = gates.shape
    H = w_hh.shape[1]
    _check(T > 0 and B > 0, f"T and B must be positive, got T={T}, B={B}")
    _check(tuple(w_hh.shape) == (3 * H, H), f"w_hh must be (3H, H), got {tuple(w_hh.shape)}")
    _check(three_h == 3 * H, f"gates must be (T, B, {3 * H}), got {tuple(gates.shape)}")
    _check(tuple(h0.shape) == (B, H), f"h0 must be ({B}, {H}), got {tuple(h0.shape)}")
    acc, storage = acc_dtype_for(w_hh.dtype), storage_dtype_for(w_hh.dtype)
    _check(gates.dtype == storage, f"gates must be {storage} for {w_hh.dtype} weights")
    _check(h0.dtype == acc, f"h0 must be {acc}")
    _check(b_hh is None or (tuple(b_hh.shape) == (3 * H,) and b_hh.dtype == w_hh.dtype),
           "b_hh must be (3H,) with the dtype of w_hh")
    _check(dot_precision in DOT_PRECISIONS, f"unknown dot_precision {dot_precision!r}")
    _check(path in PATHS, f"path must be one of {PATHS}, got {path!r}")
    _check(path == "persistent" or reset_after,
           "the reset-before GRU runs on the persistent path only: its candidate needs all of "
           "r * h_{t-1}, which one program owns only there")
    _check_contiguous(gates=gates, w_hh=w_hh, b_hh=b_hh, h0=h0)
    _check_lengths(lengths, B, gates.device)
    w_hh = _tf32_operand(w_hh, dot_precision)

    # The states' buffer, row T the first step's h_{t-1} as the products read it (module doc).
    states = torch.empty((T + 1, B, H), dtype=storage, device=gates.device)
    states[T] = h0
    # Rows 0 to T - 1 as a tensor of their own (same storage, not a view): the layer's output.
    hs = torch.empty(0, dtype=storage, device=gates.device).set_(
        states.untyped_storage(), 0, (T, B, H))
    keep_ghn = save and reset_after
    ghn = torch.empty((T, B, H), dtype=storage, device=gates.device) if keep_ghn else hs
    # 16-bit weights: the exact state's ping-pong (F32_STATE in gru_fwd_kernel).
    f32_state = storage != acc
    hf = hs
    if f32_state:
        hf = torch.empty((2, B, H), dtype=acc, device=gates.device)
        hf[0] = h0
    # Reset-before scratch: r ⊙ h_{t-1} and z of the current step (see gru_fwd_kernel).
    rh = hf if reset_after else torch.empty((2, B, H), dtype=acc, device=gates.device)
    # TF32: the states rounded for the products, a ping-pong (ROWS_ROUNDED in gru_fwd_kernel).
    rows_rounded = _rows_rounded(w_hh, dot_precision, reset_after)
    hd = hf
    if rows_rounded:
        hd = torch.empty((2, B, H), dtype=acc, device=gates.device)
        hd[0] = tf32_nearest(h0)
    meta = dict(HAS_BIAS=b_hh is not None, HAS_LENGTHS=lengths is not None,
                RESET_AFTER=reset_after, REVERSE=reverse, SAVE=save, F32_STATE=f32_state,
                DOT_PRECISION=dot_precision, DOT_IN_FP32=_dot_in_fp32(w_hh),
                ROWS_ROUNDED=rows_rounded)
    head = (gates, w_hh, b_hh if b_hh is not None else w_hh, states, ghn, rh, hf, hd,
            lengths if lengths is not None else hs)
    _launch_fitting(gru_fwd_kernel, (w_hh, B, path, gates.device, dot_precision, reset_after,
                                     True), head, (T, B, H), T, meta)
    return hs, (ghn if keep_ghn else None)


def gru_backward(dhs: torch.Tensor | None, dhn: torch.Tensor | None, gates: torch.Tensor,
                 ghn: torch.Tensor | None, hs: torch.Tensor, h0: torch.Tensor,
                 w_hh: torch.Tensor, lengths: torch.Tensor | None = None, *, reverse: bool,
                 path: str,
                 reset_after: bool = True, dot_precision: str = "ieee",
                 overwrite_gates: bool = False):
    """Reverse-time pass of one GRU layer and direction.

    dhs: (T, B, H) storage dtype, dL/d(hs) (the output's gradient), or None for none.
        dhn: (B, H), any float dtype, dL/dh_n, the gradient of a copy of the last step's
        state (row T - 1 of hs, or 0 reversed) made apart from hs, or None for none. gates,
        ghn, hs: what ``gru_forward(..., save=True)`` left (ghn None in the reset-before
        form); h0: (B, H) storage dtype, the initial state as the forward rounded it;
        w_hh: (3H, H); lengths, reverse, path, reset_after, dot_precision: as for
        ``gru_forward``.
    overwrite_gates (reset-after form): dgx is written over ``gates`` and dghn over ``ghn``,
        which then no longer hold the activations: no (T, B, 4H) buffer of gradients, for a
        caller that will not read them again. Each gradient is computed by the program that
        owns its place, from the activations at that place (d_r from r, d_z from z, d_n from
        n, d_gh_n from gh_n), so every read of a place comes before its write, and what the
        other programs read of a step is its gradients. The reset-before backward reads r
        again after writing d_r, so it cannot.
    Returns (dgx, dghn, dh_direct), dgx and dghn in the storage dtype, dh_direct in the acc
    dtype: dgx (T, B, 3H) the gate pre-activation gradients
    [d_r | d_z | d_n] (= dL/d(x @ W_ihᵀ + b_ih)); dghn (T, B, H) = dL/d(gh_n), the n-part of
    the hidden-side pre-activation (the r and z parts equal dgx's); dh_direct (B, H): the part
    of dL/dh0 that does not pass through W_hh of the first step. Then
    dL/dh0 = dh_direct + [d_r | d_z]_first @ W_hh[:2H] (+ dghn_first @ W_hn in the
    reset-after form).
    """
    _check(gates.dim() == 3 and w_hh.dim() == 2, "gates must be (T, B, 3H), w_hh (3H, H)")
    (T, B, _), H = gates.shape, w_hh.shape[1]
    acc, storage = acc_dtype_for(w_hh.dtype), storage_dtype_for(w_hh.dtype)
    _check((ghn is None) == (not reset_after),
           "ghn is saved by the reset-after form only: pass it exactly then")
    for name, x, shape, dtype in (("dhs", dhs, (T, B, H), storage),
                                  ("dhn", dhn, (B, H), None),
                                  ("gates", gates, (T, B, 3 * H), storage),
                                  ("ghn", ghn, (T, B, H), storage),
                                  ("hs", hs, (T, B, H), storage),
                                  ("h0", h0, (B, H), storage),
                                  ("w_hh", w_hh, (3 * H, H), w_hh.dtype)):
        if x is None:
            continue
        _check(tuple(x.shape) == shape, f"{name} must be {shape}, got {tuple(x.shape)}")
        _check(x.dtype == (dtype or x.dtype), f"{name} must be {dtype}, got {x.dtype}")
    _check(path in PATHS, f"path must be one of {PATHS}, got {path!r}")
    _check(dot_precision in DOT_PRECISIONS, f"unknown dot_precision {dot_precision!r}")
    _check(path == "persistent" or reset_after,
           "the reset-before GRU runs on the persistent path only")
    _check(reset_after or not overwrite_gates,
           "the reset-before backward reads r after writing d_r: it cannot overwrite gates")
    _check_contiguous(dhs=dhs, gates=gates, ghn=ghn, hs=hs, h0=h0, w_hh=w_hh)
    w_hh = _tf32_operand(w_hh, dot_precision)
    _check_lengths(lengths, B, hs.device)

    dgx = gates if overwrite_gates else torch.empty((T, B, 3 * H), dtype=storage,
                                                    device=hs.device)
    dghn = ghn if overwrite_gates else torch.empty((T, B, H), dtype=storage, device=hs.device)
    dcarry = torch.empty((2, B, H), dtype=acc, device=hs.device)
    # dL/dh_n enters with the carry: the first backward step adds slot 1 to its dh.
    if dhn is None:
        dcarry[1].zero_()
    else:
        dcarry[1].copy_(dhn)
    # TF32: the gate gradients rounded for the products, a ping-pong (ROWS_ROUNDED in
    # gru_bwd_kernel; the first step reads none).
    rows_rounded = _rows_rounded(w_hh, dot_precision, reset_after)
    dd = torch.empty((2, B, 3 * H), dtype=acc, device=hs.device) if rows_rounded else dcarry
    meta = dict(HAS_DHS=dhs is not None, HAS_LENGTHS=lengths is not None,
                RESET_AFTER=reset_after, REVERSE=reverse, DOT_PRECISION=dot_precision,
                DOT_IN_FP32=_dot_in_fp32(w_hh), ROWS_ROUNDED=rows_rounded)
    head = (dhs if dhs is not None else hs, gates, ghn if ghn is not None else hs, hs, h0,
            w_hh, lengths if lengths is not None else hs)
    _launch_fitting(gru_bwd_kernel, (w_hh, B, path, hs.device, dot_precision, reset_after,
                                     False), head, (dgx, dghn, dcarry, dd, T, B, H), T, meta)
    return dgx, dghn, dcarry[(T - 1) % 2]
