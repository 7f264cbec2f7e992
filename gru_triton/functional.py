"""The fused kernels as ``torch.library`` custom ops with autograd, and the multi-layer /
bidirectional GRU and the GRU cell built on them.

Two custom ops, ``gru_triton::gru_layer`` and ``gru_triton::gru_layer_backward``, each do one
layer and direction: input GEMM + recurrence kernel, and recurrence kernel + weight/input
GEMMs. They have fake (meta) implementations, so ``torch.compile(fullgraph=True)`` traces
through them without a graph break, and no host synchronisation, so they can be captured in
a CUDA graph.

Memory kept for backward per layer and direction, besides the layer input x: the gate
activations r, z, n (3 T·B·H) and, in PyTorch's reset-after form, the hidden-side candidate
pre-activation (T·B·H), all in the model's dtype for fp16/bf16 models and in fp32 (fp64) for
fp32 (fp64) ones; and the hidden states, (T+1)·B·H in fp32 (fp64). Per (t, b, h): 20 bytes
for fp32 models, 12 for bf16/fp16 ones (16-bit models also return their output as a 16-bit
copy of the fp32 states: 2 more). Nothing is kept when no input needs a gradient.
"""


import torch
import torch.nn.functional as F
from torch import Tensor

from . import dispatch
from .kernels import acc_dtype_for, gru_backward, gru_forward, storage_dtype_for
from .reference import gru_layer_reference


def _linear(x2d, weight, bias):
    return x2d @ weight.t() if bias is None else torch.addmm(bias, x2d, weight.t())


@torch.library.custom_op("gru_triton::gru_layer", mutates_args=())
def gru_layer_op(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                 b_hh: Tensor | None, lengths: Tensor | None, reverse: bool,
                 reset_after: bool, path: str, dot_precision: str,
                 save: bool) -> tuple[Tensor, Tensor, Tensor]:
    """One layer and direction forward.

    x: (T, B, I); h0: (B, H); w_ih: (3H, I); w_hh: (3H, H); b_ih / b_hh: (3H,) or None, all
    one dtype (fp16, bf16, fp32 or fp64). lengths: (B,) int32 on x's device, or None.
    Returns hs (T+1, B, H) in the accumulation dtype (slot layout: ``gru_triton.kernels.gru``;
    the output sequence and h_n are slices of it), and when ``save`` the activations
    (T, B, 3H) and, reset-after form only, the candidate's hidden-side pre-activation
    (T, B, H) for backward, both in the storage dtype (``storage_dtype_for``); empty tensors
    otherwise.
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
    if not save:
        return hs, gates.new_empty(0), gates.new_empty(0)
    return hs, gates, (ghn if reset_after else gates.new_empty(0))


@gru_layer_op.register_fake
def _gru_layer_fake(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, reset_after, path,
                    dot_precision, save):
    T, B, _ = x.shape
    H = w_hh.shape[1]
    acc, storage = acc_dtype_for(w_hh.dtype), storage_dtype_for(w_hh.dtype)
    hs = x.new_empty((T + 1, B, H), dtype=acc)
    if not save:
        return hs, x.new_empty(0, dtype=storage), x.new_empty(0, dtype=storage)
    ghn_shape = (T, B, H) if reset_after else (0,)
    return hs, x.new_empty((T, B, 3 * H), dtype=storage), x.new_empty(ghn_shape, dtype=storage)


@torch.library.custom_op("gru_triton::gru_layer_backward", mutates_args=())
def gru_layer_backward_op(d_hs: Tensor, x: Tensor, w_ih: Tensor, w_hh: Tensor, hs: Tensor,
                          gates: Tensor, ghn: Tensor, lengths: Tensor | None, reverse: bool,
                          reset_after: bool, path: str, dot_precision: str,
                          has_bias: bool, need_input: bool,
                          need_weights: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Backward of ``gru_layer`` given d_hs (T+1, B, H), dL/d(hs).

    Returns dx (T, B, I), dh0 (B, H), dw_ih (3H, I), dw_hh (3H, H), db_ih, db_hh (3H,) in the
    model's dtype; dx is empty unless ``need_input``, the weight and bias gradients are empty
    unless ``need_weights`` (biases: and ``has_bias``).
    """
    T, B, _ = gates.shape
    H = w_hh.shape[1]
    acc = hs.dtype
    d_hs = d_hs.to(acc).contiguous()
    dgx, dghn, dh_direct = gru_backward(d_hs, gates, ghn if reset_after else None, hs,
                                        w_hh.contiguous(), lengths, reverse=reverse, path=path,
                                        reset_after=reset_after, dot_precision=dot_precision)
    dgx2d, dghn2d = dgx.view(T * B, 3 * H), dghn.view(T * B, H)
    first, h0_slot = (T - 1, T) if reverse else (0, 0)
    mm_dtype = w_hh.dtype  # GEMMs in the model's dtype, accumulated in fp32 by the BLAS
    # (dgx and dghn are in it already for fp16/bf16 models; .to() is then free).
    # Distinct empty tensors: a custom op's outputs must not alias one another.
    dx, dw_ih, dw_hh, db_ih, db_hh = (w_hh.new_empty(0) for _ in range(5))
    with dispatch.gemm_precision(x.device, dot_precision):
        w_hh_acc = w_hh.to(acc)
        dh0 = d_hs[h0_slot] + dh_direct + dgx[first, :, :2 * H].to(acc) @ w_hh_acc[:2 * H]
        if reset_after:
            dh0 = dh0 + dghn[first].to(acc) @ w_hh_acc[2 * H:]
        if need_input:
            dx = (dgx2d.to(mm_dtype) @ w_ih).view(T, B, -1)
        if need_weights:
            x2d = x.reshape(T * B, -1)
            dw_ih = dgx2d.to(mm_dtype).t() @ x2d
            h_prev = (hs[1:] if reverse else hs[:T]).reshape(T * B, H)
            # W_hn multiplies h_{t-1} (reset after) or r ⊙ h_{t-1} (reset before).
            n_operand = h_prev if reset_after else gates[:, :, :H].reshape(T * B, H) * h_prev
            dw_hh = torch.cat([dgx2d[:, :2 * H].to(mm_dtype).t() @ h_prev.to(mm_dtype),
                               dghn2d.to(mm_dtype).t() @ n_operand.to(mm_dtype)])
    if need_weights and has_bias:
        db_ih = dgx2d.sum(0, dtype=acc).to(mm_dtype)
        db_hh = torch.cat([dgx2d[:, :2 * H].sum(0, dtype=acc),
                           dghn2d.sum(0, dtype=acc)]).to(mm_dtype)
    return dx, dh0.to(x.dtype), dw_ih, dw_hh, db_ih, db_hh


