"""What a training step keeps for backward: the byte counts docs/performance.md and
gru_triton/functional.py state, counted on the tensors autograd really saves."""

import contextlib
import pathlib
import sys

import pytest
import torch

import gru_triton
from tests.helpers import DEVICE

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import memory_breakdown  # noqa: E402


def _saved_bytes(module, x):
    """Bytes of the distinct storages autograd saves for backward in one forward, leaving
    out the parameters and the input (they exist whether or not anything is saved), the
    output, and the saved storages' addresses."""
    skip = {p.untyped_storage().data_ptr() for p in module.parameters()}
    skip.add(x.untyped_storage().data_ptr())
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out, h_n = module(x)
    return sum(seen.values()), out, set(seen)


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
@pytest.mark.parametrize("dtype,per_thb", [(torch.float32, (12 + 4 + 4, 12 + 4)),
                                           (torch.bfloat16, (6 + 2 + 2, 6 + 2)),
                                           (torch.float16, (6 + 2 + 2, 6 + 2))],
                         ids=["fp32", "bf16", "fp16"])
def test_saved_for_backward_per_timestep(dtype, per_thb, reset_after, triton_backend):
    """Reset-after: r, z, n, W_hn h + b_hn and the states, all in the model's dtype (the
    output is a slice of those states, so it costs nothing more); reset-before saves no
    W_hn term."""
    T, B, I, H = 5, 3, 4, 19
    module = gru_triton.GRU(I, H, reset_after=reset_after).to(DEVICE, dtype)
    x = torch.randn(T, B, I, device=DEVICE, dtype=dtype, requires_grad=True)
    saved, out, storages = _saved_bytes(module, x)
    assert out.untyped_storage().data_ptr() in storages
    # Besides the T steps' states, two (B, H) more: the states' buffer has a row for h0 as
    # the forward's products read it, and backward keeps h0 itself (the module's zeros here).
    expected = per_thb[0 if reset_after else 1] * T * B * H + 2 * dtype.itemsize * B * H
    assert saved == expected
    out.float().sum().backward()  # and what was saved is enough
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_nothing_saved_without_grad(triton_backend):
    module = gru_triton.GRU(4, 19).to(DEVICE)
    x = torch.randn(5, 3, 4, device=DEVICE)
    with torch.no_grad():
        saved, _, _ = _saved_bytes(module, x)
    assert saved == 0


def _training_step_peak(module, x, grad, held=False) -> int:
    """Peak bytes allocated during one forward + backward, above what was allocated before:
    the caching allocator's count on a GPU, ``memory_breakdown.LiveBytes`` on the CPU (at
    T 256, B 1 and 16, it counted the code of 2026-11-25 to within 1-3 KiB of what the
    H200's allocator did: docs/performance.md, "Memory"). The gradients of the output and
    h_n come from a loss (autograd frees each once used), or, ``held``, from the caller,
    who keeps them (as the benchmark's ``peak_mem_bytes`` does: ``backward(grad)``)."""
    # The caller's gradient of h_n (num_layers, B, H), made before counting starts.
    h_n_grad = grad[-1:].clone()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    counting = (contextlib.nullcontext() if x.device.type == "cuda" else
                memory_breakdown.counting_live_bytes())
    with counting as tracker:
        out, h_n = module(x)
        if held:
            torch.autograd.backward([out, h_n], [grad, h_n_grad])
        else:
            ((out * grad).sum() + h_n.float().sum()).backward()
        del out, h_n
    if x.device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    return tracker.peak


@pytest.mark.parametrize("held,dtype,bound", [(False, torch.float32, 27),
                                              (False, torch.bfloat16, 13.75),
                                              (True, torch.float32, 23),
                                              (True, torch.bfloat16, 11.75)],
                         ids=["fp32", "bf16", "fp32-held", "bf16-held"])
