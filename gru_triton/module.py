"""``gru_triton.GRU`` and ``gru_triton.GRUCell``: ``torch.nn.GRU`` / ``torch.nn.GRUCell`` with
their recurrence on the fused kernels."""

import contextlib

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from . import dispatch
from .functional import gru, gru_cell, gru_torch, saves_for_backward, torch_route

# torch's names for dtypes in its own error messages ("mat1 and mat2 must have the same dtype,
# but got Double and Float").
_SCALAR_TYPE_NAMES = {torch.float64: "Double", torch.float32: "Float", torch.float16: "Half",
                      torch.bfloat16: "BFloat16", torch.int64: "Long", torch.int32: "Int",
                      torch.int16: "Short", torch.int8: "Char", torch.uint8: "Byte",
                      torch.bool: "Bool"}


def _autocast_dtype(device: torch.device, cell: bool = False):
    """The dtype nn.GRU (``cell``: nn.GRUCell) computes in under ``torch.autocast`` on
    ``device``, or None.

    CUDA autocast runs cuDNN's RNN in fp16 whatever the autocast dtype (aten's
    cudnn/AutocastRNN.cpp casts to kHalf; measured on an H200 with torch 2.11: bf16 autocast,
    fp16 output), and ``gru_cell`` in the autocast dtype. CPU autocast leaves both alone."""
    if device.type == "cuda" and torch.is_autocast_enabled("cuda"):
        return torch.get_autocast_dtype("cuda") if cell else torch.float16
    return None


def _autocast_result(dtype: torch.dtype, cast: torch.dtype) -> torch.dtype:
    """What autocast to ``cast`` makes of a tensor of ``dtype``: fp64 it never casts."""
    return dtype if dtype == torch.float64 else cast


def _autocast(tensor, dtype):
    """``tensor`` cast as autocast casts it (``_autocast_result``); None stays."""
    if tensor is None:
        return tensor
    return tensor.to(_autocast_result(tensor.dtype, dtype))


def _pad_sorted(data, batch_sizes, total_length: int, batch_first: bool = False):
    """A packed sequence's data (N, *) padded with zeros to (total_length, B, *) (batch first
    if asked), its rows left in the packed (length-sorted) order.

    ``pad_packed_sequence`` also unsorts, and gathers the lengths with ``unsorted_indices
    .cpu()``, which synchronises with the GPU; batch_sizes lives on the CPU, so this does not."""
    return torch._VF._pad_packed_sequence(data, batch_sizes, batch_first, 0.0, total_length)[0]


def _validated_lengths(lengths, batch: int, seq_len: int) -> torch.Tensor:
    """lengths as an int64 tensor of shape (batch,), each in [1, seq_len]; ValueError if not.

    A list is checked in Python (nothing to synchronise, and torch.compile traces it without
    a graph break); a tensor is checked on the CPU, so a CUDA tensor costs one copy back.
    """
    if isinstance(lengths, torch.Tensor):
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must be integers, got a tensor of {lengths.dtype}")
        values = lengths.detach().to("cpu", torch.int64)
        shape = tuple(values.shape)
        low, high = (values.min().item(), values.max().item()) if values.numel() else (1, 1)
    else:
        try:
            values = list(lengths)
        except TypeError:
            raise ValueError("lengths must be a 1-D sequence of integers, got "
                             f"{type(lengths).__name__}") from None
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ValueError(f"lengths must be integers, got {values!r}")
        shape = (len(values),)
        low, high = (min(values), max(values)) if values else (1, 1)
    if shape != (batch,):
        raise ValueError(f"lengths must hold one length per sequence ({batch}), got shape {shape}")
    if low < 1 or high > seq_len:
        raise ValueError(f"lengths must lie in [1, {seq_len}] (the padded sequence length), got "
                         f"min {low} and max {high}")
    return values if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=torch.int64)


