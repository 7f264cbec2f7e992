"""gru_triton against torch.nn.GRU (cuDNN): the benchmark suite, one command.

    python bench/bench_gru.py --quick         # a 42-case subset (minutes)
    python bench/bench_gru.py                 # the full sweep + DeepBench GRU shapes (hours)
    python bench/bench_gru.py --quick --budget-s 300 --impls cudnn,gru_triton,gru_triton/per_step

On a CUDA GPU it sweeps the shapes of ``bench/harness.py`` (forward and forward+backward,
fp32 with IEEE and TF32 dots, bf16, fp16), checks each shape against nn.GRU first (a shape
that differs is reported as wrong and gets no speed-up), then times nn.GRU, gru_triton's
``auto`` choice, each of its recurrence paths and, at T = 64, ``torch.compile`` of the
reference GRU, with ``triton.testing.do_bench`` (median). It writes results.json,
results.md and speedup.png under ``bench/results/<gpu>-<date>/``, rewritten after every case,
so a run that is stopped (or hangs) keeps what it measured. ``--budget-s`` starts no case
after that many seconds; ``--impls`` times a subset of the implementations.

Without a GPU nothing can be timed, and it says so: it runs the real kernels in the Triton
interpreter against nn.GRU at two small shapes (a correctness demo) and exits 0.
"""

import argparse
import datetime
import os
import pathlib
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the triton import

import triton  # noqa: E402
import triton.testing  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import harness  # noqa: E402

import gru_triton  # noqa: E402
from gru_triton import dispatch, functional  # noqa: E402

DTYPE = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16,
         "fp16": torch.float16}
PATH_IMPLS = {f"gru_triton/{p}": p for p in dispatch.PATHS}
# --quick leaves out compiled_reference (compiling the reference takes minutes per shape).
IMPLS = ("cudnn", "gru_triton", *PATH_IMPLS, "compiled_reference")
COMPILED_REFERENCE_MAX_T = 64  # compiling the reference's unrolled time loop takes minutes


def _max_rel_err(a, b) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def demo() -> int:
    print("No CUDA GPU here: nothing was timed. Running the real kernels in the Triton "
          "interpreter (CPU) against torch.nn.GRU instead.\n")
    gru_triton.set_backend("triton")
    print("| T | B | I | H | layers | bidirectional | max rel err output | max rel err dx |")
    print("|---|---|---|---|---|---|---|---|")
    for T, B, I, H, layers, bi in [(16, 4, 8, 32, 1, False), (8, 3, 5, 37, 2, True)]:
        ref = torch.nn.GRU(I, H, layers, bidirectional=bi)
        ours = gru_triton.GRU(I, H, layers, bidirectional=bi)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(T, B, I)
        results = []
        for module in (ours, ref):
            xi = x.clone().requires_grad_(True)
            out, _ = module(xi)
            out.square().sum().backward()
            results.append((out.detach(), xi.grad))
        (o1, g1), (o2, g2) = results
        print(f"| {T} | {B} | {I} | {H} | {layers} | {bi} | {_max_rel_err(o1, o2):.1e} "
              f"| {_max_rel_err(g1, g2):.1e} |")
    print("\nRun this on a machine with an NVIDIA GPU for the timings.")
    return 0


def _precision(dtype_name):
    """cuDNN's RNN flag for the case (fp32: IEEE, tf32: TF32); gru_triton follows it."""
    return dispatch.rnn_fp32_precision("tf32" if dtype_name == "tf32" else "ieee")


def _compiled_reference(ref: torch.nn.GRU):
    from gru_triton.functional import gru

    def run(x):
        return gru(x, torch.zeros(ref.num_layers * (2 if ref.bidirectional else 1), x.shape[1],
                                  ref.hidden_size, device=x.device, dtype=x.dtype),
                   ref._flat_weights, has_bias=True, num_layers=ref.num_layers, dropout=0.0,
                   training=False, bidirectional=ref.bidirectional, batch_first=False,
                   backend="reference")

    return torch.compile(run)


def _runner(call, case, x, grad_out, params):
    """The timed function: forward under no_grad, or forward + backward."""
    if case.op == "fwd":
        def run():
            with torch.no_grad():
                call(x)
    else:
        def run():
            call(x)[0].backward(grad_out)
    return run, ([x, *params] if case.op == "fwdbwd" else None)


def _peak_bytes(run) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    run()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def _outputs(call, case, x, grad_out):
    """What the timed call computes, as it computes it (forward under no_grad, where a
    bidirectional stack may run its directions at once: the check must see that too)."""
    xi = x.detach().clone().requires_grad_(case.op == "fwdbwd")
    if case.op == "fwd":
        with torch.no_grad():
            return [call(xi)[0]]
    out = call(xi)[0]
    out.backward(grad_out)
    return [out.detach(), xi.grad]


