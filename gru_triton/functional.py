"""Autograd for the fused kernels, and the multi-layer / bidirectional GRU built on them.

Memory kept for backward per layer and direction, for (T, B, H) in the accumulation dtype
(fp32, or fp64 for fp64 models): the gate activations r, z, n (3 T·B·H), W_hn h + b_hn
(T·B·H) and the hidden states (T+1)·B·H, besides the layer input x, which autograd keeps
anyway. That is 5 T·B·H + B·H values, i.e. 20 bytes per (t, b, h) in fp32. Nothing is kept
when no input needs a gradient.
"""

import torch
import torch.nn.functional as F

from . import dispatch
from .kernels import acc_dtype_for, gru_backward, gru_forward
from .reference import gru_layer_reference


def _linear(x2d, weight, bias):
    return x2d @ weight.t() if bias is None else torch.addmm(bias, x2d, weight.t())


class GRULayerFunction(torch.autograd.Function):
    """One layer and direction on the fused kernels.

    x: (T, B, I), h0: (B, H), w_ih: (3H, I), w_hh: (3H, H), b_ih / b_hh: (3H,) or None, all
    one dtype (fp16, bf16, fp32 or fp64). Returns output (T, B, H) and h_n (B, H) in that dtype.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, reverse, path, dot_precision):
        T, B, input_size = x.shape
        H = w_hh.shape[1]
        acc = acc_dtype_for(w_hh.dtype)
        x2d = x.reshape(T * B, input_size)
        with dispatch.gemm_precision(x.device, dot_precision):
            gates = _linear(x2d, w_ih, b_ih).to(acc).view(T, B, 3 * H)
        save = any(ctx.needs_input_grad[:6])
        hs, ghn = gru_forward(
            gates, w_hh.contiguous(), None if b_hh is None else b_hh.contiguous(),
            h0.to(acc).contiguous(), reverse=reverse, save=save,
            persistent=path == "persistent", dot_precision=dot_precision)
        output = (hs[:T] if reverse else hs[1:]).to(x.dtype)
        h_n = (hs[0] if reverse else hs[T]).to(h0.dtype, copy=True)
        if save:
            ctx.save_for_backward(x2d, w_ih, w_hh, hs, gates, ghn)
            ctx.has_bias = (b_ih is not None, b_hh is not None)
            ctx.reverse, ctx.path, ctx.dot_precision = reverse, path, dot_precision
            ctx.h0_dtype = h0.dtype
        return output, h_n

    @staticmethod
    def backward(ctx, d_output, d_h_n):
        x2d, w_ih, w_hh, hs, gates, ghn = ctx.saved_tensors
        T, B, H = ghn.shape
        acc = hs.dtype
        d_output = (torch.zeros_like(ghn) if d_output is None
                    else d_output.to(acc).contiguous())
        d_h_n = (torch.zeros_like(hs[0]) if d_h_n is None else d_h_n.to(acc).contiguous())
        dgx, dghn, dh_direct = gru_backward(
            d_output, d_h_n, gates, ghn, hs, w_hh.contiguous(), reverse=ctx.reverse,
            persistent=ctx.path == "persistent", dot_precision=ctx.dot_precision)

        dgx2d = dgx.view(T * B, 3 * H)
        dghn2d = dghn.view(T * B, H)
        h_prev2d = (hs[1:] if ctx.reverse else hs[:T]).reshape(T * B, H)
        first = T - 1 if ctx.reverse else 0
        need = ctx.needs_input_grad
        dx = dh0 = dw_ih = dw_hh = db_ih = db_hh = None
        mm_dtype = w_ih.dtype  # GEMMs in the model's dtype, accumulated in fp32 by the BLAS
        with dispatch.gemm_precision(x2d.device, ctx.dot_precision):
            if need[1]:
                w_hh_acc = w_hh.to(acc)
                dh0 = (dh_direct + dgx[first, :, :2 * H] @ w_hh_acc[:2 * H]
                       + dghn[first] @ w_hh_acc[2 * H:]).to(ctx.h0_dtype)
            if need[0]:
                dx = (dgx2d.to(mm_dtype) @ w_ih).view(T, B, -1)
            if need[2]:
                dw_ih = dgx2d.to(mm_dtype).t() @ x2d
            if need[3]:
                h_prev_mm = h_prev2d.to(mm_dtype)
                dw_hh = torch.cat([dgx2d[:, :2 * H].to(mm_dtype).t() @ h_prev_mm,
                                   dghn2d.to(mm_dtype).t() @ h_prev_mm])
        if ctx.has_bias[0] and need[4]:
            db_ih = dgx2d.sum(0).to(w_ih.dtype)
        if ctx.has_bias[1] and need[5]:
            db_hh = torch.cat([dgx2d[:, :2 * H].sum(0), dghn2d.sum(0)]).to(w_hh.dtype)
        return dx, dh0, dw_ih, dw_hh, db_ih, db_hh, None, None, None


def _layer_triton(x, h0, w_ih, w_hh, b_ih, b_hh, reverse):
    path = dispatch.recurrence_path(w_hh.shape[1], x.shape[1], x.device)
    precision = (dispatch.fp32_dot_precision(x.device) if w_hh.dtype == torch.float32
                 else "ieee")
    return GRULayerFunction.apply(x.contiguous(), h0, w_ih, w_hh, b_ih, b_hh, reverse, path,
                                  precision)


def gru(input, hx, weights, *, has_bias, num_layers, dropout, training, bidirectional,
        batch_first, backend):
    """The multi-layer, optionally bidirectional GRU of ``torch.nn.GRU``.

    input: (T, B, I), or (B, T, I) when ``batch_first``. hx: (num_layers * D, B, H).
    weights: ``nn.GRU._flat_weights`` order: per layer and direction w_ih, w_hh[, b_ih, b_hh].
    backend: "triton" or "reference". Returns output (T, B, D * H) (or batch first) and
    h_n (num_layers * D, B, H). Shapes are assumed checked by the caller (the module).
    """
    layer = gru_layer_reference if backend == "reference" else _layer_triton
    x = input.transpose(0, 1) if batch_first else input
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
            out, h = layer(x, hx[cell], w_ih, w_hh, b_ih, b_hh, direction == 1)
            outputs.append(out)
            h_n.append(h)
        x = outputs[0] if num_directions == 1 else torch.cat(outputs, dim=2)
        if dropout > 0 and training and index < num_layers - 1:
            x = F.dropout(x, dropout, training=True)
    output = x.transpose(0, 1) if batch_first else x
    return output, torch.stack(h_n)
