"""What a training step holds at its peak on a GPU, allocation by allocation.

    python bench/memory_breakdown.py --dtypes bf16,tf32 --B 16 --H 256,1024 --T 256 --out m.json
    python bench/memory_breakdown.py --cpu --dtypes bf16 --B 1,16 --H 64 --T 256
    python bench/memory_breakdown.py --cpu --layers 2 --bidirectional --B 32 --H 64 --impls gru_triton

For gru_triton (each path asked for) and nn.GRU (cuDNN) at each shape, runs the step the
benchmark times (forward, then backward of the output with a given gradient), with the CUDA
caching allocator recording every allocation and its Python stack, and reports the peak
above what was allocated before the step and the allocations live at that moment: bytes,
bytes per (t, b, h), and where in our code (or torch's) each was made. The benchmark's
``peak_mem_bytes`` is the same peak; this says what it is made of. With no GPU it says so
and exits 0.

``--cpu`` counts the same step on the CPU instead, gru_triton only, its kernels in the
Triton interpreter: every tensor the ops return, the custom ops' insides included
(``LiveBytes``), named by the op that made it, and the staging buffers CUDA's column sums
would allocate inside (``cuda_sum_staging_bytes``). For the code of 2026-11-25 at T 256,
H 64, B 1 and 16, that count equals the H200's allocator's to 1 KiB (docs/performance.md,
"Memory"). It takes minutes at H 256.
"""

import argparse
import contextlib
import functools
import gc
import itertools
import json
import os
import sys
import weakref

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16,
          "fp16": torch.float16}
# Frames from these files say where an allocation comes from; the first one found, innermost
# first, names it.
_OURS = ("gru_triton/", "kernels/gru.py", "bench/")


# C++ frames (recorded with stacks="all") that name what allocated: the innermost one of
# these, past the allocator's own.
_NATIVE = ("at::native::", "at::cuda::", "torch::autograd::")


def _where(frames: list) -> str:
    """Our innermost frame (or autograd's), as "file:line function", and with C++ frames the
    innermost ATen or autograd function under it, in brackets."""
    ours = None
    for frame in frames:
        name = frame.get("filename", "")
        if any(part in name for part in _OURS) or "torch/autograd" in name:
            ours = f"{os.path.basename(name)}:{frame.get('line')} {frame.get('name')}"
            break
    native = next((frame["name"] for frame in frames
                   if any(part in frame.get("name", "") for part in _NATIVE)), None)
    if ours is None:
        python = [f for f in frames if f.get("filename", "").endswith(".py")]
        ours = ("(no Python frame: inside torch)" if not python else
                f"{os.path.basename(python[0]['filename'])}:{python[0].get('line')}")
    return ours if native is None else f"{ours} [{native.split('(')[0]}]"


def peak_composition(events: list) -> tuple[int, list]:
    """From an allocator trace (``torch.cuda.memory._snapshot()["device_traces"][i]``: dicts
    with action "alloc" / "free_completed", addr, size, frames), the peak of the bytes
    allocated during the trace and still live, and the allocations live at that peak, as
    (size, where) pairs, largest first. Blocks allocated before the trace began are not
    counted (their frees are ignored)."""
    live, now, peak, at_peak = {}, 0, 0, []
    for event in events:
        action, addr = event.get("action"), event.get("addr")
        if action == "alloc":
            live[addr] = (event["size"], _where(event.get("frames", [])))
            now += event["size"]
            if now > peak:
                peak, at_peak = now, list(live.values())
        elif action == "free_completed" and addr in live:
            now -= live.pop(addr)[0]
    return peak, sorted(at_peak, key=lambda item: -item[0])


