"""Time grid_sync's forward under tile configurations other than the launcher's, to measure
the levers docs/performance.md lists (batch-tile rows, which decide whether W_hh stays on
chip; warps per program) before the launcher's table changes. Needs a CUDA GPU.

    python bench/variants.py --out bench/results/variants.json

Each variant is checked against nn.GRU (cuDNN) before it is timed, as bench_gru.py does.
"""

import argparse
import contextlib
import datetime
import functools
import json
import pathlib
import sys

import torch

# (name, overrides of recurrence_config's grid_sync config); "rows" forces BLOCK_B.
VARIANTS = (("launcher", {}), ("16 rows", {"BLOCK_B": 16}), ("4 warps", {"num_warps": 4}),
            ("16 rows, 4 warps", {"BLOCK_B": 16, "num_warps": 4}))
SHAPES = ((16, 1024), (64, 1024), (64, 256), (16, 2048), (64, 512))  # (B, H), I = H
T = 256


@contextlib.contextmanager
def grid_sync_config(overrides: dict):
    """The launchers' grid_sync config with ``overrides`` while inside."""
    from gru_triton.kernels import gru as gru_kernels

    real = gru_kernels.recurrence_config

    def patched(hidden_size, path="persistent", batch=16, tensor_cores=True):
        cfg = real(hidden_size, path, batch, tensor_cores)
        return {**cfg, **overrides} if path == "grid_sync" else cfg

    gru_kernels.recurrence_config = patched
    try:
        yield
    finally:
        gru_kernels.recurrence_config = real


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" /
                                             "variants.json"))
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp16"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA GPU here: nothing was timed.")
        return 0
    import triton
    import triton.testing

    import gru_triton
    from gru_triton import dispatch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    records = []
    for B, H in SHAPES:
        torch.manual_seed(0)
        ref = torch.nn.GRU(H, H).cuda().to(dtype)
        ours = gru_triton.GRU(H, H).cuda().to(dtype)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(T, B, H, device="cuda", dtype=dtype)
        with torch.no_grad():
            expected = ref(x)[0].double()
            cudnn_ms = triton.testing.do_bench(functools.partial(ref, x), return_mode="median")
            for name, overrides in VARIANTS:
                record = dict(B=B, H=H, T=T, dtype=args.dtype, variant=name, cudnn_ms=cudnn_ms)
                try:
                    with grid_sync_config(overrides), dispatch.force_path("grid_sync"):
                        got = ours(x)[0].double()
                        err = ((got - expected).abs().max() / expected.abs().max()).item()
                        ms = (triton.testing.do_bench(functools.partial(ours, x), return_mode="median")
                              if err <= 5e-2 else None)
                except Exception as exc:  # a variant that fails to compile or launch
                    err, ms = None, None
                    record["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                record.update(ms=ms, max_rel_err=err,
                              us_per_step=None if ms is None else 1e3 * ms / T)
                records.append(record)
                step = "-" if ms is None else f"{1e3 * ms / T:.2f}"
                print(f"B={B} H={H} {name:18s} {step:>7s} us/step  (cuDNN "
                      f"{1e3 * cudnn_ms / T:.2f})  err {err}  {record.get('error', '')}",
                      flush=True)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__,
                                   triton=triton.__version__, date=str(datetime.date.today()),
                                   op="fwd", records=records), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