def _directions_at_once(case, module, x) -> bool:
    """Whether the timed call runs a bidirectional layer's directions at once (the forward
    under no_grad, or forward + backward: gru_triton.functional's rule, asked with the
    module's own weights and the dispatcher's mode)."""
    if not case.bidirectional:
        return False
    hx = x.new_zeros(2 * case.layers, case.B, case.H)
    with torch.set_grad_enabled(case.op == "fwdbwd"):
        return functional._directions_at_once(x, hx, module._flat_weights, lengths=None,
                                              reset_after=True)


def run_case(case, impls, meta) -> list:
    device = torch.device("cuda")
    dtype = DTYPE[case.dtype]
    records = []
    with _precision(case.dtype):
        torch.manual_seed(0)
        ref = torch.nn.GRU(case.I, case.H, case.layers, bidirectional=case.bidirectional).to(device, dtype)
        ours = gru_triton.GRU(case.I, case.H, case.layers,
                              bidirectional=case.bidirectional).to(device, dtype)
        ours.load_state_dict(ref.state_dict())
        D = 2 if case.bidirectional else 1
        x = torch.randn(case.T, case.B, case.I, device=device, dtype=dtype,
                        requires_grad=case.op == "fwdbwd")
        grad_out = torch.randn(case.T, case.B, D * case.H, device=device, dtype=dtype)
        expected = _outputs(ref, case, x, grad_out)
        timed = {}
        for impl in impls:
            note, call, module = "", None, ours
            if impl == "cudnn":
                call, module = ref, ref
            elif impl == "gru_triton":
                call = ours
            elif impl in PATH_IMPLS:
                def call(x, _path=PATH_IMPLS[impl]):
                    with dispatch.force_path(_path):
                        return ours(x)
            elif impl == "compiled_reference":
                if case.T > COMPILED_REFERENCE_MAX_T:
                    records.append(_record(case, impl, meta, note=f"not timed at T > "
                                           f"{COMPILED_REFERENCE_MAX_T}: compile time"))
                    continue
                call, module = _compiled_reference(ref), ref
            params = list(module.parameters())
            route = PATH_IMPLS.get(impl, impl)
            if impl == "gru_triton":  # what auto dispatches this shape to
                training = case.op == "fwdbwd"
                route = functional._path(dtype, case.H, case.B, device, lengths=False,
                                         reset_after=True, training=training)
                if route != "cudnn" and dispatch.dot_precision(
                        dtype, device, case.H, case.B, training) == "tf32x3":
                    route += "+tf32x3"  # IEEE fp32 as three TF32 products
                if _directions_at_once(case, ours, x):
                    route += "+directions at once"
            try:
                got = _outputs(call, case, x, grad_out)
                err = max(_max_rel_err(g, e) for g, e in zip(got, expected, strict=True))
                correct = err <= harness.TOLERANCE[case.dtype]
                if not correct:
                    records.append(_record(case, impl, meta, err=err, route=route,
                                           note="differs from nn.GRU: not timed"))
                    continue
                run, reset = _runner(call, case, x, grad_out, params)
                ms = triton.testing.do_bench(run, grad_to_none=reset, return_mode="median")
                peak = _peak_bytes(run)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                records.append(_record(case, impl, meta, route=route, note="out of memory"))
                continue
            timed[impl] = (ms, peak)
            records.append(_record(case, impl, meta, ms=ms, err=err, correct=correct,
                                   peak=peak, route=route, note=note))
    cudnn_ms, cudnn_peak = timed.get("cudnn", (None, None))
    for r in records:
        r["cudnn_peak_mem_bytes"] = cudnn_peak
        if r["ms"] is not None and cudnn_ms is not None and r["correct"]:
            r["speedup_vs_cudnn"] = cudnn_ms / r["ms"]
    return records


def _record(case, impl, meta, ms=None, err=None, correct=False, peak=None, route=None,
            note=""):
    """One results.json record; ``route``: the path that ran ("cudnn" for nn.GRU's own op,
    or a kernel path), for auto the dispatcher's choice."""
    return dict(meta, op=case.op, impl=impl, route=route, dtype=case.dtype, B=case.B, T=case.T,
                H=case.H, I=case.I, layers=case.layers, bidirectional=case.bidirectional,
                source=case.source, ms=ms,
                us_per_step=None if ms is None else 1e3 * ms / (case.T * case.layers),
                speedup_vs_cudnn=None, max_rel_err=err, correct=correct, peak_mem_bytes=peak,
                cudnn_peak_mem_bytes=None, note=note)