@gru_layer_backward_op.register_fake
def _gru_layer_backward_fake(d_hs, x, w_ih, w_hh, hs, gates, ghn, lengths, reverse, reset_after,
                             path, dot_precision, has_bias, need_input, need_weights):
    B, H = hs.shape[1], w_hh.shape[1]
    bias_shape = (3 * H,) if need_weights and has_bias else (0,)
    return (x.new_empty(x.shape if need_input else (0,)), x.new_empty((B, H)),
            w_ih.new_empty(w_ih.shape if need_weights else (0,)),
            w_hh.new_empty(w_hh.shape if need_weights else (0,)),
            w_hh.new_empty(bias_shape), w_hh.new_empty(bias_shape))


def _setup_context(ctx, inputs, output):
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, reset_after, path, precision, save = inputs
    hs, gates, ghn = output
    if save:
        ctx.save_for_backward(x, w_ih, w_hh, hs, gates, ghn, lengths)
    ctx.config = (reverse, reset_after, path, precision, b_ih is not None, save)
    # gates and ghn are what backward reads, never a result anyone differentiates: without
    # this autograd would hand backward zero-filled gradients for them, (T, B, 4H) in the
    # model's dtype, a third of a bf16 training step's peak (measured on the CPU).
    ctx.mark_non_differentiable(gates, ghn)
    ctx.set_materialize_grads(False)


def _backward(ctx, d_hs, _d_gates, _d_ghn):
    reverse, reset_after, path, precision, has_bias, save = ctx.config
    if not save:
        raise RuntimeError("gru_triton: this GRU ran without saving for backward (no input "
                           "required grad when it ran)")
    x, w_ih, w_hh, hs, gates, ghn, lengths = ctx.saved_tensors
    need = ctx.needs_input_grad
    if d_hs is None:  # unmaterialised: nothing flowed back into hs
        d_hs = torch.zeros_like(hs)
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = gru_layer_backward_op(
        d_hs, x, w_ih, w_hh, hs, gates, ghn, lengths, reverse, reset_after, path,
        precision, has_bias, need[0], any(need[2:6]))
    pick = lambda grad, wanted: grad if wanted else None
    return (pick(dx, need[0]), pick(dh0, need[1]), pick(dw_ih, need[2]), pick(dw_hh, need[3]),
            pick(db_ih, need[4] and has_bias), pick(db_hh, need[5] and has_bias),
            None, None, None, None, None, None)


torch.library.register_autograd("gru_triton::gru_layer", _backward, setup_context=_setup_context)


def _path(dtype, hidden_size, batch, device, *, lengths, reset_after) -> str:
    """The dispatcher's choice for weights of ``dtype`` (or that autocast computes in)."""
    if dtype in (torch.float16, torch.bfloat16):
        dots = "16-bit"
    elif dtype == torch.float32:
        dots = dispatch.dot_precision(dtype, device)
    else:
        dots = "ieee"
    return dispatch.recurrence_path(hidden_size, batch, device, reset_after=reset_after,
                                    lengths=lengths, dots=dots)


