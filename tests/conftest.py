"""Test set-up: the real kernels run under the Triton interpreter on CPU tensors unless a GPU
is present, in which case they run natively on it.

TRITON_INTERPRET must be set before triton is imported (it decides what @triton.jit builds),
so this happens at the top of the conftest, before any test imports gru_triton.
"""

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Keras reads its backend once, at import: the interop tests run real Keras 3 on PyTorch.
os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest  # noqa: E402

import gru_triton  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_reset():
    torch.manual_seed(1234)
    gru_triton.set_backend(None)
    yield
    gru_triton.set_backend(None)


@pytest.fixture(autouse=True)
def _nan_poisoned_empty(monkeypatch):
    """Fresh torch.empty buffers are filled with NaN, so a kernel that forgets to write an
    element fails loudly instead of passing on leftover memory."""
    real_empty = torch.empty

    def poisoned(*args, **kwargs):
        out = real_empty(*args, **kwargs)
        if out.is_floating_point():
            out.fill_(float("nan"))
        return out

    monkeypatch.setattr(torch, "empty", poisoned)


@pytest.fixture
def triton_backend():
    gru_triton.set_backend("triton")
    # On a GPU compare against cuDNN in IEEE fp32, so the fp32 tolerance applies.
    with gru_triton.dispatch.rnn_fp32_precision("ieee"):
        yield


@pytest.fixture
def launch_counter(monkeypatch):
    """Counts launches of each recurrence kernel (proof that the kernels, not a fallback, ran)."""
    from gru_triton.kernels import gru as gru_kernels

    counts = {"fwd": 0, "bwd": 0}
    for key, kernel in (("fwd", gru_kernels.gru_fwd_kernel), ("bwd", gru_kernels.gru_bwd_kernel)):
        real_run = kernel.run

        def counting_run(*args, _real=real_run, _key=key, **kwargs):
            counts[_key] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(kernel, "run", counting_run)
    return counts