class GRU(nn.RNNBase):
    """Drop-in for ``torch.nn.GRU``: same constructor, checks, parameters, ``state_dict`` and
    ``forward(input, hx=None) -> (output, h_n)``, plus ``lengths=`` and ``reset_after=``.

    input: (T, B, I), (B, T, I) with ``batch_first``, unbatched (T, I), or a PackedSequence;
    hx: (L * D, B, H) or (L * D, H) unbatched; float16, bfloat16, float32 or float64.
    output: (T, B, D * H) (batch first if asked) in the input dtype, or a PackedSequence for
    packed input; h_n: (L * D, B, H), each sequence's state after its own last step, in the
    caller's batch order.

    lengths (keyword, padded input only): (B,) integers in [1, T], a list or tensor. The
    result equals packing the input with these lengths, running, and unpacking: output is 0
    past each length. The kernels pack nothing (they stop updating a row at its length);
    where the dispatcher hands the call to nn.GRU's own op, it is packed on the host.

    reset_after (keyword, constructor): True is PyTorch's GRU; False is the reset-before
    form of Cho et al. 2014 (TensorFlow 1, Keras ``reset_after=False``):
    n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn), with the same parameters.

    It is built on ``nn.RNNBase`` exactly as ``nn.GRU`` is, so nn.GRU's own argument checks,
    initialisation and error messages apply unchanged. It is deliberately not a subclass of
    ``nn.GRU``: torch.compile refuses to trace any ``nn.GRU`` instance, and tracing this one
    without a graph break is a feature. Under ``torch.autocast`` on CUDA it computes in
    fp16 whatever the autocast dtype, as cuDNN's GRU does; backward also works in eval mode.
    """

    def __init__(self, *args, reset_after: bool = True, **kwargs):
        if "proj_size" in kwargs:  # nn.GRU's own check, word for word
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)
        self.reset_after = bool(reset_after)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.reset_after else ", reset_after=False")

    def forward(self, input, hx=None, *, lengths=None):  # noqa: A002 - nn.GRU's parameter name
        self._update_flat_weights()
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths= is for padded input; a PackedSequence carries its own")
            return self._forward_packed(input, hx)
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
        hx = self._hx_or_zeros(hx, input.size(batch_dim), input)
        self.check_forward_args(input, hx, None)
        self._check_beyond_nn_gru_python(input, hx, self.batch_first)
        if lengths is not None:
            seq_len = input.size(1 - batch_dim)
            lengths = _validated_lengths(lengths, input.size(batch_dim), seq_len)
        if self._torch_route(input, hx, input.size(batch_dim), packed=lengths is not None):
            output, h_n = self._run_torch(input, hx, lengths)
        else:
            output, h_n = self._run(input, hx, lengths, self.batch_first)
        if not is_batched:
            output = output.squeeze(batch_dim)
            h_n = h_n.squeeze(1)
        return output, h_n

    def _forward_packed(self, packed: PackedSequence, hx):
        # Run in the packed (length-sorted) order, as nn.GRU does: hx is permuted by
        # sorted_indices and h_n back by unsorted_indices, and batch tiles hold sequences of
        # similar length, so whole tiles finish early and skip their work.
        batch = int(packed.batch_sizes[0])  # batch_sizes lives on the CPU: no sync
        if hx is not None:
            hx = self.permute_hidden(hx, packed.sorted_indices)
        hx = self._hx_or_zeros(hx, batch, packed.data)
        self.check_forward_args(packed.data, hx, packed.batch_sizes)
        if self._torch_route(packed.data, hx, batch, packed=True):
            _check_same_device_and_dtype(packed.data, hx, self._flat_weights)
            data, h_n = gru_torch(packed.data, packed.batch_sizes, hx, self._flat_weights,
                                  batch_first=False, **self._stack_args())
        else:
            padded = _pad_sorted(packed.data, packed.batch_sizes, packed.batch_sizes.size(0))
            # Sorted lengths straight from batch_sizes (on the CPU): reading sorted_indices,
            # which lives on the input's device, would synchronise with the GPU.
            lengths = (packed.batch_sizes.unsqueeze(1) > torch.arange(batch)).sum(0)
            self._check_beyond_nn_gru_python(padded, hx, batch_first=False)
            output, h_n = self._run(padded, hx, lengths, batch_first=False)
            data = pack_padded_sequence(output, lengths, enforce_sorted=True).data
        return (PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                               packed.unsorted_indices),
                self.permute_hidden(h_n, packed.unsorted_indices))

    def _torch_route(self, input, hx, batch: int, *, packed: bool) -> bool:
        """Whether the dispatcher hands this call to nn.GRU's own op (the shapes where no
        kernel path was measured faster than cuDNN, in training or in inference as this call
        is; ``dispatch.recurrence_path``). ``packed``: the call would go to it as a packed
        sequence."""
        if batch == 0 or dispatch.resolve_backend(input.device) != "triton":
            return False
        if packed and torch.compiler.is_compiling():
            # Dynamo refuses to trace packing (and the op's packed form); the kernels take
            # lengths without a graph break.
            return False
        dtype = self._flat_weights[0].dtype
        cast = _autocast_dtype(input.device)
        if cast is not None:
            dtype = _autocast_result(dtype, cast)
        return torch_route(dtype, self.hidden_size, batch, input.device, self.reset_after,
                           saves_for_backward(input, hx, *self._flat_weights))

    def _stack_args(self) -> dict:
        return dict(has_bias=self.bias, num_layers=self.num_layers, dropout=self.dropout,
                    training=self.training, bidirectional=self.bidirectional)

    def _run_torch(self, input, hx, lengths):
        """nn.GRU's own op on checked padded input; with lengths (CPU int64) through a packed
        sequence built on the host, so output is 0 past each length as on the kernels. Runs
        under the caller's autocast, exactly as nn.GRU does."""
        if lengths is None:
            return gru_torch(input, None, hx, self._flat_weights, batch_first=self.batch_first,
                             **self._stack_args())
        packed = pack_padded_sequence(input, lengths, batch_first=self.batch_first,
                                      enforce_sorted=False)
        data, h_n = gru_torch(packed.data, packed.batch_sizes,
                              self.permute_hidden(hx, packed.sorted_indices), self._flat_weights,
                              batch_first=False, **self._stack_args())
        output = _pad_sorted(data, packed.batch_sizes, input.size(1 if self.batch_first else 0),
                             self.batch_first)
        output = output.index_select(0 if self.batch_first else 1, packed.unsorted_indices)
        return output, self.permute_hidden(h_n, packed.unsorted_indices)

    def _hx_or_zeros(self, hx, batch: int, input):
        if hx is not None:
            return hx
        num_directions = 2 if self.bidirectional else 1
        return torch.zeros(self.num_layers * num_directions, batch, self.hidden_size,
                           dtype=input.dtype, device=input.device)

    def _run(self, input, hx, lengths, batch_first):
        """input: checked (T, B, I) or (B, T, I); lengths: None or validated CPU int64 (B,)."""
        batch = input.size(0 if batch_first else 1)
        backend = "reference" if batch == 0 else dispatch.resolve_backend(input.device)
        weights = self._flat_weights
        cast = _autocast_dtype(input.device)
        if cast is not None:
            input, hx = _autocast(input, cast), _autocast(hx, cast)
            weights = [_autocast(w, cast) for w in weights]
        if lengths is not None:
            lengths = lengths.to(input.device, torch.int32, non_blocking=True)
        with torch.autocast("cuda", enabled=False) if cast is not None else contextlib.nullcontext():
            return gru(input, hx, weights, has_bias=self.bias, num_layers=self.num_layers,
                       dropout=self.dropout, training=self.training,
                       bidirectional=self.bidirectional, batch_first=batch_first,
                       backend=backend, lengths=lengths, reset_after=self.reset_after)

    def _check_beyond_nn_gru_python(self, input, hx, batch_first):
        # nn.GRU makes these checks in its C++ kernels; same exception types and messages.
        seq_len = input.size(1) if batch_first else input.size(0)
        if seq_len == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        _check_same_device_and_dtype(input, hx, self._flat_weights)


