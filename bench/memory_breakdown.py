"""What a training step holds at its peak on a GPU, allocation by allocation.

    python bench/memory_breakdown.py --dtypes bf16,tf32 --B 16 --H 256,1024 --T 256 --out m.json

For gru_triton (each path asked for) and nn.GRU (cuDNN) at each shape, runs the step the
benchmark times (forward, then backward of the output with a given gradient), with the CUDA
caching allocator recording every allocation and its Python stack, and reports the peak
above what was allocated before the step and the allocations live at that moment: bytes,
bytes per (t, b, h), and where in our code (or torch's) each was made. The benchmark's
``peak_mem_bytes`` is the same peak; this says what it is made of. With no GPU it says so
and exits 0.
"""

import argparse
import itertools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16,
          "fp16": torch.float16}
# Frames from these files say where an allocation comes from; the first one found, innermost
# first, names it.
_OURS = ("gru_triton/", "kernels/gru.py", "bench/")


def _where(frames: list) -> str:
    for frame in frames:
        name = frame.get("filename", "")
        if any(part in name for part in _OURS) or "torch/autograd" in name:
            return f"{os.path.basename(name)}:{frame.get('line')} {frame.get('name')}"
    return "(no Python frame: inside torch)" if not frames else (
        f"{os.path.basename(frames[0].get('filename', '?'))}:{frames[0].get('line')}")


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


def breakdown(impl: str, dtype_name: str, B: int, H: int, T: int) -> dict:
    import gru_triton
    from gru_triton import dispatch

    device = torch.device("cuda")
    dtype = DTYPES[dtype_name]
    precision = dispatch.rnn_fp32_precision("tf32" if dtype_name == "tf32" else "ieee")
    with precision:
        torch.manual_seed(0)
        ref = torch.nn.GRU(H, H).to(device, dtype)
        module = ref
        if impl != "cudnn":
            module = gru_triton.GRU(H, H).to(device, dtype)
            module.load_state_dict(ref.state_dict())
        x = torch.randn(T, B, H, device=device, dtype=dtype, requires_grad=True)
        grad_out = torch.randn(T, B, H, device=device, dtype=dtype)
        path = None if impl in ("cudnn", "gru_triton") else impl.split("/")[1]

        def step():
            with dispatch.force_path(path):
                module(x)[0].backward(grad_out)

        step()  # compile, and allocate the gradients as a timed run leaves them
        torch.cuda.synchronize()
        torch.cuda.memory._record_memory_history(max_entries=200000, stacks="python")
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
    return dict(impl=impl, dtype=dtype_name, B=B, H=H, T=T, allocator_peak_bytes=allocator_peak,
                traced_peak_bytes=peak, per_tbh=round(peak / per, 2),
                live_at_peak=[dict(bytes=size, per_tbh=round(size / per, 3), where=where)
                              for size, where in live])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtypes", default="bf16", help=f"comma-separated, of {sorted(DTYPES)}")
    parser.add_argument("--B", type=int, default=16)
    parser.add_argument("--H", default="256", help="comma-separated hidden sizes (I = H)")
    parser.add_argument("--T", type=int, default=256)
    parser.add_argument("--impls", default="cudnn,gru_triton,gru_triton/grid_sync")
    parser.add_argument("--out", default=None, help="write the breakdowns here as JSON")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA GPU here: nothing measured (the breakdown needs the CUDA caching "
              "allocator's trace).")
        return 0
    results = []
    for dtype, H, impl in itertools.product(args.dtypes.split(","),
                                            [int(h) for h in args.H.split(",")],
                                            args.impls.split(",")):
        result = breakdown(impl, dtype, args.B, H, args.T)
        results.append(result)
        print(f"\n{impl} {dtype} B={args.B} H={H} T={args.T}: peak "
              f"{result['traced_peak_bytes'] / 2**20:.1f} MiB = {result['per_tbh']} B per "
              f"(t, b, h) (allocator: {result['allocator_peak_bytes'] / 2**20:.1f} MiB)")
        for entry in result["live_at_peak"][:12]:
            print(f"  {entry['bytes'] / 2**20:8.2f} MiB {entry['per_tbh']:7.2f}  {entry['where']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
