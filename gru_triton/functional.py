"""The fused kernels as ``torch.library`` custom ops with autograd, and the multi-layer /
bidirectional GRU and the GRU cell built on them.

Two custom ops, ``gru_triton::gru_layer`` and ``gru_triton::gru_layer_backward``, each do one
layer and direction: input GEMM + recurrence kernel, and recurrence kernel + weight/input
GEMMs (a third, ``gru_layer_backward_consuming``, is the backward writing its gate gradients
over the saved activations, and dx over a spent one where I = H, for a backward that frees
them). They have fake (meta)
implementations, so ``torch.compile(fullgraph=True)`` traces
through them without a graph break, and no host synchronisation, so they can be captured in
a CUDA graph.

Memory kept for backward per layer and direction, besides the layer input x, all in the
model's dtype: the gate activations r, z, n (3 T·B·H), in PyTorch's reset-after form the
hidden-side candidate pre-activation (T·B·H), and the hidden states (T·B·H), which are the
layer's output itself (so, as with cuDNN's nn.GRU, modifying that output in place makes
backward refuse), besides h0. Per (t, b, h): 20 bytes for fp32 models, 10 for bf16/fp16
ones. Nothing is kept when no input needs a gradient.
"""


import contextlib
import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from . import dispatch
from .kernels import (
    acc_dtype_for,
    grid_sync_programs,
    gru_backward,
    gru_forward,
    storage_dtype_for,
)
from .reference import gru_layer_reference


def _linear(x2d, weight, bias):
    return x2d @ weight.t() if bias is None else torch.addmm(bias, x2d, weight.t())