def _check_same_device_and_dtype(input, hx, weights):
    if hx.device != input.device:
        raise RuntimeError(
            "Input and hidden tensors are not at the same device, found input tensor at "
            f"{input.device} and hidden tensor at {hx.device}")
    if hx.dtype != input.dtype:
        raise RuntimeError(f"hx dtype ({hx.dtype}) does not match input dtype ({input.dtype})")
    for weight in weights:
        if weight.device != input.device:
            raise RuntimeError(
                f"Input and parameter tensors are not at the same device, found input tensor "
                f"at {input.device} and parameter tensor at {weight.device}")


class GRUCell(nn.GRUCell):
    """Drop-in for ``torch.nn.GRUCell``: same constructor, checks, parameters, init and
    ``forward(input, hx=None) -> h'``, one fused step (forward and backward) per call.

    input: (B, I) or unbatched (I,); hx: (B, H) or (H,), zeros if omitted; h': like hx, in
    the input dtype. reset_after (keyword): as for ``gru_triton.GRU``.
    """

    def __init__(self, *args, reset_after: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.reset_after = bool(reset_after)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.reset_after else ", reset_after=False")

    def forward(self, input, hx=None):  # noqa: A002 - nn.GRUCell's parameter name
        if input.dim() not in (1, 2):
            raise ValueError(f"GRUCell: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if hx is not None and hx.dim() not in (1, 2):
            raise ValueError(f"GRUCell: Expected hidden to be 1D or 2D, got {hx.dim()}D instead")
        is_batched = input.dim() == 2
        if not is_batched:
            input = input.unsqueeze(0)
        if hx is None:
            hx = torch.zeros(input.size(0), self.hidden_size, dtype=input.dtype, device=input.device)
        elif not is_batched:
            hx = hx.unsqueeze(0)
        self._check_like_aten(input, hx)
        weights = [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]
        cast = _autocast_dtype(input.device, cell=True)
        if cast is not None:
            input, hx = _autocast(input, cast), _autocast(hx, cast)
            weights = [_autocast(w, cast) for w in weights]
        backend = "reference" if input.size(0) == 0 else dispatch.resolve_backend(input.device)
        with torch.autocast("cuda", enabled=False) if cast is not None else contextlib.nullcontext():
            h_new = gru_cell(input, hx, *weights, backend=backend, reset_after=self.reset_after)
        return h_new if is_batched else h_new.squeeze(0)

    def _check_like_aten(self, input, hx):
        # The checks (and messages) of at::gru_cell and the matmuls inside it.
        if input.size(1) != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.size(1)} "
                               f"expected {self.input_size}")
        if input.size(0) != hx.size(0):
            raise RuntimeError(f"Input batch size {input.size(0)} doesn't match hidden0 batch "
                               f"size {hx.size(0)}")
        if hx.dim() < 2 or hx.size(1) != self.hidden_size:
            got = hx.size(1) if hx.dim() >= 2 else tuple(hx.shape)
            raise RuntimeError(f"hidden0 has inconsistent hidden_size: got {got}, expected "
                               f"{self.hidden_size}")
        for tensor in (input, hx):
            if tensor.dtype != self.weight_ih.dtype:
                raise RuntimeError(
                    "mat1 and mat2 must have the same dtype, but got "
                    f"{_SCALAR_TYPE_NAMES.get(tensor.dtype, tensor.dtype)} and "
                    f"{_SCALAR_TYPE_NAMES.get(self.weight_ih.dtype, self.weight_ih.dtype)}")
        _check_same_device_and_dtype(input, hx, [p for p in self.parameters()])
