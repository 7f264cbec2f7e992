"""Which implementation runs a GRU, and how the kernels are driven.

Backends: "auto" (on CUDA tensors the kernels, or PyTorch's own RNN op where
``recurrence_path`` has no kernel path measured faster; the reference on CPU ones), "triton"
(always the kernels; on CPU tensors this needs ``TRITON_INTERPRET=1`` set before triton is
imported, which is how the tests run them) and "reference". ``set_backend`` wins over the
``GRU_TRITON_BACKEND`` environment variable, which wins over "auto".
"""

import contextlib
import os

import torch

from .kernels import PATHS

# The kernels' recurrence paths, plus "cudnn": PyTorch's own RNN op, the one nn.GRU calls
# (cuDNN on CUDA), for the shapes where no kernel path was measured faster.
ALL_PATHS = (*PATHS, "cudnn")
BACKENDS = ("auto", "triton", "reference")

_backend: str | None = None
_forced_path: str | None = None


def set_backend(name: str | None) -> None:
    """Select "auto", "triton" or "reference" for every later call; None goes back to the
    environment variable ``GRU_TRITON_BACKEND`` (default "auto")."""
    global _backend
    if name is not None and name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    _backend = name


def get_backend() -> str:
    name = _backend or os.environ.get("GRU_TRITON_BACKEND", "auto")
    if name not in BACKENDS:
        raise ValueError(f"GRU_TRITON_BACKEND must be one of {BACKENDS}, got {name!r}")
    return name


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def resolve_backend(device: torch.device) -> str:
    """"triton" or "reference" for tensors on ``device``."""
    name = get_backend()
    if name == "auto":
        return "triton" if device.type == "cuda" else "reference"
    if name == "triton" and device.type != "cuda" and not interpreter_enabled():
        raise RuntimeError(
            f"gru_triton backend 'triton' got {device.type} tensors: the kernels run on CUDA, or "
            "on the CPU under the Triton interpreter (set TRITON_INTERPRET=1 before triton is "
            "imported). Use set_backend('auto') to fall back to the reference on the CPU."
        )
    return name


@contextlib.contextmanager
def force_path(path: str | None):
    """Run the kernels through one recurrence path of ``ALL_PATHS`` (tests, benchmarks); None
    lets ``recurrence_path`` choose."""
    global _forced_path
    if path is not None and path not in ALL_PATHS:
        raise ValueError(f"path must be one of {ALL_PATHS}, got {path!r}")
    saved, _forced_path = _forced_path, path
    try:
        yield
    finally:
        _forced_path = saved


# Where grid_sync beat nn.GRU (cuDNN) in the forward and in the forward + backward, per kind
# of dot: (smallest H, largest H, largest B). Measured on an H200, T = 256, one layer, I = H,
# µs per step: 16-bit in bench/results/nvidia-h200-2026-12-04/forms/ (the kernels with
# kernels.gru._sixteen_bit_forms, H 256-2048 at B 16, 64, bf16 and fp16), the rest in
# bench/results/nvidia-h200-2026-11-25/: auto/ (H 256, 512, 1024 at B 16, 64), dispatch/
# (H 64-512 at B 1/16/64) and the quick run (H 1024, 2048). Everything else on CUDA goes to
# cuDNN.
GRID_SYNC_WINS = {
    # forms/ (bf16; fp16 within 15%): H 256 at B 16/64: fwd 2.2/3.9 against cuDNN's
    # 20.8/21.6, fwd+bwd 10.0/11.1 against 47.3/46.4. H 512: fwd 3.3/4.2 against 22.5/21.8,
    # fwd+bwd 11.0/10.9 against 44.7/40.8. H 1024: fwd 4.1/9.9 against 22.3/20.0, fwd+bwd
    # 10.1/19.3 against 49.4/49.7. H 2048 at B 16: fwd 11.1 against 14.8, fwd+bwd 20.6 against
    # 49.9; at B 64 lost fwd+bwd, 85.0 against 52.3 (fwd 17.3 against 18.4). (cuDNN timed
    # 20-50% slower in that run than in the first of the day: each speed-up is against the
    # cuDNN of its own run.) 2026-11-25's dispatch/: H 64 and 128 at B 1/16/64 won, fwd
    # 2.7-4.4 against 13.0-19.5 (H under 64 not timed).
    "16-bit": ((1, 1024, 64), (1025, 2048, 16)),
    # auto/: H 256 at B 16/64: fwd 3.9/4.9 against 10.1/11.1, fwd+bwd 12.0/20.5 against
    # 25.4/33.7. H 512 at B 16/64: fwd 5.8/6.7 against 13.7/15.3, fwd+bwd 18.7/34.3 against
    # 32.7/42.5. H 1024 at B 16 lost, fwd 24.0 against 23.3. dispatch/: at H 64 and 128
    # cuDNN's fp32 GRU took 0.6-0.9 µs/step (fwd), grid_sync 3.0-5.2.
    "tf32": ((256, 512, 64),),
    # IEEE fp32: cuDNN was faster at every shape timed (H 64-2048, B 1-64); fp64 not timed.
    "ieee": (),
    # IEEE fp32 with the products as three TF32 ones (docs/performance.md, "IEEE fp32 on
    # tensor cores"): lost forward + backward (FORWARD_WINS has where it won the forward).
    "tf32x3": (),
}

