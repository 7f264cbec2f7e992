"""Where a grid_sync step's time goes: the recurrence kernel alone, with and without its
W_hh product, per tile configuration. Needs a CUDA GPU to time anything.

    python bench/step_breakdown.py --out bench/results/step-breakdown.json
    python bench/step_breakdown.py --kernel bwd --variant launcher --variant "split K"

Why: bench/variants.py times whole forward (or forward + backward) calls, and
bench/barrier_bench.py and bench/exchange_bench.py time the step boundary with no work
around it. Neither says how much of a real step is its product: h_{t-1}'s read and the
dots (``docs/performance.md``'s cost model charges it the shared-memory reads of the dots),
against the rest: the barrier, the x-side gates, the gate math and the stores. Which of the
queued levers can reach 2 µs per step at H = 1024 turns on that share.

The kernel itself tells it apart, with inputs it already takes: a batch tile whose rows are
all past their lengths skips the W_hh products (``tile_active`` in both kernels) and does
everything else (the gate math, the stores, the barrier). So for each shape and variant
(``variants.VARIANTS``, the same overrides of the launchers' grid_sync config) this times
one launcher call (``gru_forward``, or ``gru_backward`` with ``--kernel bwd``; no x-side
GEMM, no autograd) three ways:

- "full": no lengths, the kernel the dispatcher runs;
- "lengths": every length T, the same kernel built with lengths (the same work);
- "idle": every length 0: every step without its product.

``product_us`` = lengths - idle.

Each record is checked before it is timed, and not timed if a check fails (``error``):
"full" against ``gru_triton.reference`` in fp32 (through an identity W_ih, so the reference
takes the same gate pre-activations; the backward's gate gradients by autograd through it),
within bench/variants.py's tolerance; "lengths" bit for bit equal to "full"; "idle" leaving
every state at h0 (forward) or every gate gradient at 0 (backward).

Without a GPU nothing is timed: it says so and exits 0.
"""

import argparse
import datetime
import functools
import json
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import variants  # noqa: E402

MODES = ("full", "lengths", "idle")
# (B, H), I = H: the headline shape first, then the smaller grids the launcher keeps resident.
SHAPES = ((16, 1024), (64, 512), (16, 512), (64, 256))
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32,
          "fp32": torch.float32}
T = 256


def operands(T: int, B: int, H: int, dtype: torch.dtype, device, seed: int = 0) -> dict:
    """A layer's recurrence inputs, nn.GRU-like in scale: gates (T, B, 3H) in the storage
    dtype (x W_ihᵀ + b_ih), w_hh (3H, H) and b_hh (3H,) uniform in ±1/sqrt(H), h0 (B, H) in
    the acc dtype, and dhs (T, B, H), the output's gradient, in the storage dtype."""
    from gru_triton.kernels.gru import acc_dtype_for, storage_dtype_for

    gen = torch.Generator().manual_seed(seed)
    bound = H ** -0.5

    def uniform(*shape):
        return (torch.rand(*shape, generator=gen) * 2 - 1) * bound

    storage, acc = storage_dtype_for(dtype), acc_dtype_for(dtype)
    return dict(gates=torch.randn(T, B, 3 * H, generator=gen).to(device, storage),
                w_hh=uniform(3 * H, H).to(device, dtype), b_hh=uniform(3 * H).to(device, dtype),
                h0=(0.5 * torch.randn(B, H, generator=gen)).to(device, acc),
                dhs=torch.randn(T, B, H, generator=gen).to(device, storage))


def _reference(ops: dict, backward: bool) -> torch.Tensor:
    """The states (T, B, H), or with ``backward`` the gate gradients dL/d(gates) (T, B, 3H)
    for L = sum(states * dhs), by gru_triton.reference in IEEE fp32: the gates enter as x
    with an identity W_ih, so x W_ihᵀ is exactly the gates."""
    from gru_triton import dispatch
    from gru_triton.reference import gru_layer_reference

    gates = ops["gates"].to(torch.float32, copy=True).requires_grad_(backward)
    eye = torch.eye(gates.shape[-1], dtype=torch.float32, device=gates.device)
    with dispatch.gemm_precision(gates.device, "ieee"):
        states, _ = gru_layer_reference(gates, ops["h0"].float(), eye, ops["w_hh"].float(),
                                        None, ops["b_hh"].float())
        if not backward:
            return states.detach()
        (states * ops["dhs"].float()).sum().backward()
    return gates.grad


def launcher_calls(ops: dict, kernel: str, path: str, dot_precision: str) -> dict:
    """Per mode, a function that runs one launcher call and returns what it computed: the
    states (forward), or the gate gradients (T, B, 3H) and dL/d(W_hn h + b_hn) (T, B, H)
    (backward). The backward reads the activations of a forward with save=True run here
    with the same lengths (where a row is past its length the forward saves r = 0, z = 1,
    n = 0, which is what gives it zero gate gradients). Neither launcher writes what the
    next call reads (the forward's gates, without save, are only read; the backward writes
    its gradients to buffers of its own), so a call may be repeated."""
    from gru_triton.kernels.gru import gru_backward, gru_forward

    T, B, _ = ops["gates"].shape
    device = ops["gates"].device
    lengths = {"full": None,
               "lengths": torch.full((B,), T, dtype=torch.int32, device=device),
               "idle": torch.zeros(B, dtype=torch.int32, device=device)}

    def forward(lens, gates=ops["gates"], save=False):
        return gru_forward(gates, ops["w_hh"], ops["b_hh"], ops["h0"], lens, reverse=False,
                           save=save, path=path, dot_precision=dot_precision)

    if kernel == "fwd":
        def states(lens):
            return forward(lens)[0]
        return {mode: functools.partial(states, lens) for mode, lens in lengths.items()}

    h0 = ops["h0"].to(ops["gates"].dtype)  # as the forward rounds it (storage dtype)

    def backward(lens, saved, ghn, hs):
        dgx, dghn, _ = gru_backward(ops["dhs"], None, saved, ghn, hs, h0, ops["w_hh"], lens,
                                    reverse=False, path=path, dot_precision=dot_precision)
        return dgx, dghn

    calls = {}
    for mode, lens in lengths.items():
        saved = ops["gates"].clone()
        hs, ghn = forward(lens, saved, save=True)
        calls[mode] = functools.partial(backward, lens, saved, ghn, hs)
    return calls


