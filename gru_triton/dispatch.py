"""Which implementation runs a GRU, and how the kernels are driven.

Backends: "auto" (on CUDA tensors the kernels, or PyTorch's own RNN op where
``recurrence_path`` expects no kernel path to beat it; the reference on CPU ones), "triton"
(always the kernels; on CPU tensors this needs ``TRITON_INTERPRET=1`` set before triton is
imported, which is how the tests run them) and "reference". ``set_backend`` wins over the
``GRU_TRITON_BACKEND`` environment variable, which wins over "auto".
"""

import contextlib
import os

import torch

from .kernels import PATHS, recurrence_config

# The kernels' recurrence paths, plus "cudnn": PyTorch's own RNN op, the one nn.GRU calls
# (cuDNN on CUDA), for the shapes where no kernel path is expected to beat it.
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


def recurrence_path(hidden_size: int, batch: int, device: torch.device, *,
                    reset_after: bool = True, lengths: bool = False,
                    fp32_ieee: bool = False) -> str:
    """The way to run the recurrence for this shape: the one table of choices.

    ``lengths``: per-row lengths are given; ``fp32_ieee``: fp32 weights with IEEE dots (the
    cuDNN RNN flag says "ieee"), which run on CUDA cores, not tensor cores.

    | where                           | path       | why                                    |
    |---------------------------------|------------|----------------------------------------|
    | reset_after=False               | persistent | the candidate needs all of r ⊙ h_{t-1} |
    |                                 |            | first; only a program owning every     |
    |                                 |            | hidden unit of its rows has it         |
    | CPU (interpreter)               | persistent | one launch instead of T; the           |
    |                                 |            | interpreter pays per launch            |
    | CUDA, H <= 256, tensor cores    | persistent | one program per 16-row batch tile      |
    |                                 |            | streams all of W_hh (<= 768 KiB) from  |
    |                                 |            | L2 each step, one launch for all T:    |
    |                                 |            | model 4-7 µs/step, cuDNN 12            |
    | CUDA, IEEE fp32, H·H·rows       | persistent | the same, while one program's FMAs on  |
    | <= 128·128·8 (rows: min(B, 16)) |            | CUDA cores stay under cuDNN's step     |
    | CUDA, otherwise                 | cudnn      | nn.GRU's own op: the model puts        |
    |                                 |            | per_step (a ~12 µs Triton launch per   |
    |                                 |            | step) level with or behind cuDNN. The  |
    |                                 |            | modules pass PackedSequence and        |
    |                                 |            | lengths= to it packed (host lengths)   |
    | ... but lengths only on the     | per_step   | hidden units split across programs, T  |
    | device (``lengths=True``: a     |            | launches: packing would read them back |
    | layer called directly)          |            | (a sync)                               |
    | ... but backend "triton" chosen | per_step   | that backend promises the kernels      |

    "model": ``bench/cost_model.py``, tabulated in docs/performance.md with what this table
    picks. No threshold is measured yet: no GPU has been lent to this project. "grid_sync"
    (hidden units split across co-resident programs, one launch, a grid barrier per step),
    which the model puts 1.1-7x under cuDNN at every shape it tabulates (H 256-2048), is not
    chosen until a GPU run has checked its barrier (tests/test_cuda.py) and timed it
    (bench/); it replaces the cudnn and per_step rows then, where the measurements agree
    (``bench/targets.py`` names the fastest measured path per shape). ``force_path``
    overrides the table, except that the reset-before form is always persistent and "cudnn"
    with lengths runs per_step.
    """
    if not reset_after:
        return "persistent"
    if _forced_path is not None:
        return "per_step" if _forced_path == "cudnn" and lengths else _forced_path
    if device.type != "cuda":
        return "persistent"
    rows = min(batch, recurrence_config(hidden_size)["BLOCK_B"])
    if hidden_size <= 256 and (not fp32_ieee or hidden_size * hidden_size * rows <= 128 * 128 * 8):
        return "persistent"
    return "per_step" if lengths or get_backend() != "auto" else "cudnn"


def dot_precision(dtype: torch.dtype, device: torch.device) -> str:
    """``tl.dot`` input precision for weights of ``dtype``: fp32 follows cuDNN's RNN flag
    (``fp32_dot_precision``); other dtypes have one precision ("ieee" names it)."""
    return fp32_dot_precision(device) if dtype == torch.float32 else "ieee"


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
    matmul.fp32_precision = dot_precision
    try:
        yield
    finally:
        matmul.fp32_precision = saved