# Where grid_sync beat nn.GRU (cuDNN) in the forward alone, beyond GRID_SYNC_WINS, per kind
# of dot: (smallest H, largest H, largest B). A call that autograd keeps nothing of for a
# backward (under torch.no_grad or inference_mode, or with no tensor requiring grad: the
# ``training=False`` of recurrence_path) costs its forward alone, so there these ranges run
# grid_sync too; a training call keeps to GRID_SYNC_WINS, where the backward won as well.
FORWARD_WINS = {
    "16-bit": (),
    "tf32": (),
    "ieee": (),
    # fp32 weights under nn.GRU's IEEE flag, the products as three TF32 ones ("tf32x3"):
    # bench/results/nvidia-h200-2026-12-04/variants-fp32.json (the module's forward under
    # no_grad, T 256, µs/step): B 16/64 at H 256 7.48/8.05 against cuDNN IEEE's 10.25/12.14,
    # at H 512 9.30/10.80 against 12.80/21.43, each within 4.9e-7 of cuDNN's output. Forward +
    # backward (variants-fp32-bwd.json) lost at H 512, 49.99/68.64 against 36.65/55.66, and
    # tied at B 64 H 256, 37.07 against 38.31. H 1024 asked 400 KiB of shared memory under
    # triton 3.6 and did not run. B < 16 runs B 16's grid (one 16-row tile).
    "tf32x3": ((256, 512, 64),),
}


def _measured_win(dots: str, hidden_size: int, batch: int, training: bool) -> bool:
    """Whether grid_sync beat cuDNN at this shape for ``dots``: forward + backward where
    ``training``, else the forward alone."""
    ranges = GRID_SYNC_WINS[dots] + (() if training else FORWARD_WINS[dots])
    return any(low <= hidden_size <= high and batch <= most for low, high, most in ranges)


_forced_ieee_dots: str | None = None


@contextlib.contextmanager
def force_ieee_dots(dots: str | None):
    """Run fp32 weights' W_hh products as ``dots`` ("ieee" or "tf32x3") wherever nn.GRU's
    fp32 flag says IEEE (tests, benchmarks); None lets the tables' "tf32x3" rows choose."""
    global _forced_ieee_dots
    if dots is not None and dots not in ("ieee", "tf32x3"):
        raise ValueError(f"dots must be 'ieee' or 'tf32x3', got {dots!r}")
    saved, _forced_ieee_dots = _forced_ieee_dots, dots
    try:
        yield
    finally:
        _forced_ieee_dots = saved