def check(ops: dict, kernel: str, got: dict, tolerance: float) -> str | None:
    """What is wrong with one variant's results, ``got[mode]`` for each of MODES, or None."""
    full, lengths, idle = (got[mode] for mode in MODES)
    if kernel == "fwd":
        # Every step keeps h0, as the kernel's store rounds it (the interpreter truncates
        # bf16, a GPU rounds to nearest): equal at every step, h0 to within that rounding.
        h0 = ops["h0"].to(idle.dtype).float()
        idle_ok = (torch.equal(idle, idle[:1].expand_as(idle))
                   and ((idle[0].float() - h0).abs() <= 2 ** -7 * h0.abs()).all())
        full, lengths = (full,), (lengths,)
    else:
        idle_ok = not any(grad.any() for grad in idle)
    expected = _reference(ops, backward=kernel == "bwd")
    err = ((full[0].double() - expected.double()).abs().max() / expected.abs().max()).item()
    if not err <= tolerance:
        return f"differs from the fp32 reference: max rel err {err:.3g} > {tolerance}"
    if not all(torch.equal(a, b) for a, b in zip(full, lengths, strict=True)):
        return "lengths of T did not give the full run's numbers bit for bit"
    if not idle_ok:
        return ("lengths of 0 changed a state" if kernel == "fwd" else
                "lengths of 0 left a gate gradient nonzero")
    return None


def measure(B: int, H: int, T: int, dtype_name: str, kernel: str, variant: str, device,
            timer=None, path: str = "grid_sync") -> dict:
    """One record: the checks, then, given ``timer`` (a function's ms per call), µs per step
    of each mode and ``product_us``. ``error`` says why nothing was timed."""
    from gru_triton import dispatch

    dtype = DTYPES[dtype_name]
    overrides = dict(dict(variants.VARIANTS)[variant])
    dots = overrides.pop("dots", None)
    record = dict(B=B, H=H, T=T, dtype=dtype_name, kernel=kernel, variant=variant, error=None)
    ops = operands(T, B, H, dtype, device)
    with (dispatch.rnn_fp32_precision("tf32" if dtype_name == "tf32" else "ieee"),
          variants.grid_sync_config(overrides, kernel), dispatch.force_ieee_dots(dots)):
        try:
            calls = launcher_calls(ops, kernel, path, dispatch.dot_precision(dtype, device, H, B))
            record["error"] = check(ops, kernel, {mode: call() for mode, call in calls.items()},
                                    variants.TOLERANCE.get(dtype_name, 5e-2))
        except Exception as exc:  # a variant that fails to compile or launch
            record["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        if record["error"] is not None or timer is None:
            return record
        for mode, call in calls.items():
            record[f"{mode}_us"] = 1e3 * timer(call) / T
    record["product_us"] = record["lengths_us"] - record["idle_us"]
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" /
                                             "step-breakdown.json"))
    parser.add_argument("--dtype", default="bf16", choices=tuple(DTYPES))
    parser.add_argument("--kernel", default="fwd", choices=("fwd", "bwd"))
    parser.add_argument("--shapes", default=None,
                        help="comma-separated B:H pairs (default: "
                             + ",".join(f"{b}:{h}" for b, h in SHAPES) + ")")
    parser.add_argument("--variant", action="append", default=None,
                        help="a bench/variants.py variant, repeatable (default: launcher, "
                             "split K)")
    args = parser.parse_args(argv)
    wanted = args.variant or ["launcher", "split K"]
    names = [name for name, _ in variants.VARIANTS]
    if set(wanted) - set(names):
        parser.error(f"unknown variants {sorted(set(wanted) - set(names))}; known: {names}")
    try:
        shapes = (SHAPES if args.shapes is None else
                  [tuple(int(n) for n in pair.split(":")) for pair in args.shapes.split(",")])
    except ValueError:
        shapes = [()]
    if any(len(shape) != 2 for shape in shapes):
        parser.error("--shapes takes comma-separated B:H pairs, e.g. 16:1024,64:512")
    if not torch.cuda.is_available():
        print("No CUDA GPU here: nothing was timed.")
        return 0
    import triton
    import triton.testing

    def timer(run):
        return triton.testing.do_bench(run, return_mode="median")

    records = []
    out = pathlib.Path(args.out)
    for B, H in shapes:
        for variant in wanted:
            if not variants.applies(dict(variants.VARIANTS)[variant], args.kernel, args.dtype):
                continue
            r = measure(B, H, T, args.dtype, args.kernel, variant, torch.device("cuda"), timer)
            records.append(r)
            cells = (f"error: {r['error']}" if r["error"] else
                     "  ".join(f"{m} {r[f'{m}_us']:6.2f}" for m in MODES)
                     + f"  product {r['product_us']:6.2f} us/step")
            print(f"{args.kernel} B={B} H={H} {variant:18s} {cells}", flush=True)
            # Rewritten after every record: a time-boxed run keeps what it measured.
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(dict(gpu=torch.cuda.get_device_name(),
                                           torch=torch.__version__, triton=triton.__version__,
                                           date=str(datetime.date.today()), records=records),
                                      indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