def test_training_step_peak(held, dtype, bound, triton_backend):
    """The peak of one layer's training step, per (t, b, h) at T = 40 (256 on a GPU),
    B = 16, H = I = 32: the saved buffers (20 B fp32, 10 B bf16; the output is one of
    them), dL/d(states) (the output's gradient), the loss's own gradient and, at this small
    T·B, the weights' gradients; the gate gradients are written over the saved activations
    (dgx over r, z, n and dghn over W_hn h + b_hn), and dx (I = H here) over the spent
    dghn. Measured on the CPU: 26.1 and 13.3 B; 30.1 and 15.3 B while dx was a buffer of
    its own, 34.1 and 17.3 B while dghn was too. Before (34df5d7): 50.4 and 31.8 B while
    the states were kept in fp32, the output was a copy of them whose gradient went into an
    fp32 (T+1, B, H) buffer, and dgx was a buffer of its own.

    With the output's gradient held by the caller (the benchmark's measurement), the peak
    holds that gradient as the caller passed it: 22.1 and 11.3 B (26.1 and 13.3 with dx
    apart, 30.1 and 15.3 with dghn apart too). While the output was a slice of a (T+1)-row
    states buffer, autograd built a zero-filled (T+1, B, H) gradient beside it and copied
    into it: 34.1 and 17.3 B.

    On a GPU, T = 256: at T·B = 4096 rows a one-shot column sum of the gate gradients (the
    bias gradients) would stage 6 B per (t, b, h) inside CUDA's reduction kernel at this H
    (24 B at H 44 or 48: it depends on how the columns align), over every bound here. The
    interpreter keeps T = 40 (test_no_sum_stages_a_buffer counts that case at T 256)."""
    T, B, H = (256 if DEVICE.type == "cuda" else 40), 16, 32
    module = gru_triton.GRU(H, H).to(DEVICE, dtype)
    x = torch.randn(T, B, H, device=DEVICE, dtype=dtype, requires_grad=True)
    grad = torch.randn(T, B, H, device=DEVICE, dtype=dtype)
    module(x)[0].backward(grad)  # compile, and leave the parameters' .grad allocated
    x.grad = None
    peak = _training_step_peak(module, x, grad, held)
    assert peak <= bound * T * B * H, peak / (T * B * H)


@pytest.mark.parametrize("rows", [1, 7, 511, 512, 513, 1500, 4096, 262_145])
def test_sum_rows_is_the_column_sum(rows):
    """The bias gradients' column sum in chunks (functional._sum_rows) against the plain sum
    in fp64, from 16-bit and fp32 values: fp32 accumulation either way."""
    from gru_triton.functional import _SUM_ROWS_CHUNK, _sum_rows

    assert _SUM_ROWS_CHUNK == 512  # the rows above are picked around it
    torch.manual_seed(rows)
    for dtype, cols in ((torch.bfloat16, 3), (torch.float32, 5)):
        t = torch.randn(rows, cols, dtype=dtype)
        got = _sum_rows(t, torch.float32)
        assert got.dtype == torch.float32 and got.shape == (cols,)
        exact = t.double().sum(0)
        scale = t.double().abs().sum(0)
        assert ((got.double() - exact).abs() <= 1e-6 * scale).all(), (got, exact)


def test_the_staging_model_follows_atens_config():
    """cuda_sum_staging_bytes against ATen's formula worked by hand for a (T·B, 3H) column
    sum at T 256, B 16, H 64 on 132 SMs: outputs per thread 4, block 32 x 4 threads, 2
    blocks along the outputs, 1024 values per thread before splitting, so 64 blocks per
    column and 4 B x 192 x 64 x 32 x 4 staged, plus 2 semaphores (512 B as allocated). At
    B 1 (256 rows: 64 values per thread) nothing is split; a 512-row chunk neither."""
    stage = memory_breakdown.cuda_sum_staging_bytes
    assert stage(torch.empty(4096, 192), [0], 4) == 4 * 192 * 64 * 32 * 4 + 512
    assert stage(torch.empty(256, 192), [0], 4) == 0
    assert stage(torch.empty(8, 512, 192), [1], 4) == 0
    assert stage(torch.empty(4096, 192), [1], 4) == 0  # innermost: not a column sum
    # A (T, B, 3H) buffer summed over T and B is the same column sum.
    assert stage(torch.empty(256, 16, 192), [0, 1], 4) == stage(torch.empty(4096, 192), [0], 4)


def test_no_sum_stages_a_buffer(triton_backend):
    """At T 256, B 16, H 48 a one-shot column sum of the gate gradients would stage a buffer
    24 B per (t, b, h) on a GPU; the training step's bias gradients take their sums in
    chunks, so no sum in it does (counted on the CPU, ``LiveBytes.staging_peak``)."""
    if DEVICE.type == "cuda":
        pytest.skip("counted on the CPU; on a GPU test_training_step_peak measures at T 256")
    T, B, H = 256, 16, 48
    assert memory_breakdown.cuda_sum_staging_bytes(
        torch.empty(T * B, 3 * H), [0], 4) >= 24 * T * B * H
    module = gru_triton.GRU(H, H).to(DEVICE, torch.bfloat16)
    x = torch.randn(T, B, H, device=DEVICE, dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(T, B, H, device=DEVICE, dtype=torch.bfloat16)
    with memory_breakdown.counting_live_bytes() as tracker:
        module(x)[0].backward(grad)
    assert module.bias_ih_l0.grad is not None
    assert tracker.staging_peak == 0