# When a bidirectional layer's two directions may run at once on CUDA (functional's
# _directions_at_once says where they fit): "inference", where nothing is saved for
# backward; "training" too, which autograd's engine then also runs the reverse direction's
# backward beside the forward one's; "never". "training" is the default: on an H200 (2-layer
# bidirectional, bf16, T 256, bench/results/nvidia-h200-2026-12-04/bidirectional-*) a
# training step took 15.2 ms at once against 28.9 one after the other at B 16, H 1024, 8.6
# against 11.0 at H 512, and 9.8 against 18.6 at B 32, H 512 (cuDNN: 36.3, 33.1, 38.2); its
# bit-equality test passed there (tests/test_cuda.py). Inference at once was faster at
# every shape timed too (B 16-64, H 256-1024, bf16 and TF32: 1.6-3.1 ms against 3.0-5.5).
DIRECTIONS_AT_ONCE = ("inference", "training", "never")
_directions_at_once = "training"


@contextlib.contextmanager
def directions_at_once(mode: str):
    """Inside: a bidirectional layer's two directions run at once where ``mode`` (one of
    ``DIRECTIONS_AT_ONCE``) allows it and their grids fit together."""
    global _directions_at_once
    if mode not in DIRECTIONS_AT_ONCE:
        raise ValueError(f"mode must be one of {DIRECTIONS_AT_ONCE}, got {mode!r}")
    saved, _directions_at_once = _directions_at_once, mode
    try:
        yield
    finally:
        _directions_at_once = saved


def directions_at_once_mode() -> str:
    return _directions_at_once


def recurrence_path(hidden_size: int, batch: int, device: torch.device, *,
                    reset_after: bool = True, lengths: bool = False, dots: str = "16-bit",
                    training: bool = True) -> str:
    """The way to run the recurrence for this shape: the one table of choices.

    ``lengths``: per-row lengths are given; ``dots``: how the W_hh products run, "16-bit"
    (fp16/bf16 weights), "tf32" (fp32 weights, the cuDNN RNN flag says TF32), "tf32x3" (fp32
    weights under the IEEE flag, as three TF32 products: ``dot_precision``) or "ieee" (fp32
    with IEEE dots, and fp64), which run on CUDA cores; ``training``: autograd keeps the
    call for a backward (False: inference, whose cost is the forward alone, so
    ``FORWARD_WINS`` counts too).

    | where                           | path       | why                                    |
    |---------------------------------|------------|----------------------------------------|
    | reset_after=False               | persistent | the candidate needs all of r ⊙ h_{t-1} |
    |                                 |            | first; only a program owning every     |
    |                                 |            | hidden unit of its rows has it         |
    | CPU (interpreter)               | persistent | one launch instead of T; the           |
    |                                 |            | interpreter pays per launch            |
    | CUDA, a GRID_SYNC_WINS range    | grid_sync  | measured faster than cuDNN, forward    |
    |                                 |            | and forward + backward                 |
    | CUDA, inference, a FORWARD_WINS | grid_sync  | measured faster than cuDNN, forward    |
    | range                           |            |                                        |
    | CUDA, otherwise                 | cudnn      | nn.GRU's own op, measured faster (or   |
    |                                 |            | not measured). The modules pass        |
    |                                 |            | PackedSequence and lengths= to it      |
    |                                 |            | packed (host lengths)                  |
    | ... but lengths only on the     | grid_sync, | the fastest kernel path measured;      |
    | device (``lengths=True``: a     | per_step   | packing would read the lengths back    |
    | layer called directly), or      | for IEEE   | (a sync). per_step: IEEE fp32 at B 64, |
    | backend "triton" chosen         | at B > 16, | H 1024/2048: 127/494 µs/step against   |
    |                                 | H >= 1024  | grid_sync's 231/1024                   |

    The persistent path (one program per batch tile streams all of W_hh every step) lost to
    grid_sync at 70 of the 72 shapes swept (it won fwd+bwd at H 64, B 1: 8.5 against 9.8
    µs/step in bf16, both far under cuDNN's 30.4), and to cuDNN from H 256 (bf16 fwd 35.8
    against 13.4 at B 1). grid_sync falls back to per_step where its grid cannot be
    co-resident (``kernels.gru._launch_plan``). ``force_path`` overrides the table, except
    that the reset-before form is always persistent and "cudnn" with lengths runs per_step.
    """
    if dots not in GRID_SYNC_WINS:
        raise ValueError(f"dots must be one of {tuple(GRID_SYNC_WINS)}, got {dots!r}")
    if not reset_after:
        return "persistent"
    if _forced_path is not None:
        return "per_step" if _forced_path == "cudnn" and lengths else _forced_path
    if device.type != "cuda":
        return "persistent"
    if _measured_win(dots, hidden_size, batch, training):
        return "grid_sync"
    if not lengths and get_backend() == "auto":
        return "cudnn"
    if dots == "ieee" and batch > 16 and hidden_size >= 1024:
        return "per_step"
    return "grid_sync"