@torch.library.custom_op("gru_triton::gru_layer", mutates_args=())
def gru_layer_op(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                 b_hh: Tensor | None, lengths: Tensor | None, reverse: bool,
                 reset_after: bool, path: str, dot_precision: str,
                 save: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One layer and direction forward.

    x: (T, B, I); h0: (B, H); w_ih: (3H, I); w_hh: (3H, H); b_ih / b_hh: (3H,) or None, all
    one dtype (fp16, bf16, fp32 or fp64). lengths: (B,) int32 on x's device, or None.
    Returns, all in that dtype: hs (T, B, H), h_t at row t in either direction: the output
    sequence itself, whose gradient reaches backward as it is; h_n (B, H), a copy of the last
    step's row, apart so that its gradient needs no (T, B, H) buffer; and when ``save``
    the activations (T, B, 3H) and, reset-after form only, the candidate's hidden-side
    pre-activation (T, B, H) for backward; empty tensors otherwise.
    """
    T, B, input_size = x.shape
    H = w_hh.shape[1]
    acc, storage = acc_dtype_for(w_hh.dtype), storage_dtype_for(w_hh.dtype)
    with dispatch.gemm_precision(x.device, dot_precision):
        gates = _linear(x.reshape(T * B, input_size), w_ih, b_ih).to(storage).view(T, B, 3 * H)
    hs, ghn = gru_forward(gates, w_hh.contiguous(), None if b_hh is None else b_hh.contiguous(),
                          h0.to(acc).contiguous(), lengths, reverse=reverse, save=save,
                          path=path, reset_after=reset_after,
                          dot_precision=dot_precision)
    h_n = hs[0 if reverse else T - 1].clone()
    if not save:
        return hs, h_n, gates.new_empty(0), gates.new_empty(0)
    return hs, h_n, gates, (ghn if reset_after else gates.new_empty(0))


@gru_layer_op.register_fake
def _gru_layer_fake(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, reset_after, path,
                    dot_precision, save):
    T, B, _ = x.shape
    H = w_hh.shape[1]
    storage = storage_dtype_for(w_hh.dtype)
    hs = x.new_empty((T, B, H), dtype=storage)
    h_n = x.new_empty((B, H), dtype=storage)
    if not save:
        return hs, h_n, x.new_empty(0, dtype=storage), x.new_empty(0, dtype=storage)
    ghn_shape = (T, B, H) if reset_after else (0,)
    return (hs, h_n, x.new_empty((T, B, 3 * H), dtype=storage),
            x.new_empty(ghn_shape, dtype=storage))


def _layer_backward(d_hs, d_h_n, x, h0, w_ih, w_hh, hs, gates, ghn, lengths, reverse,
                    reset_after, path, dot_precision, has_bias, need_input, need_weights, *,
                    overwrite_gates):
    """Backward of ``gru_layer`` given d_hs (T, B, H) = dL/d(hs), the output's gradient, and
    d_h_n (B, H) = dL/d(h_n), in the model's dtype, either None where nothing flowed back;
    h0 (B, H) the layer's initial state, in the model's dtype.

    Returns dx (T, B, I), dh0 (B, H), dw_ih (3H, I), dw_hh (3H, H), db_ih, db_hh (3H,) in the
    model's dtype; dx is empty unless ``need_input``, the weight and bias gradients are empty
    unless ``need_weights`` (biases: and ``has_bias``). ``overwrite_gates``: the gate
    gradients are written over ``gates`` and ``ghn`` (``gru_backward``'s overwrite_gates),
    and where ``_dx_over_ghn`` says so dx is written over ``ghn`` last, once nothing reads
    the gradient it held, and returned empty: the caller takes ``ghn`` as dx.
    """
    T, B, _ = gates.shape
    H = w_hh.shape[1]
    acc = acc_dtype_for(w_hh.dtype)
    dgx, dghn, dh_direct = gru_backward(None if d_hs is None else d_hs.contiguous(), d_h_n,
                                        gates, ghn if reset_after else None, hs,
                                        h0.contiguous(), w_hh.contiguous(), lengths,
                                        reverse=reverse, path=path,
                                        reset_after=reset_after, dot_precision=dot_precision,
                                        overwrite_gates=overwrite_gates)
    dgx2d, dghn2d = dgx.view(T * B, 3 * H), dghn.view(T * B, H)
    first = T - 1 if reverse else 0
    # GEMMs in the model's dtype (that of dgx, dghn and hs too), accumulated in fp32 by the
    # BLAS. Distinct empty tensors: a custom op's outputs must not alias one another.
    dx, dw_ih, dw_hh, db_ih, db_hh = (w_hh.new_empty(0) for _ in range(5))
    with dispatch.gemm_precision(x.device, dot_precision):
        # The first step's hidden-side gradients [d_r | d_z | dghn] (B, 3H), times W_hh: one
        # small GEMM in the model's dtype, not a copy of W_hh in the acc dtype ((3H, H)
        # fp32: a 16-bit training step's largest buffer after the (T, B, ·) ones at B 16,
        # H 1024).
        d_first = dgx[first, :, :2 * H]
        if reset_after:
            d_first = torch.cat([d_first, dghn[first]], dim=1)
        dh0 = dh_direct + (d_first @ w_hh[:d_first.shape[1]]).to(acc)
        dx_over_ghn = overwrite_gates and _dx_over_ghn(x, ghn, need_input)
        if need_input and not dx_over_ghn:
            dx = (dgx2d @ w_ih).view(T, B, -1)
        if need_weights:
            x2d = x.reshape(T * B, -1)
            dw_ih = dgx2d.t() @ x2d
            # h_{t-1} is hs's row before t (after it, reversed), and h0 at the first step:
            # each product is taken over the later steps, then the first step's is added, so
            # no (T, B, H) operand is put together.
            later = slice(B, T * B) if not reverse else slice(0, (T - 1) * B)
            before = slice(0, (T - 1) * B) if not reverse else slice(B, T * B)
            h_prev = hs.reshape(T * B, H)[before]
            # W_hn multiplies h_{t-1} (reset after) or r ⊙ h_{t-1} (reset before).
            n_later, n_first = h_prev, h0
            if not reset_after:
                n_later = gates[:, :, :H].reshape(T * B, H)[later] * h_prev
                n_first = gates[first, :, :H] * h0
            # Each part straight into its rows: no second (3H, H) buffer for a cat.
            dw_hh = w_hh.new_empty(w_hh.shape)
            torch.mm(dgx2d[later, :2 * H].t(), h_prev, out=dw_hh[:2 * H])
            dw_hh[:2 * H].addmm_(dgx[first, :, :2 * H].t(), h0)
            torch.mm(dghn2d[later].t(), n_later, out=dw_hh[2 * H:])
            dw_hh[2 * H:].addmm_(dghn[first].t(), n_first)
    if need_weights and has_bias:
        # The r and z parts of the hidden-side bias gradient are the input side's.
        db_ih = _sum_rows(dgx2d, acc)
        db_hh = torch.cat([db_ih[:2 * H], _sum_rows(dghn2d, acc)]).to(w_hh.dtype)
        db_ih = db_ih.to(w_hh.dtype)
    if dx_over_ghn:
        # After the last read of dghn above (dh0, dw_hh, db_hh).
        with dispatch.gemm_precision(x.device, dot_precision):
            torch.mm(dgx2d, w_ih, out=dghn2d)
    return dx, dh0.to(x.dtype), dw_ih, dw_hh, db_ih, db_hh


# Rows per partial sum in _sum_rows: at most 128 values for each thread of CUDA's reduction
# kernel, under the 256 from which it splits a column across blocks.
_SUM_ROWS_CHUNK = 512


def _sum_rows(t: Tensor, acc: torch.dtype) -> Tensor:
    """The sum over the rows of ``t`` (N, M), in ``acc`` (M,), taken over chunks of up to 512
    rows, then over the chunks' sums.

    Why not ``t.sum(0, dtype=acc)``: once each thread of CUDA's reduction kernel would add
    256 values or more, the kernel splits every column across blocks and allocates their
    staging buffer 128 times larger than it uses (ATen's ``ReduceConfig.global_memory_size``:
    4 B x M x blocks per column x block width 32 x 4 outputs per thread). For the gate
    gradients (T·B, 3H) at T 256, B 16 that is 24 B per (t, b, h) at H 1024 (96 MiB): the
    whole of what the H200's allocator counted in a training step beyond what its tensors
    hold (docs/performance.md, "Memory"). A chunk's column sum leaves each thread at most
    128 values; the chunks' sums are summed the same way while there are over 512 of them."""
    rows = t.shape[0]
    if rows <= _SUM_ROWS_CHUNK:
        return t.sum(0, dtype=acc)
    whole = rows - rows % _SUM_ROWS_CHUNK
    total = _sum_rows(t[:whole].unflatten(0, (-1, _SUM_ROWS_CHUNK)).sum(1, dtype=acc), acc)
    if whole < rows:  # no launch for an empty remainder
        total += t[whole:].sum(0, dtype=acc)
    return total


def _dx_over_ghn(x: Tensor, ghn: Tensor, need_input: bool) -> bool:
    """Whether the consuming backward writes dx over ``ghn``'s (T, B, H) buffer, spent by
    then: where dx is wanted and has that buffer's shape and dtype (I = H: every layer of a
    unidirectional stack after the first). A training step then holds no (T, B, I) buffer
    of its own for dx. A smaller I is left out: x.grad would keep the whole buffer alive."""
    return need_input and x.shape == ghn.shape and x.dtype == ghn.dtype


_BACKWARD_SCHEMA = (
    "(Tensor? d_hs, Tensor? d_h_n, Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor hs, "
    "Tensor{gates} gates, Tensor{ghn} ghn, Tensor? lengths, bool reverse, bool reset_after, "
    "str path, str dot_precision, bool has_bias, bool need_input, bool need_weights) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)")
gru_layer_backward_op = torch.library.custom_op(
    "gru_triton::gru_layer_backward", functools.partial(_layer_backward, overwrite_gates=False),
    mutates_args=(), schema=_BACKWARD_SCHEMA.format(gates="", ghn=""))
# The same, writing the gate gradients over the saved activations (reset-after form only):
# for a backward after which autograd frees them, as cuDNN's backward consumes its reserve
# space (PyTorch hands it a copy only when the graph is kept).
gru_layer_backward_consuming_op = torch.library.custom_op(
    "gru_triton::gru_layer_backward_consuming",
    functools.partial(_layer_backward, overwrite_gates=True), mutates_args=("gates", "ghn"),
    schema=_BACKWARD_SCHEMA.format(gates="(a!)", ghn="(b!)"))


def _gru_layer_backward_fake(d_hs, d_h_n, x, h0, w_ih, w_hh, hs, gates, ghn, lengths, reverse,
                             reset_after, path, dot_precision, has_bias, need_input,
                             need_weights, *, overwrite_gates):
    B, H = hs.shape[1], w_hh.shape[1]
    bias_shape = (3 * H,) if need_weights and has_bias else (0,)
    dx_returned = need_input and not (overwrite_gates and _dx_over_ghn(x, ghn, need_input))
    return (x.new_empty(x.shape if dx_returned else (0,)), x.new_empty((B, H)),
            w_ih.new_empty(w_ih.shape if need_weights else (0,)),
            w_hh.new_empty(w_hh.shape if need_weights else (0,)),
            w_hh.new_empty(bias_shape), w_hh.new_empty(bias_shape))


gru_layer_backward_op.register_fake(
    functools.partial(_gru_layer_backward_fake, overwrite_gates=False))
gru_layer_backward_consuming_op.register_fake(
    functools.partial(_gru_layer_backward_fake, overwrite_gates=True))


def _setup_context(ctx, inputs, output):
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, reset_after, path, precision, save = inputs
    hs, _, gates, ghn = output
    if save:
        ctx.save_for_backward(x, h0, w_ih, w_hh, hs, gates, ghn, lengths)
    ctx.config = (reverse, reset_after, path, precision, b_ih is not None, save)
    # gates and ghn are what backward reads, never a result anyone differentiates: without
    # this autograd would hand backward zero-filled gradients for them, (T, B, 4H) in the
    # model's dtype, a third of a bf16 training step's peak (measured on the CPU).
    ctx.mark_non_differentiable(gates, ghn)
    ctx.set_materialize_grads(False)


def _backward(ctx, d_hs, d_h_n, _d_gates, _d_ghn):
    reverse, reset_after, path, precision, has_bias, save = ctx.config
    if not save:
        raise RuntimeError("gru_triton: this GRU ran without saving for backward (no input "
                           "required grad when it ran)")
    x, h0, w_ih, w_hh, hs, gates, ghn, lengths = ctx.saved_tensors
    need = ctx.needs_input_grad
    op = gru_layer_backward_op
    consuming = reset_after and not _graph_kept(gates)
    if consuming:
        op = gru_layer_backward_consuming_op
    # d_hs / d_h_n unmaterialised (None): nothing flowed back into the output, or into h_n.
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = op(
        d_hs, d_h_n, x, h0, w_ih, w_hh, hs, gates, ghn, lengths, reverse, reset_after, path,
        precision, has_bias, need[0], any(need[2:6]))
    if consuming and _dx_over_ghn(x, ghn, need[0]):
        dx = ghn
    pick = lambda grad, wanted: grad if wanted else None
    return (pick(dx, need[0]), pick(dh0, need[1]), pick(dw_ih, need[2]), pick(dw_hh, need[3]),
            pick(db_ih, need[4] and has_bias), pick(db_hh, need[5] and has_bias),
            None, None, None, None, None, None)


torch.library.register_autograd("gru_triton::gru_layer", _backward, setup_context=_setup_context)


def _graph_kept(saved: Tensor) -> bool:
    """Whether the backward running now keeps the graph (retain_graph or create_graph), so
    that ``saved``, a tensor autograd saved, may be read again. True outside a backward, on
    a torch without the query, and when tracing (torch.compile, AOTAutograd: ``saved`` is
    then a fake or functional tensor, and functionalisation would copy a buffer the op
    overwrites)."""
    if type(saved) is not torch.Tensor or torch.compiler.is_compiling():
        return True
    query = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return query is None or query()


def saves_for_backward(*tensors) -> bool:
    """Whether autograd keeps a call on ``tensors`` (None allowed) for a backward: grad mode
    is on and one of them requires grad. Otherwise the call is inference, whose cost is its
    forward alone (``dispatch.recurrence_path``'s ``training``)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _path(dtype, hidden_size, batch, device, *, lengths, reset_after, training=True) -> str:
    """The dispatcher's choice for weights of ``dtype`` (or that autocast computes in);
    ``training``: autograd keeps the call for a backward (``saves_for_backward``)."""
    if dtype in (torch.float16, torch.bfloat16):
        dots = "16-bit"
    elif dtype == torch.float32:
        dots = dispatch.dot_precision(dtype, device, hidden_size, batch, training)
    else:
        dots = "ieee"
    return dispatch.recurrence_path(hidden_size, batch, device, reset_after=reset_after,
                                    lengths=lengths, dots=dots, training=training)


def _layer_triton(x, h0, w_ih, w_hh, b_ih, b_hh, reverse, lengths=None, reset_after=True):
    """One layer and direction on the kernels; same signature and results as
    ``gru_layer_reference`` (lengths here: (B,) int32 on x's device)."""
    T, B, _ = x.shape
    save = saves_for_backward(x, h0, w_ih, w_hh, b_ih, b_hh)
    # The backward reuses this precision: one for a call that saves, from the training table.
    precision = dispatch.dot_precision(w_hh.dtype, x.device, w_hh.shape[1], B, save)
    path = _path(w_hh.dtype, w_hh.shape[1], B, x.device, lengths=lengths is not None,
                 reset_after=reset_after, training=save)
    if path == "cudnn":
        # The modules hand such calls to PyTorch before any layer runs; a layer called
        # directly (functional API, gradcheck) runs the kernels, split across programs.
        path = "per_step"
    hs, h_n, _, _ = gru_layer_op(x.contiguous(), h0.contiguous(), w_ih, w_hh, b_ih, b_hh,
                                 lengths, reverse, reset_after, path, precision, save)
    # What backward reads: as with cuDNN's nn.GRU (which saves its output too), modifying it
    # in place makes backward refuse instead of computing wrong gradients.
    output = hs
    if lengths is not None:
        inside = torch.arange(T, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)
        output = torch.where(inside.unsqueeze(2), output, 0.0)
    return output, h_n


# Per CUDA device, the stream a bidirectional layer's reverse direction runs on while the
# forward direction runs on the caller's (_directions_at_once).
_SIDE_STREAMS: dict = {}


def _directions_at_once(x, hx, weights, *, lengths, reset_after) -> bool:
    """Whether a bidirectional layer's two directions run at the same time, the reverse one
    on a side stream: where each is one grid-synchronised launch (what the dispatcher picks
    on CUDA) and the two grids fit on the GPU together, or one persistent launch (a program
    per batch tile, which waits on no other program). One such launch leaves the SMs its
    grid does not hold idle for all T steps (at B 16, H 1024, 64 of an H100's 132), where
    cuDNN runs the two directions at once; both fitting is also what keeps two launches that
    each wait at a grid barrier from waiting on each other. Where autograd saves for
    backward, only under ``dispatch.directions_at_once("training")``: its engine then runs
    the reverse direction's backward on the side stream too, beside the forward one's, so
    the backward's grids must fit together as well. Not while torch.compile traces or a
    CUDA graph is captured, which have their own stream handling."""
    mode = dispatch.directions_at_once_mode()
    if (mode == "never" or x.device.type != "cuda" or torch.compiler.is_compiling()
            or torch.cuda.is_current_stream_capturing()):
        return False
    saving = saves_for_backward(x, hx, *weights)
    if saving and mode != "training":
        return False
    w_hh = weights[1]
    B, H = x.shape[1], w_hh.shape[1]
    path = _path(w_hh.dtype, H, B, x.device, lengths=lengths is not None,
                 reset_after=reset_after, training=saving)
    if path == "persistent":
        # (The reset-before form's path on CUDA.) One program per batch tile that waits on
        # no other: two such grids may share the SMs in any way.
        return True
    if path != "grid_sync":
        return False
    precision = dispatch.dot_precision(w_hh.dtype, x.device, H, B, saving)
    sms = torch.cuda.get_device_properties(x.device).multi_processor_count
    programs = grid_sync_programs(w_hh, B, x.device, precision)
    # A backward that falls back to a launch per step waits at no barrier: 0 fits anywhere.
    backward = grid_sync_programs(w_hh, B, x.device, precision, forward=False) if saving else 0
    return 0 < 2 * programs <= sms and 2 * backward <= sms


def _side_stream(device: torch.device):
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _SIDE_STREAMS:
        _SIDE_STREAMS[index] = torch.cuda.Stream(device=index)
    return _SIDE_STREAMS[index]


def gru(input, hx, weights, *, has_bias, num_layers, dropout, training, bidirectional,
        batch_first, backend, lengths=None, reset_after=True):
    """The multi-layer, optionally bidirectional GRU of ``torch.nn.GRU``.

    input: (T, B, I), or (B, T, I) when ``batch_first``. hx: (num_layers * D, B, H).
    weights: ``nn.GRU._flat_weights`` order: per layer and direction w_ih, w_hh[, b_ih, b_hh].
    backend: "triton" or "reference". lengths: None or (B,) int32 on input's device, each in
    [1, T] (checked by the caller). reset_after: PyTorch's form (True) or Cho et al.'s.
    Returns output (T, B, D * H) (or batch first), zero past each length, and h_n
    (num_layers * D, B, H), each row's state after its own last step. Shapes are assumed
    checked by the caller (the module).
    """
    layer = gru_layer_reference if backend == "reference" else _layer_triton
    x = input.transpose(0, 1) if batch_first else input
    if lengths is not None:
        # Padding may hold anything (even NaN): zero it so that it cannot reach the weight
        # gradients (0 * NaN); later layers get zero padding from this one's output.
        inside = torch.arange(x.shape[0], device=x.device).unsqueeze(1) < lengths.unsqueeze(0)
        x = torch.where(inside.unsqueeze(2), x, 0.0)
    num_directions = 2 if bidirectional else 1
    per_direction = 4 if has_bias else 2
    at_once = (backend != "reference" and bidirectional
               and _directions_at_once(x, hx, weights, lengths=lengths,
                                       reset_after=reset_after))
    h_n = []
    for index in range(num_layers):
        outputs = []
        if at_once:
            main, side = torch.cuda.current_stream(x.device), _side_stream(x.device)
            side.wait_stream(main)  # the reverse direction reads this layer's input
        for direction in range(num_directions):
            cell = index * num_directions + direction
            params = weights[cell * per_direction:(cell + 1) * per_direction]
            w_ih, w_hh = params[0], params[1]
            b_ih, b_hh = (params[2], params[3]) if has_bias else (None, None)
            on_side = at_once and direction == 1
            if on_side:
                # What the side stream reads (and autograd may keep for its backward there)
                # was made on the caller's: not handed out again while the side may read it.
                for t in (x, hx, *params, lengths):
                    if t is not None:
                        t.record_stream(side)
            with torch.cuda.stream(side) if on_side else contextlib.nullcontext():
                out, h = layer(x, hx[cell], w_ih, w_hh, b_ih, b_hh, direction == 1, lengths,
                               reset_after)
            if on_side:
                # The caller's stream waits for the reverse direction before it reads its
                # results; those, made on the side stream, are not handed out again while
                # work queued on the caller's may read them.
                main.wait_stream(side)
                out.record_stream(main)
                h.record_stream(main)
            outputs.append(out)
            h_n.append(h)
        x = outputs[0] if num_directions == 1 else torch.cat(outputs, dim=2)
        if dropout > 0 and training and index < num_layers - 1:
            x = F.dropout(x, dropout, training=True)
    output = x.transpose(0, 1) if batch_first else x
    return output, torch.stack(h_n)


def torch_route(dtype: torch.dtype, hidden_size: int, batch: int, device: torch.device,
                reset_after: bool, training: bool = True) -> bool:
    """Whether the dispatcher hands a call with weights (or autocast) of ``dtype`` to
    PyTorch's own op (``training``: ``saves_for_backward``). Per-row lengths do not change
    it: the module passes them to that op as a packed sequence built on the host."""
    return _path(dtype, hidden_size, batch, device, lengths=False, reset_after=reset_after,
                 training=training) == "cudnn"


def gru_torch(input, batch_sizes, hx, weights, *, has_bias, num_layers, dropout, training,
              bidirectional, batch_first):
    """The whole stack on nn.GRU's own op (cuDNN on CUDA), called exactly as nn.GRU calls it:
    cuDNN overlaps the layers, and dropout between layers draws the same random numbers.

    input: (T, B, I) (batch first if asked), or a packed sequence's data (N, I) with its
    ``batch_sizes`` (CPU int64); hx: (L * D, B, H) in the packed order. Returns (output,
    h_n) like the op. Its "train" flag also keeps what backward needs: it is set whenever
    autograd may ask (cuDNN refuses backward in eval mode; the kernels do not), and dropout
    only applies when training.
    """
    keep_for_backward = training or torch.is_grad_enabled()
    p = float(dropout) if training else 0.0
    # cuDNN refuses a non-contiguous hx ("rnn: hx is not contiguous"), which the kernels take.
    hx = hx.contiguous()
    if batch_sizes is None:
        return torch._VF.gru(input, hx, weights, has_bias, num_layers, p, keep_for_backward,
                             bidirectional, batch_first)
    return torch._VF.gru(input, batch_sizes, hx, weights, has_bias, num_layers, p,
                         keep_for_backward, bidirectional)


def gru_cell(input, hx, w_ih, w_hh, b_ih, b_hh, *, backend, reset_after=True):
    """One step of ``torch.nn.GRUCell``: input (B, I), hx (B, H) -> h' (B, H), through the
    same fused layer kernels (T = 1) as the GRU, or nn.GRUCell's own op where the dispatcher
    hands the shape to PyTorch."""
    if backend == "triton" and torch_route(
            w_hh.dtype, w_hh.shape[1], input.shape[0], input.device, reset_after,
            saves_for_backward(input, hx, w_ih, w_hh, b_ih, b_hh)):
        return torch._VF.gru_cell(input, hx, w_ih, w_hh, b_ih, b_hh)
    layer = gru_layer_reference if backend == "reference" else _layer_triton
    _, h_new = layer(input.unsqueeze(0), hx, w_ih, w_hh, b_ih, b_hh, False, None, reset_after)
    return h_new
