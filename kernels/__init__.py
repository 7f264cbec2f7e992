"""Triton kernels of gru-triton, installed as ``gru_triton.kernels``.

Only ``@triton.jit`` kernels and the thin launchers that check shapes, allocate outputs and
pick the grid live here; autograd, modules and dispatch are in ``gru_triton``.
"""

from .gru import (
    PATHS,
    acc_dtype_for,
    grid_sync_programs,
    gru_backward,
    gru_bwd_kernel,
    gru_forward,
    gru_fwd_kernel,
    recurrence_config,
    resident_config,
    storage_dtype_for,
)

__all__ = [
    "PATHS",
    "acc_dtype_for",
    "grid_sync_programs",
    "gru_backward",
    "gru_bwd_kernel",
    "gru_forward",
    "gru_fwd_kernel",
    "recurrence_config",
    "resident_config",
    "storage_dtype_for",
]