def dot_precision(dtype: torch.dtype, device: torch.device, hidden_size: int = 0,
                  batch: int = 0, training: bool = True) -> str:
    """``tl.dot`` input precision for weights of ``dtype`` at this shape: fp32 follows cuDNN's
    RNN flag (``fp32_dot_precision``), and where that says IEEE, "tf32x3" runs the same
    accuracy on tensor cores where the tables' "tf32x3" rows (GRID_SYNC_WINS, and
    FORWARD_WINS unless ``training``, as in ``recurrence_path``) or ``force_ieee_dots`` say
    so; other dtypes have one precision ("ieee" names it)."""
    if dtype != torch.float32:
        return "ieee"
    flag = fp32_dot_precision(device)
    if flag != "ieee":
        return flag
    if _forced_ieee_dots is not None:
        return _forced_ieee_dots
    if device.type == "cuda" and _measured_win("tf32x3", hidden_size, batch, training):
        return "tf32x3"
    return "ieee"


def _tf32_enabled_for_rnn() -> bool:
    # nn.GRU's fp32 recurrence runs through cuDNN, which follows the cuDNN RNN precision flag
    # ("tf32" by default), not the matmul one; "none" defers to the parent flag. Torch
    # releases without these flags only have the legacy cudnn.allow_tf32.
    cudnn = torch.backends.cudnn
    for flag in (getattr(cudnn, "rnn", None), cudnn, torch.backends):
        value = getattr(flag, "fp32_precision", "none")
        if value != "none":
            return value == "tf32"
    if not hasattr(cudnn, "rnn"):
        return bool(cudnn.allow_tf32)
    return False


@contextlib.contextmanager
def rnn_fp32_precision(value: str):
    """Sets the flag nn.GRU's fp32 path follows on CUDA (and so gru_triton's) to "ieee" or
    "tf32" inside the block: ``torch.backends.cudnn.rnn.fp32_precision`` where this torch has
    it, the legacy ``torch.backends.cudnn.allow_tf32`` otherwise."""
    if value not in ("ieee", "tf32"):
        raise ValueError(f"precision must be 'ieee' or 'tf32', got {value!r}")
    cudnn = torch.backends.cudnn
    rnn = getattr(cudnn, "rnn", None)
    if rnn is not None and hasattr(rnn, "fp32_precision"):
        flag, name, new = rnn, "fp32_precision", value
    else:
        flag, name, new = cudnn, "allow_tf32", value == "tf32"
    saved = getattr(flag, name)
    setattr(flag, name, new)
    try:
        yield
    finally:
        setattr(flag, name, saved)


def fp32_dot_precision(device: torch.device) -> str:
    """``tl.dot`` input precision for fp32 weights: what cuDNN's GRU would use on ``device``."""
    if device.type == "cuda" and _tf32_enabled_for_rnn():
        return "tf32"
    return "ieee"


@contextlib.contextmanager
def gemm_precision(device: torch.device, dot_precision: str):
    """Run the fp32 input-projection and weight-gradient GEMMs at the recurrence's precision,
    so that the whole layer follows the cuDNN RNN flag like nn.GRU does."""
    matmul = torch.backends.cuda.matmul
    if device.type != "cuda" or not hasattr(matmul, "fp32_precision"):
        yield
        return
    saved = matmul.fp32_precision
    # "tf32x3" is the recurrence's way to IEEE accuracy; the GEMMs have IEEE itself.
    matmul.fp32_precision = "ieee" if dot_precision == "tf32x3" else dot_precision
    try:
        yield
    finally:
        matmul.fp32_precision = saved
