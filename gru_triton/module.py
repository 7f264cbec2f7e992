"""``gru_triton.GRU``: ``torch.nn.GRU`` with its recurrence on the fused kernels."""

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from . import dispatch
from .functional import gru


class GRU(nn.GRU):
    """Drop-in for ``torch.nn.GRU``: same constructor, checks, parameters, ``state_dict`` and
    ``forward(input, hx=None) -> (output, h_n)``.

    input: (T, B, I), (B, T, I) with ``batch_first``, or unbatched (T, I); hx: (L * D, B, H)
    or (L * D, H) unbatched; float16, bfloat16, float32 or float64. output: (T, B, D * H)
    (batch first if asked), h_n: (L * D, B, H), in the input dtype.

    It subclasses ``nn.GRU``, so ``isinstance(m, nn.GRU)`` holds and nn.GRU's own argument
    checks and error messages apply unchanged. ``reset_after`` (keyword only) names the
    equation form; only PyTorch's ``reset_after=True`` is implemented so far.
    PackedSequence input is still computed by ``nn.GRU`` itself (not on the kernels yet).
    """

    def __init__(self, *args, reset_after: bool = True, **kwargs):
        if not reset_after:
            raise NotImplementedError("reset_after=False (the reset-before GRU) is not implemented yet")
        super().__init__(*args, **kwargs)
        self.reset_after = reset_after

    def forward(self, input, hx=None):  # noqa: A002 - nn.GRU's parameter name
        if isinstance(input, PackedSequence):
            return super().forward(input, hx)
        self._update_flat_weights()
        if input.dim() not in (2, 3):
            raise ValueError(f"GRU: Expected input to be 2D or 3D, got {input.dim()}D instead")
        is_batched = input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        if not is_batched:
            input = input.unsqueeze(batch_dim)
            if hx is not None:
                if hx.dim() != 2:
                    raise RuntimeError(
                        f"For unbatched 2-D input, hx should also be 2-D but got {hx.dim()}-D tensor")
                hx = hx.unsqueeze(1)
        elif hx is not None and hx.dim() != 3:
            raise RuntimeError(
                f"For batched 3-D input, hx should also be 3-D but got {hx.dim()}-D tensor")
        batch = input.size(0) if self.batch_first else input.size(1)
        if hx is None:
            num_directions = 2 if self.bidirectional else 1
            hx = torch.zeros(self.num_layers * num_directions, batch, self.hidden_size,
                             dtype=input.dtype, device=input.device)
        self.check_forward_args(input, hx, None)
        self._check_beyond_nn_gru_python(input, hx)

        if batch == 0:
            backend = "reference"  # nothing to launch; nn.GRU returns empty tensors too
        else:
            backend = dispatch.resolve_backend(input.device)
        output, h_n = gru(input, hx, self._flat_weights, has_bias=self.bias,
                          num_layers=self.num_layers, dropout=self.dropout,
                          training=self.training, bidirectional=self.bidirectional,
                          batch_first=self.batch_first, backend=backend)
        if not is_batched:
            output = output.squeeze(batch_dim)
            h_n = h_n.squeeze(1)
        return output, h_n

    def _check_beyond_nn_gru_python(self, input, hx):
        # nn.GRU makes these checks in its C++ kernels; same exception types and messages.
        seq_len = input.size(1) if self.batch_first else input.size(0)
        if seq_len == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        if hx.device != input.device:
            raise RuntimeError(
                "Input and hidden tensors are not at the same device, found input tensor at "
                f"{input.device} and hidden tensor at {hx.device}")
        if hx.dtype != input.dtype:
            raise RuntimeError(
                f"hx dtype ({hx.dtype}) does not match input dtype ({input.dtype})")
        for weight in self._flat_weights:
            if weight.device != input.device:
                raise RuntimeError(
                    f"Input and parameter tensors are not at the same device, found input tensor "
                    f"at {input.device} and parameter tensor at {weight.device}")
