"""gru_triton against torch.nn.GRU (cuDNN): forward and forward+backward times.

    python bench/bench_gru.py            # on a GPU: the timing table; without one: a demo
    python bench/bench_gru.py --out results.json

On a machine with a CUDA GPU it times both implementations with ``triton.testing.do_bench``
(median of repeated runs) at a few shapes, after checking that they agree, and prints a
markdown table. Without a GPU it runs the real kernels in the Triton interpreter against
nn.GRU at small shapes, prints the errors, and says that no GPU timing was taken.
"""

import argparse
import datetime
import itertools
import json
import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the triton import

import triton  # noqa: E402
import triton.testing  # noqa: E402

import gru_triton  # noqa: E402

SHAPES = dict(B=(16, 64), T=(256,), H=(256, 1024))
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Agreement required before a shape is timed (relative to the largest magnitude); fp32 is
# compared in cuDNN's default TF32 mode, which both follow.
TOLERANCE = {"fp32": 5e-3, "bf16": 5e-2}


def _pair(I, H, dtype, device):
    ref = torch.nn.GRU(I, H).to(device, dtype)
    ours = gru_triton.GRU(I, H).to(device, dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _max_rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def demo() -> None:
    print("No CUDA GPU here: no GPU timing was taken. Running the real kernels in the Triton "
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
    print("\nRun this on a machine with an NVIDIA GPU for the timing table.")


def _time(fn) -> float:
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def bench(out_path: str | None) -> None:
    device = torch.device("cuda")
    gru_triton.set_backend("auto")
    records = []
    for (B, T, H), (dname, dtype) in itertools.product(
            itertools.product(SHAPES["B"], SHAPES["T"], SHAPES["H"]), DTYPES.items()):
        ref, ours = _pair(H, H, dtype, device)
        x = torch.randn(T, B, H, device=device, dtype=dtype, requires_grad=True)
        err = _max_rel_err(ours(x)[0], ref(x)[0])
        for op in ("fwd", "fwdbwd"):
            times = {}
            for impl, module in (("cudnn", ref), ("gru_triton", ours)):
                if op == "fwd":
                    def run(module=module, x=x):
                        with torch.no_grad():
                            module(x)
                else:
                    def run(module=module, x=x):
                        module(x)[0].sum().backward()
                times[impl] = _time(run)
            ok = err <= TOLERANCE[dname]
            records.append(dict(
                gpu=torch.cuda.get_device_name(), torch=torch.__version__,
                triton=triton.__version__, date=str(datetime.date.today()), op=op,
                impl="gru_triton", dtype=dname, B=B, T=T, H=H, I=H, layers=1,
                ms=times["gru_triton"], cudnn_ms=times["cudnn"],
                us_per_step=1e3 * times["gru_triton"] / T,
                speedup_vs_cudnn=times["cudnn"] / times["gru_triton"] if ok else None,
                max_rel_err=err, correct=ok))
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton "
          f"{triton.__version__}, {datetime.date.today()}; do_bench median\n")
    print("| op | dtype | B | T | H | cuDNN ms | gru_triton ms | µs/step | speed-up | max rel err |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in records:
        speedup = f"{r['speedup_vs_cudnn']:.2f}x" if r["correct"] else "WRONG (not timed)"
        print(f"| {r['op']} | {r['dtype']} | {r['B']} | {r['T']} | {r['H']} | {r['cudnn_ms']:.3f} "
              f"| {r['ms']:.3f} | {r['us_per_step']:.2f} | {speedup} | {r['max_rel_err']:.1e} |")
    if out_path:
        with open(out_path, "w") as f:
            json.dump(records, f, indent=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the records as JSON here (GPU only)")
    args = parser.parse_args()
    if torch.cuda.is_available():
        bench(args.out)
    else:
        demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
