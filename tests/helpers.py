"""Shared by the tests: the device the kernels run on and the tolerance table."""

import os

import torch

HAS_CUDA = torch.cuda.is_available()
# The device the kernel tests run on: natively on a GPU, else in the interpreter (conftest
# sets TRITON_INTERPRET=1 when there is no GPU).
DEVICE = torch.device("cuda" if HAS_CUDA and os.environ.get("TRITON_INTERPRET", "0") in ("", "0")
                      else "cpu")

# Maximum error relative to the largest magnitude of the expected tensor, per dtype, for
# fp32/fp64 comparisons against nn.GRU. Low precision is judged against PyTorch's own error
# instead (test_low_precision.py).
TOLERANCE = {torch.float32: 2e-5, torch.float64: 1e-11}


def max_rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.double(), expected.double()
    scale = expected.abs().max().clamp_min(1e-30)
    return ((actual - expected).abs().max() / scale).item()


def assert_close(actual, expected, dtype=torch.float32, what="", tol=None):
    """``tol``: a bound other than TOLERANCE[dtype], for the callers that say why."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    err = max_rel_err(actual, expected)
    tol = TOLERANCE[dtype] if tol is None else tol
    assert err <= tol, f"{what}: max relative error {err:.3e} > {tol:.0e}"


def force_resident_form(monkeypatch, kernel: str = "fwd", **form) -> list:
    """Makes every resident plan of one kernel ("fwd": gru_fwd_kernel, "bwd": gru_bwd_kernel)
    ask for ``form`` (STACKED_GATES=True, forward only, or SPLIT_K=n, with K_PIECES=2 or
    not, which the launchers do not pick yet) and records, per launch of that kernel,
    (W_RESIDENT, STACKED_GATES, SPLIT_K, K_PIECES) as launched: the list returned, filled as
    the kernel runs."""
    from gru_triton.kernels import gru as gru_kernels

    launched = gru_kernels.gru_fwd_kernel if kernel == "fwd" else gru_kernels.gru_bwd_kernel
    real_resident, real_run = gru_kernels.resident_config, launched.run
    runs = []

    def asking(cfg, hidden_size, itemsize, smem_limit, row_operands=1, **kwargs):
        if (row_operands == 1) == (kernel == "fwd"):
            if "SPLIT_K" in form:
                # The 16-bit launch's stacked product would take precedence over the split.
                cfg = {k: v for k, v in cfg.items() if k != "STACKED_GATES"}
            cfg = dict(cfg, **form)
        return real_resident(cfg, hidden_size, itemsize, smem_limit, row_operands, **kwargs)

    def recording_run(*args, **kwargs):
        runs.append((kwargs["W_RESIDENT"], kwargs.get("STACKED_GATES", False),
                     kwargs.get("SPLIT_K", 1), kwargs.get("K_PIECES", 1)))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(gru_kernels, "resident_config", asking)
    monkeypatch.setattr(launched, "run", recording_run)
    return runs