# The GPU whose reduction kernel ``cuda_sum_staging_bytes`` stands in for by default: an H100's
# or H200's streaming multiprocessors and resident threads per multiprocessor.
GPU_SMS, GPU_THREADS_PER_SM = 132, 2048


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def cuda_sum_staging_bytes(t: torch.Tensor, dims, acc_size: int, *, sms: int = GPU_SMS,
                           threads_per_sm: int = GPU_THREADS_PER_SM) -> int:
    """The bytes CUDA's ``t.sum(dims)`` allocates inside the op and frees before returning:
    the staging buffer and semaphores of a reduction split across blocks, rounded as the
    caching allocator rounds them (512 B). Modelled on ATen's ``setReduceConfig`` and
    ``ReduceConfig.global_memory_size`` (aten/src/ATen/native/cuda/Reduce.cuh) for the case
    that allocates much, a column sum: the innermost dimension kept and contiguous, each
    thread of a block loading 4 (or 2, or 1) neighbouring outputs. A sum over the innermost
    dimension stages 4 B per output and block at most, and is counted as 0. ``acc_size``:
    the bytes of the accumulator (4 for 16- and 32-bit sums, 8 for fp64).

    The buffer is ``acc_size`` x outputs x blocks per output x block width x outputs per
    thread, 128 times what the kernel writes: a (T·B, 3H) column sum at T 256, B 16 takes
    24 B per (t, b, h) at H 64-1024. With it the CPU count of the benchmark's training step of 2026-11-25
    (code of f51d219, T 256, H 64) equals the H200's allocator's to 1 KiB at B 16 in bf16
    and fp32, where without it the count was 5.8-6.2 MB short (docs/performance.md,
    "Memory")."""
    dims = sorted({d % t.dim() for d in dims}) if t.dim() else []
    last = t.dim() - 1
    if not dims or last in dims or t.stride(last) != 1 or t.numel() == 0:
        return 0
    rows = 1
    for d in dims:
        rows *= t.shape[d]
    outputs = t.numel() // rows
    # The innermost run of kept dimensions that TensorIterator merges into one.
    inner, d = t.shape[last], last
    while d - 1 >= 0 and d - 1 not in dims and t.stride(d - 1) == t.shape[d] * t.stride(d):
        d -= 1
        inner *= t.shape[d]
    others = [t.stride(k) for k in range(d)]
    vec = 4
    while inner % vec or t.storage_offset() % vec or any(s % vec for s in others):
        vec //= 2
    max_threads = 512 // vec
    dim0, dim1 = outputs // vec, rows
    pow2 = lambda n: max_threads if n >= max_threads else 1 << (n.bit_length() - 1)
    width = min(pow2(dim0), 32)
    height = min(pow2(dim1), max_threads // width)
    width = min(pow2(dim0), max_threads // height)
    step_output, step_input = width, 1
    across_warps = rows >= min(height * 16, 256)
    if across_warps:
        step_input = height
    else:
        step_output *= height
    target_grid = sms * (threads_per_sm // (width * height))
    grid = _ceil_div(outputs // vec, step_output)
    per_thread = _ceil_div(rows, step_input)
    if not (across_warps and per_thread >= 256 and grid <= target_grid):
        return 0
    blocks = max(min(_ceil_div(target_grid, grid), _ceil_div(per_thread, 16)),
                 _ceil_div(per_thread, 256))
    if blocks <= 1:
        return 0
    rounded = lambda n: 512 * _ceil_div(n, 512)
    return rounded(acc_size * outputs * blocks * width * vec) + rounded(4 * grid)


def live_tensors() -> list:
    """Every tensor alive now: those Python holds, and their ``.grad`` (held by autograd,
    which gives it a Python object only when asked)."""
    # type(), not isinstance: the latter asks objects for __class__, which some of torch's
    # deprecated module-level objects answer with a warning.
    tensors = [obj for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor)]
    # Only a leaf has a .grad (asking a non-leaf warns).
    return tensors + [t.grad for t in tensors if t.is_leaf and t.grad is not None]


class LiveBytes(torch.utils._python_dispatch.TorchDispatchMode):
    """The peak of the bytes held by tensors that ops called inside the block return (each
    storage once, released when it is freed), as a GPU's caching allocator counts them, and
    what was live at that peak (``at_peak``: (bytes, which op made it) pairs). Use it
    through ``counting_live_bytes``.

    The kernels' custom ops run their Python bodies under the mode, so what they allocate
    inside (the backward's gate gradients) is counted; a kernel launch's insides are not
    (under the interpreter those are its own scratch). An op's own temporaries are not
    either (the CPU's sum(dtype=fp32) of a 16-bit tensor copies it first, CUDA's does not).
    Storages that exist when counting begins are not counted, as the allocator's count
    starts above them: a custom op's body runs below autograd, where a view (the input's
    ``reshape``, a slice of a weight) is not marked as one, and its storage would otherwise
    be counted as new.

    One kind of temporary is counted, as a GPU would allocate it: a sum's staging buffer
    (``cuda_sum_staging_bytes``), live while the sum runs, on top of what is live then.
    ``staging_peak`` is the largest one seen (0: no sum in the block allocates one)."""

    def __init__(self):
        from torch._library.custom_ops import CustomOpDef

        from gru_triton import functional

        super().__init__()
        self.live, self.now, self.peak, self.at_peak = {}, 0, 0, []
        self.staging_peak = 0
        self.before = set()
        for t in live_tensors():
            try:
                storage = t.untyped_storage()
                key = storage.data_ptr()
            except (RuntimeError, NotImplementedError):
                # No storage (sparse), or no memory behind it (a FakeTensor that
                # torch.compile left behind): nothing an op could return a view of.
                continue
            if storage.nbytes():
                self.before.add(key)
                weakref.finalize(storage, self.before.discard, key)
        # Every custom op of ours, found rather than listed: one left out (as the consuming
        # backward once was) runs as a black box whose temporaries go uncounted.
        ops = [op for op in vars(functional).values() if isinstance(op, CustomOpDef)]
        registered = {name for name in torch._C._dispatch_get_all_op_names()
                      if name.startswith("gru_triton::")}
        assert {f"gru_triton::{op._name}" for op in ops} == registered, registered
        self.bodies = {getattr(torch.ops.gru_triton, op._name).default: op._init_fn
                       for op in ops}

    def _free(self, key):
        self.now -= self.live.pop(key, (0, None))[0]

    def _staging(self, func, args, kwargs):
        if func is not torch.ops.aten.sum.dim_IntList:
            return
        t, dims = args[0], args[1]
        dtype = (kwargs or {}).get("dtype") or t.dtype
        staging = cuda_sum_staging_bytes(t, dims or range(t.dim()),
                                         8 if dtype == torch.float64 else 4)
        self.staging_peak = max(self.staging_peak, staging)
        if staging and self.now + staging > self.peak:
            self.peak = self.now + staging
            self.at_peak = [*self.live.values(),
                            (staging, f"{func} staging of {tuple(t.shape)} over {list(dims)}")]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self._staging(func, args, kwargs)
        body = self.bodies.get(func)
        if body is None:
            out = func(*args, **(kwargs or {}))
        else:
            with self:
                out = body(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t._is_view():
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key in self.live or key in self.before or not storage.nbytes():
                    continue
                what = f"{func} {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"
                self.live[key] = (storage.nbytes(), what)
                self.now += storage.nbytes()
                if self.now > self.peak:
                    self.peak, self.at_peak = self.now, list(self.live.values())
                weakref.finalize(storage, self._free, key)
        return out


@contextlib.contextmanager
def counting_live_bytes():
    """A ``LiveBytes`` counting inside the block (CPU tensors; the kernels in the Triton
    interpreter, whose launches run uncounted)."""
    from gru_triton.kernels import gru as gru_kernels

    real = gru_kernels._launch

    def launch(*args, **kwargs):
        with torch._C._DisableTorchDispatch():
            return real(*args, **kwargs)

    gru_kernels._launch = launch
    try:
        with LiveBytes() as mode:
            yield mode
    finally:
        gru_kernels._launch = real


def _module_and_step(impl: str, dtype, B: int, H: int, T: int, device, layers=1,
                     bidirectional=False):
    """The benchmark's training step (forward, backward of the output with a gradient the
    caller keeps), run once so that the gradients are allocated as a timed run leaves them."""
    import gru_triton
    from gru_triton import dispatch

    torch.manual_seed(0)
    ref = torch.nn.GRU(H, H, layers, bidirectional=bidirectional).to(device, dtype)
    module = ref
    if impl != "cudnn":
        module = gru_triton.GRU(H, H, layers, bidirectional=bidirectional).to(device, dtype)
        module.load_state_dict(ref.state_dict())
    x = torch.randn(T, B, H, device=device, dtype=dtype, requires_grad=True)
    grad_out = torch.randn(T, B, (2 if bidirectional else 1) * H, device=device, dtype=dtype)
    path = None if impl in ("cudnn", "gru_triton") else impl.split("/")[1]

    def step():
        with dispatch.force_path(path):
            module(x)[0].backward(grad_out)

    step()
    return step


def cpu_breakdown(impl: str, dtype_name: str, B: int, H: int, T: int, layers=1,
                  bidirectional=False) -> dict:
    """``breakdown``'s record, counted on the CPU by ``LiveBytes`` (gru_triton only)."""
    import gru_triton

    gru_triton.set_backend("triton")
    step = _module_and_step(impl, DTYPES[dtype_name], B, H, T, torch.device("cpu"), layers,
                            bidirectional)
    with counting_live_bytes() as counter:
        step()
    per = T * B * H
    return dict(impl=impl, dtype=dtype_name, B=B, H=H, T=T, layers=layers,
                bidirectional=bidirectional, device="cpu (Triton interpreter)",
                allocator_peak_bytes=None, traced_peak_bytes=counter.peak,
                per_tbh=round(counter.peak / per, 3),
                live_at_peak=[dict(bytes=size, per_tbh=round(size / per, 3), where=where)
                              for size, where in sorted(counter.at_peak, key=lambda e: -e[0])])


def breakdown(impl: str, dtype_name: str, B: int, H: int, T: int, layers=1,
              bidirectional=False, stacks="python") -> dict:
    """The allocator's peak of the benchmark's training step, and what is live at it.
    stacks: "python", or "all" to record C++ frames too (the ATen function that made each
    block; symbolising them takes longer)."""
    from gru_triton import dispatch

    precision = dispatch.rnn_fp32_precision("tf32" if dtype_name == "tf32" else "ieee")
    with precision:
        step = _module_and_step(impl, DTYPES[dtype_name], B, H, T, torch.device("cuda"),
                                layers, bidirectional)
        torch.cuda.synchronize()
        torch.cuda.memory._record_memory_history(max_entries=200000, stacks=stacks)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        allocator_peak = torch.cuda.max_memory_allocated() - base
        snapshot = torch.cuda.memory._snapshot()
        torch.cuda.memory._record_memory_history(enabled=None)
    events = snapshot["device_traces"][torch.cuda.current_device()]
    peak, live = peak_composition(events)
    per = T * B * H
    return dict(impl=impl, dtype=dtype_name, B=B, H=H, T=T, layers=layers,
                bidirectional=bidirectional, allocator_peak_bytes=allocator_peak,
                traced_peak_bytes=peak, per_tbh=round(peak / per, 3),
                live_at_peak=[dict(bytes=size, per_tbh=round(size / per, 3), where=where)
                              for size, where in live])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtypes", default="bf16", help=f"comma-separated, of {sorted(DTYPES)}")
    parser.add_argument("--B", default="16", help="comma-separated batch sizes")
    parser.add_argument("--H", default="256", help="comma-separated hidden sizes (I = H)")
    parser.add_argument("--T", type=int, default=256)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument("--impls", default="cudnn,gru_triton,gru_triton/grid_sync")
    parser.add_argument("--cpu", action="store_true",
                        help="count on the CPU (gru_triton's impls only, in the interpreter)")
    parser.add_argument("--stacks", choices=("python", "all"), default="python",
                        help="on a GPU, all: record C++ frames too, naming the ATen "
                             "function behind each block (slower)")
    parser.add_argument("--out", default=None,
                        help="write the breakdowns here as JSON (after each one)")
    args = parser.parse_args(argv)
    impls = args.impls.split(",")
    if args.cpu:
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
            parser.error("--cpu needs TRITON_INTERPRET=1 before triton is imported")
        os.environ["TRITON_INTERPRET"] = "1"
        impls = [impl for impl in impls if impl != "cudnn"]  # nn.GRU's CPU op is not cuDNN
        measure = cpu_breakdown
    elif not torch.cuda.is_available():
        print("No CUDA GPU here: nothing measured (the breakdown needs the CUDA caching "
              "allocator's trace; --cpu counts on the CPU instead).")
        return 0
    else:
        measure = functools.partial(breakdown, stacks=args.stacks)
    results = []
    for dtype, B, H, impl in itertools.product(args.dtypes.split(","),
                                               [int(b) for b in args.B.split(",")],
                                               [int(h) for h in args.H.split(",")], impls):
        result = measure(impl, dtype, B, H, args.T, args.layers, args.bidirectional)
        results.append(result)
        if args.out:  # so that a run cut off by its time box keeps what it measured
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
        allocator = ("" if result["allocator_peak_bytes"] is None else
                     f" (allocator: {result['allocator_peak_bytes'] / 2**20:.1f} MiB)")
        stack = ("" if args.layers == 1 else f" layers={args.layers}") + (
            " bidirectional" if args.bidirectional else "")
        print(f"\n{impl} {dtype} B={B} H={H} T={args.T}{stack}: peak "
              f"{result['traced_peak_bytes']} B "
              f"= {result['traced_peak_bytes'] / 2**20:.1f} MiB = {result['per_tbh']} B per "
              f"(t, b, h){allocator}")
        for entry in result["live_at_peak"][:12]:
            print(f"  {entry['bytes'] / 2**20:8.2f} MiB {entry['per_tbh']:7.2f}  {entry['where']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
