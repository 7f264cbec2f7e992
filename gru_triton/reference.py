"""The pure-PyTorch GRU: the oracle for the tests and the CPU fallback.

Kept short and obviously right on purpose: one timestep at a time, the equations written out
as in the ``torch.nn.GRU`` documentation ("reset after") or as in Cho et al. 2014 ("reset
before": n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)).
"""

import torch


def gru_layer_reference(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False, lengths=None,
                        reset_after=True):
    """One layer, one direction.

    x: (T, B, I); h0: (B, H); w_ih: (3H, I); w_hh: (3H, H); b_ih, b_hh: (3H,) or None.
    lengths: None, or (B,) integers in [1, T]: row b reads x[:lengths[b], b] (backwards from
    lengths[b] - 1 when ``reverse``), its output is 0 past its length and h_n is its state
    after its own last step, as with a PackedSequence.
    Half and bfloat16 inputs are computed in float32 (the state stays fp32 between steps,
    like the kernels) and cast back. Returns output (T, B, H) and h_n (B, H) in x's dtype.
    """
    io_dtype = x.dtype
    if io_dtype in (torch.float16, torch.bfloat16):
        x, h0, w_ih, w_hh = x.float(), h0.float(), w_ih.float(), w_hh.float()
        b_ih = None if b_ih is None else b_ih.float()
        b_hh = None if b_hh is None else b_hh.float()
    if b_hh is None:
        b_hh = torch.zeros(w_hh.shape[0], dtype=w_hh.dtype, device=w_hh.device)
    w_hr_hz, w_hn = w_hh.split([2 * w_hh.shape[1], w_hh.shape[1]])
    b_hr_hz, b_hn = b_hh.split([2 * w_hh.shape[1], w_hh.shape[1]])
    gates_x = x @ w_ih.t()
    if b_ih is not None:
        gates_x = gates_x + b_ih
    h = h0
    outputs = [None] * x.shape[0]
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for t in steps:
        x_r, x_z, x_n = gates_x[t].chunk(3, dim=-1)
        h_r, h_z = (h @ w_hr_hz.t() + b_hr_hz).chunk(2, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        if reset_after:
            n = torch.tanh(x_n + r * (h @ w_hn.t() + b_hn))
        else:
            n = torch.tanh(x_n + (r * h) @ w_hn.t() + b_hn)
        h_new = (1 - z) * n + z * h
        if lengths is None:
            h = outputs[t] = h_new
        else:
            inside = (t < lengths.to(x.device)).unsqueeze(1)
            h = torch.where(inside, h_new, h)
            outputs[t] = torch.where(inside, h_new, torch.zeros_like(h_new))
    return torch.stack(outputs).to(io_dtype), h.to(io_dtype)