def _layer_triton(x, h0, w_ih, w_hh, b_ih, b_hh, reverse, lengths=None, reset_after=True):
    """One layer and direction on the kernels; same signature and results as
    ``gru_layer_reference`` (lengths here: (B,) int32 on x's device)."""
    T, B, _ = x.shape
    precision = dispatch.dot_precision(w_hh.dtype, x.device)
    path = _path(w_hh.dtype, w_hh.shape[1], B, x.device, lengths=lengths is not None,
                 reset_after=reset_after)
    if path == "cudnn":
        # The modules hand such calls to PyTorch before any layer runs; a layer called
        # directly (functional API, gradcheck) runs the kernels, split across programs.
        path = "per_step"
    save = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, h0, w_ih, w_hh, b_ih, b_hh))
    hs, _, _ = gru_layer_op(x.contiguous(), h0.contiguous(), w_ih, w_hh, b_ih, b_hh, lengths,
                            reverse, reset_after, path, precision, save)
    output, h_n = _OutputsOfStates.apply(hs, reverse, x.dtype)
    if lengths is not None:
        inside = torch.arange(T, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)
        output = torch.where(inside.unsqueeze(2), output, 0.0)
    return output, h_n


class _OutputsOfStates(torch.autograd.Function):
    """A layer's output (T, B, H) and h_n (B, H) in the model's dtype, from the kernels'
    states hs (T+1, B, H) (fp32, or fp64): slots 1..T and T (slots 0..T-1 and 0 reversed).

    Its backward writes both gradients into one (T+1, B, H) buffer. As plain slicing and
    casting, autograd would make a full-size fp32 copy of a 16-bit output's gradient, a
    zero-filled (T+1, B, H) buffer for each of output and h_n, and their sum. Both are new
    tensors, not views of hs (which backward reads), so that the caller may modify them in
    place, as nn.GRU's outputs allow."""

    @staticmethod
    def forward(hs, reverse, dtype):
        T = hs.shape[0] - 1
        output = hs[:T] if reverse else hs[1:]
        return output.to(dtype, copy=True), hs[0 if reverse else T].to(dtype, copy=True)

    @staticmethod
    def setup_context(ctx, inputs, output):
        hs, reverse, _ = inputs
        ctx.reverse, ctx.shape, ctx.dtype, ctx.device = reverse, hs.shape, hs.dtype, hs.device
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, d_output, d_h_n):
        T = ctx.shape[0] - 1
        d_hs = torch.zeros(ctx.shape, dtype=ctx.dtype, device=ctx.device)
        if d_output is not None:
            (d_hs[:T] if ctx.reverse else d_hs[1:]).copy_(d_output)
        if d_h_n is not None:
            d_hs[0 if ctx.reverse else T] += d_h_n
        return d_hs, None, None


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
    h_n = []
    for index in range(num_layers):
        outputs = []
        for direction in range(num_directions):
            cell = index * num_directions + direction
            params = weights[cell * per_direction:(cell + 1) * per_direction]
            w_ih, w_hh = params[0], params[1]
            b_ih, b_hh = (params[2], params[3]) if has_bias else (None, None)
            out, h = layer(x, hx[cell], w_ih, w_hh, b_ih, b_hh, direction == 1, lengths,
                           reset_after)
            outputs.append(out)
            h_n.append(h)
        x = outputs[0] if num_directions == 1 else torch.cat(outputs, dim=2)
        if dropout > 0 and training and index < num_layers - 1:
            x = F.dropout(x, dropout, training=True)
    output = x.transpose(0, 1) if batch_first else x
    return output, torch.stack(h_n)


def torch_route(dtype: torch.dtype, hidden_size: int, batch: int, device: torch.device,
                reset_after: bool) -> bool:
    """Whether the dispatcher hands a call with weights (or autocast) of ``dtype`` to
    PyTorch's own op. Per-row lengths do not change it: the module passes them to that op
    as a packed sequence built on the host."""
    return _path(dtype, hidden_size, batch, device, lengths=False,
                 reset_after=reset_after) == "cudnn"


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
    if backend == "triton" and torch_route(w_hh.dtype, w_hh.shape[1], input.shape[0],
                                           input.device, reset_after):
        return torch._VF.gru_cell(input, hx, w_ih, w_hh, b_ih, b_hh)
    layer = gru_layer_reference if backend == "reference" else _layer_triton
    _, h_new = layer(input.unsqueeze(0), hx, w_ih, w_hh, b_ih, b_hh, False, None, reset_after)
    return h_new
