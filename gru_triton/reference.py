"""The pure-PyTorch GRU: the oracle for the tests and the CPU fallback.

Kept short and obviously right on purpose: one timestep at a time, PyTorch's "reset after"
equations written out as in the ``torch.nn.GRU`` documentation.
"""

import torch


def gru_layer_reference(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """One layer, one direction.

    x: (T, B, I); h0: (B, H); w_ih: (3H, I); w_hh: (3H, H); b_ih, b_hh: (3H,) or None.
    Half and bfloat16 inputs are computed in float32 (the state stays fp32 between steps,
    like the kernels) and cast back. Returns output (T, B, H) and h_n (B, H) in x's dtype.
    """
    io_dtype = x.dtype
    if io_dtype in (torch.float16, torch.bfloat16):
        x, h0, w_ih, w_hh = x.float(), h0.float(), w_ih.float(), w_hh.float()
        b_ih = None if b_ih is None else b_ih.float()
        b_hh = None if b_hh is None else b_hh.float()
    gates_x = x @ w_ih.t()
    if b_ih is not None:
        gates_x = gates_x + b_ih
    h = h0
    outputs = [None] * x.shape[0]
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for t in steps:
        gates_h = h @ w_hh.t()
        if b_hh is not None:
            gates_h = gates_h + b_hh
        x_r, x_z, x_n = gates_x[t].chunk(3, dim=-1)
        h_r, h_z, h_n = gates_h.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        outputs[t] = h
    return torch.stack(outputs).to(io_dtype), h.to(io_dtype)
