"""What a training step keeps for backward: the byte counts docs/performance.md and
gru_triton/functional.py state, counted on the tensors autograd really saves."""

import pytest
import torch

import gru_triton
from tests.helpers import DEVICE


def _saved_bytes(module, x):
    """Bytes of the distinct storages autograd saves for backward in one forward, leaving
    out the parameters and the input (they exist whether or not anything is saved)."""
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
    return sum(seen.values()), out


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
@pytest.mark.parametrize("dtype,per_thb", [(torch.float32, (12 + 4 + 4, 12 + 4)),
                                           (torch.bfloat16, (6 + 2 + 4, 6 + 4)),
                                           (torch.float16, (6 + 2 + 4, 6 + 4))],
                         ids=["fp32", "bf16", "fp16"])
def test_saved_for_backward_per_timestep(dtype, per_thb, reset_after, triton_backend):
    """Reset-after: r, z, n and W_hn h + b_hn in the storage dtype, plus the fp32 states;
    reset-before saves no W_hn term."""
    T, B, I, H = 5, 3, 4, 19
    module = gru_triton.GRU(I, H, reset_after=reset_after).to(DEVICE, dtype)
    x = torch.randn(T, B, I, device=DEVICE, dtype=dtype, requires_grad=True)
    saved, out = _saved_bytes(module, x)
    # The states have one more slot than there are steps (h0).
    expected = per_thb[0 if reset_after else 1] * T * B * H + 4 * B * H
    assert saved == expected
    out.float().sum().backward()  # and what was saved is enough
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_nothing_saved_without_grad(triton_backend):
    module = gru_triton.GRU(4, 19).to(DEVICE)
    x = torch.randn(5, 3, 4, device=DEVICE)
    with torch.no_grad():
        saved, _ = _saved_bytes(module, x)
    assert saved == 0


class _LiveBytes(torch.utils._python_dispatch.TorchDispatchMode):
    """The peak of the bytes held by tensors that ops called inside the block return (each
    storage once, released when it is freed). What a custom op allocates and frees inside
    itself (the backward's gate gradients) is not seen: the mode is off while it runs."""

    def __init__(self):
        super().__init__()
        self.live, self.now, self.peak = {}, 0, 0

    def _free(self, key):
        self.now -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        import weakref

        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t._is_view():
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key not in self.live and storage.nbytes():
                    self.live[key] = storage.nbytes()
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(storage, self._free, key)
        return out


@pytest.mark.parametrize("dtype,bound", [(torch.float32, 35), (torch.bfloat16, 22)],
                         ids=["fp32", "bf16"])
def test_training_step_peak(dtype, bound, triton_backend):
    """The peak of what one layer's training step holds outside the kernels' custom ops,
    per (t, b, h) at T = 40: the saved buffers (20 B fp32, 12 B bf16), the output,
    dL/d(states) (4 B) and dx; measured 34.1 and 21.2 B. It was 45.6 and 28.9 B while
    backward received zero-filled gradients for the gate buffers and the states' gradient
    went through slicing (a full-size zero buffer each for output and h_n, an fp32 copy of a
    16-bit output's gradient)."""
    T, B, H = 40, 16, 32
    module = gru_triton.GRU(H, H).to(DEVICE, dtype)
    x = torch.randn(T, B, H, device=DEVICE, dtype=dtype, requires_grad=True)
    grad = torch.randn(T, B, H, device=DEVICE, dtype=dtype)
    module(x)[0].backward(grad)  # compile, and leave the parameters' .grad allocated
    x.grad = None
    with _LiveBytes() as tracker:
        out, h_n = module(x)
        ((out * grad).sum() + h_n.float().sum()).backward()
    assert tracker.peak <= bound * T * B * H, tracker.peak / (T * B * H)