def bench(args) -> int:
    import time

    from tqdm.auto import tqdm

    started = time.monotonic()
    gpu = torch.cuda.get_device_name()
    date = str(datetime.date.today())
    meta = dict(gpu=gpu, torch=torch.__version__, triton=triton.__version__, date=date)
    impls = args.impls or [i for i in IMPLS if not (args.quick and i == "compiled_reference")]
    grid = None
    if args.H or args.B or args.T or args.layers != 1 or args.bidirectional:
        base = harness.QUICK if args.quick else harness.SWEEP
        grid = {k: getattr(args, k) or base[k] for k in ("B", "T", "H")}
    cases = harness.cases(quick=args.quick, grid=grid, dtypes=args.dtypes,
                          ops=args.ops or harness.OPS, layers=args.layers,
                          bidirectional=args.bidirectional)
    out_dir = harness.results_dir(args.results_root, gpu, date)
    command = " ".join(["python bench/bench_gru.py", *_options(args)])
    records, done = [], 0
    for case in tqdm(cases, desc="cases", dynamic_ncols=True):
        if args.budget_s is not None and time.monotonic() - started > args.budget_s:
            break
        with dispatch.directions_at_once(args.directions_at_once):
            records.extend(run_case(case, impls, meta))
        done += 1
        # Rewritten after every case, so a run killed later says where it stopped.
        left = ""
        if done < len(cases):
            why = ("Stopped" if args.budget_s is None else
                   f"Stopped by --budget-s {args.budget_s:g}")
            left = f" {why} after {done} of {len(cases)} cases."
        header = (f"# gru_triton vs nn.GRU (cuDNN)\n\nGPU: {gpu}; CUDA {torch.version.cuda}; "
                  f"torch {torch.__version__}; triton {triton.__version__}; {date}. "
                  f"`{command}`: triton.testing.do_bench median, after a correctness check "
                  f"against nn.GRU.{left}")
        # After every case: a run killed later (a hang, the machine's time limit) keeps these.
        paths = harness.write_results(records, out_dir, header)
    if not records:
        print("--budget-s left no time for a case: nothing was timed")
        return 0
    wrong = [r for r in records if r["max_rel_err"] is not None and not r["correct"]]
    print(f"{done} of {len(cases)} cases, {len(records)} records, {len(wrong)} wrong; "
          f"written to {paths['md'].parent}")
    return 0


def _options(args) -> list:
    """The command-line options that shaped this run, for the results' header."""
    out = ["--quick"] if args.quick else []
    if args.impls:
        out += ["--impls", ",".join(args.impls)]
    if args.budget_s is not None:
        out += ["--budget-s", f"{args.budget_s:g}"]
    for name in ("B", "T", "H", "dtypes", "ops"):
        if getattr(args, name):
            out += [f"--{name}", ",".join(map(str, getattr(args, name)))]
    if args.layers != 1:
        out += ["--layers", str(args.layers)]
    if args.bidirectional:
        out += ["--bidirectional"]
    if args.directions_at_once != dispatch.directions_at_once_mode():
        out += ["--directions-at-once", args.directions_at_once]
    return out


def _int_list(text: str) -> tuple:
    return tuple(int(v) for v in text.split(",") if v)


def _choices(allowed):
    def parse(text: str) -> tuple:
        values = tuple(v for v in text.split(",") if v)
        unknown = sorted(set(values) - set(allowed))
        if unknown or not values:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(allowed)}")
        return values
    return parse


def _impl_list(text: str) -> list:
    impls = [name for name in text.split(",") if name]
    unknown = sorted(set(impls) - set(IMPLS))
    if unknown or not impls:
        raise argparse.ArgumentTypeError(f"unknown implementation(s) {unknown}; choose from "
                                         f"{', '.join(IMPLS)}")
    if "cudnn" not in impls:
        impls.insert(0, "cudnn")  # every speed-up is against it
    return impls


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick subset of the sweep")
    parser.add_argument("--results-root", default=str(pathlib.Path(__file__).parent / "results"))
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no case after this many seconds (results so far are kept)")
    parser.add_argument("--impls", type=_impl_list, default=None,
                        help=f"comma-separated subset of {', '.join(IMPLS)}")
    for name in ("B", "T", "H"):
        parser.add_argument(f"--{name}", type=_int_list, default=None,
                            help=f"comma-separated {name} values: a sweep of these (the "
                                 "others from the quick or full grid), without extra cases")
    parser.add_argument("--layers", type=int, default=1,
                        help="layers of every case of a custom sweep (B, T, H as above)")
    parser.add_argument("--bidirectional", action="store_true",
                        help="a custom sweep of bidirectional stacks")
    parser.add_argument("--directions-at-once", default=dispatch.directions_at_once_mode(),
                        choices=dispatch.DIRECTIONS_AT_ONCE,
                        help="where a bidirectional layer's directions may run at once "
                             "(gru_triton.dispatch.directions_at_once; default: its default)")
    parser.add_argument("--dtypes", type=_choices(harness.DTYPES), default=None)
    parser.add_argument("--ops", type=_choices(harness.OPS), default=None)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        return demo()
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
