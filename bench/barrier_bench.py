"""µs per grid barrier of the grid-synchronised path, against the number of programs.

    python bench/barrier_bench.py [--results-root bench/results]

The cost model (bench/cost_model.py) assumes 1.5 µs per barrier, and at the issue's headline
shape (bf16, H = 1024, B = 16) that is half of grid_sync's predicted 3 µs step: of all its
figures, this one decides the 2 µs target, and nothing but a GPU can give it. This times a
kernel that does nothing but pass kernels/gru.py's own ``_grid_barrier`` N times (one
cooperative launch, as the recurrence kernels use it, 8 warps per program), subtracts the same
launch with no barrier, and divides by N. The recurrence kernels take a whole SM per
program; this small one is not forced to, so its programs may share SMs, and its figure may
differ from theirs for that. It writes ``barrier.json`` (gpu, versions, date, and per program
count the µs per barrier) beside the benchmark's results.json and prints a table.

Without a GPU nothing can be timed, and it says so and exits 0.
"""

import argparse
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
from gru_triton.kernels.gru import _grid_barrier  # noqa: E402

BARRIERS = 2000  # per timed launch: long enough that the launch itself is noise
NUM_WARPS = 8    # as the recurrence kernels (recurrence_config)


@triton.jit
def _barriers_kernel(sync_ptr, n_barriers):
    for generation in range(1, n_barriers + 1):
        _grid_barrier(sync_ptr, generation)


def pass_barriers(programs: int, n_barriers: int, device) -> torch.Tensor:
    """One launch of ``programs`` programs (one batch tile's column, grid (1, programs)) that
    meet at ``n_barriers`` grid barriers; returns the barrier's counter, which every program
    bumps once per barrier: (1,) int32 equal to programs * n_barriers."""
    sync = torch.zeros(1, dtype=torch.int32, device=device)
    extra = {"launch_cooperative_grid": True} if sync.device.type == "cuda" else {}
    _barriers_kernel[(1, programs)](sync, n_barriers, num_warps=NUM_WARPS, **extra)
    return sync


def program_counts(sms: int) -> list:
    """1, 2, 4, ... up to the SM count, and the SM count itself (grid_sync's largest grid)."""
    counts = [1 << k for k in range(sms.bit_length()) if 1 << k <= sms]
    return counts + ([sms] if counts[-1] != sms else [])


def us_per_barrier(programs: int, device) -> float:
    with_barriers = triton.testing.do_bench(lambda: pass_barriers(programs, BARRIERS, device),
                                            return_mode="median")
    launch_only = triton.testing.do_bench(lambda: pass_barriers(programs, 0, device),
                                          return_mode="median")
    return 1e3 * (with_barriers - launch_only) / BARRIERS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-root", default=str(pathlib.Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA GPU here: nothing was timed (a grid barrier needs its programs running "
              "at once, which the interpreter cannot do).")
        return 0
    device = torch.device("cuda")
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    records = []
    for programs in program_counts(sms):
        counter = pass_barriers(programs, 3, device).item()
        if counter != 3 * programs:
            raise RuntimeError(f"{programs} programs: counter {counter}, expected {3 * programs}")
        records.append(dict(programs=programs, us_per_barrier=us_per_barrier(programs, device)))
    path, where = harness.write_probe(args.results_root, "barrier.json",
                                      barriers_per_launch=BARRIERS, num_warps=NUM_WARPS,
                                      records=records)
    print(f"Grid barrier on {where}; the cost model assumes 1.5 µs\n")
    print("| programs | µs per barrier |\n|---|---|")
    for r in records:
        print(f"| {r['programs']} | {r['us_per_barrier']:.2f} |")
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
