"""Which implementation runs a GRU, and how the kernels are driven.

Backends: "auto" (the kernels on CUDA tensors, the reference on CPU ones), "triton" (always
the kernels; on CPU tensors this needs ``TRITON_INTERPRET=1`` set before triton is imported,
which is how the tests run them) and "reference". ``set_backend`` wins over the
``GRU_TRITON_BACKEND`` environment variable, which wins over "auto".
"""

import contextlib
import os

import torch

from .kernels import PATHS

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
    """Run the kernels through one recurrence path (tests, benchmarks); None lets
    ``recurrence_path`` choose."""
    global _forced_path
    if path is not None and path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    saved, _forced_path = _forced_path, path
    try:
        yield
    finally:
        _forced_path = saved


def recurrence_path(hidden_size: int, batch: int, device: torch.device, *,
                    reset_after: bool = True) -> str:
    """The way to drive the recurrence kernels for this shape: the one table of choices.

    | where                 | path        | why                                                   |
    |-----------------------|-------------|-------------------------------------------------------|
    | reset_after=False     | persistent  | the candidate needs all of r ⊙ h_{t-1} first; only a   |
    |                       |             | program owning every hidden unit of its rows has it    |
    | CPU (interpreter)     | persistent  | one launch instead of T; the interpreter pays per launch |
    | CUDA, H <= 256        | persistent  | W_hh (<= 768 KiB fp32) streams from L2 each step to one  |
    |                       |             | program per batch tile; saves T launch latencies       |
    | CUDA, H > 256         | per_step    | one program would read too much of W_hh per step; the  |
    |                       |             | hidden units are split across programs instead         |

    Measurements behind the thresholds: none yet. No GPU has been lent to this project, so the
    H = 256 threshold is the cost model's estimate (docs/performance.md), and "grid_sync"
    (hidden units split across co-resident programs, one launch, a grid barrier per step),
    which the model predicts fastest for H > 256 at B <= 64, is not chosen by "auto" until a
    GPU run has checked its barrier (tests/test_cuda.py) and timed it (bench/). It can be
    forced with ``force_path("grid_sync")``. ``force_path`` overrides the table, except that
    the reset-before form is always persistent.
    """
    if not reset_after:
        return "persistent"
    if _forced_path is not None:
        return _forced_path
    if device.type != "cuda":
        return "persistent"
    return "persistent" if hidden_size <= 256 else "per_step"


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
    matmul.fp32_precision = dot_precision
    try:
        yield
    finally:
        matmul.fp32_precision = saved
