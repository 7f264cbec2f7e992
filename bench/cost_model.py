"""The per-step cost model of docs/performance.md: predicted µs per timestep per layer for each
recurrence path on an H100, from the hardware figures below. Estimates, not measurements.

    python bench/cost_model.py          # prints the markdown table of docs/performance.md
"""

import json
import math
import pathlib

# H100 SXM5 figures (NVIDIA's data sheet, and DESIGN-NOTES.md for L2): what the model assumes.
H100 = dict(
    sms=132,
    clock_hz=1.755e9,             # sustained boost clock
    l2_bytes_per_s=5.5e12,        # aggregate L2 read bandwidth
    l2_bytes_per_clk_per_sm=64,   # what one SM can pull from L2 per clock
    smem_bytes_per_clk_per_sm=128,
    tc_flops={"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12},  # dense peak
    tc_efficiency=0.25,           # 16x32 mma.sync tiles from 8 warps: a quarter of peak, assumed
    launch_s=6e-6,                # one kernel launch from PyTorch eager (C++), CPU side
    # One launch through Triton's Python JIT dispatch (JITFunction.run), CPU side: ~11 µs
    # measured by tritonbench (pytorch-labs PR #1002) and ~12.5 µs for a 19-argument kernel
    # (facebookexperimental/triton PR #1231), against 2-4 µs for a compiled kernel's own
    # launcher. Our step kernels take 15 arguments plus constexprs.
    triton_launch_s=12e-6,
    cta_barrier_s=0.2e-6,
    grid_barrier_s=1.5e-6,        # release add + acquire spin through L2, assumed
)
BYTES = {"bf16": 2, "fp16": 2, "tf32": 4, "fp32": 4}


def per_step_us(path: str, B: int, H: int, dtype: str, hw=H100) -> float:
    """Predicted µs per timestep of one layer and direction (recurrence only).

    Reads from L2 per step: W_hh (each program its share) and, per hidden chunk a program
    computes, its batch tile of h_{t-1} (BLOCK_B x H): the weights' dtype for bf16/fp16
    (the kernels' 16-bit states, which the dot reads), fp32 otherwise. Tiles are the launchers'
    (``recurrence_config``, with narrow tiles resolved as the launchers resolve them: a tile
    reads only the rows it covers)."""
    from gru_triton.kernels import gru as gru_kernels
    from gru_triton.kernels import recurrence_config

    cfg = (gru_kernels._narrowed(recurrence_config(H, "grid_sync", B, tensor_cores=dtype != "fp32",
                                                   forward=True, sms=hw["sms"]), B, H, hw["sms"])
           if path == "grid_sync" else recurrence_config(H))
    rows = gru_kernels.tile_rows(cfg)
    w_bytes = 3 * H * H * BYTES[dtype]              # W_hh, read once per step per reader
    h_tile = rows * H * BYTES[dtype]               # one program's rows of h_{t-1}
    flops = 2 * B * H * 3 * H                      # h_{t-1} @ W_hhᵀ
    tiles = math.ceil(B / rows)
    chunks = math.ceil(H / cfg["BLOCK_H"])
    per_sm_l2 = hw["l2_bytes_per_clk_per_sm"] * hw["clock_hz"]
    tc_per_sm = hw["tc_flops"][dtype] * hw["tc_efficiency"] / hw["sms"]
    if path == "persistent":      # each batch tile's program reads all of W_hh every step
        programs = tiles
        read = (w_bytes + chunks * h_tile) / per_sm_l2
        compute = flops / programs / tc_per_sm
        return 1e6 * (max(read, compute) + hw["cta_barrier_s"])
    if path == "per_step":        # T Triton launches; every program reads its W_hh slice
        programs = tiles * chunks
        waves = math.ceil(programs / hw["sms"])
        read = max((tiles * w_bytes + programs * h_tile) / hw["l2_bytes_per_s"],
                   waves * (w_bytes / chunks + h_tile) / per_sm_l2)
        compute = waves * flops / programs / tc_per_sm
        return 1e6 * (hw["triton_launch_s"] + max(read, compute))
    if path == "grid_sync":       # one launch; ≤ one program per SM, each owns a W_hh slice
        columns = min(chunks, hw["sms"] // tiles)
        if columns < 1:
            return float("nan")
        chunks_each = math.ceil(chunks / columns)
        resident = _resident(cfg, H, dtype, columns == chunks)
        if resident is not None:
            # The slice stays in shared memory (W_RESIDENT): only h comes from L2, and every
            # warp that repeats the product reads the slice and h from shared memory again.
            smem = hw["smem_bytes_per_clk_per_sm"] * hw["clock_hz"]
            read = max(tiles * chunks * h_tile / hw["l2_bytes_per_s"],
                       h_tile / per_sm_l2 + smem_reads(resident, H, BYTES[dtype]) / smem)
        else:
            read = max((tiles * w_bytes + tiles * chunks * h_tile) / hw["l2_bytes_per_s"],
                       chunks_each * (w_bytes / chunks + h_tile) / per_sm_l2)
        # A narrow tile's dot still multiplies all BLOCK_B rows, the masked ones as zeros.
        compute = flops * (cfg["BLOCK_B"] / rows) / (tiles * columns) / tc_per_sm
        return 1e6 * (max(read, compute) + hw["grid_barrier_s"])
    if path == "cudnn":           # as the issue describes cuDNN on H100 for H > 192:
        # a GEMM launch and a pointwise launch per step, W_hh from L2 by the GEMM
        read = w_bytes / hw["l2_bytes_per_s"]
        compute = flops / (hw["tc_flops"][dtype] * hw["tc_efficiency"])
        return 1e6 * (2 * hw["launch_s"] + max(read, compute))
    raise ValueError(path)


def _resident(cfg: dict, H: int, dtype: str, one_chunk_each: bool) -> dict | None:
    """The launcher's resident config where it keeps each program's W_hh slice on chip (an
    H100's 227 KiB), else None."""
    from gru_triton.kernels import resident_config

    if dtype == "fp32" or not one_chunk_each:
        return None
    return resident_config(cfg, H, BYTES[dtype], 227 * 1024)


def smem_reads(cfg: dict, H: int, itemsize: int, arch: int = 90, row_operands: int = 1) -> float:
    """Bytes one program reads from shared memory per step for its resident product, as the
    compiled kernels do it (the kernel report's ``dot_smem_bytes`` checks it for every
    resident grid_sync configuration; sm_90 = H100, sm_80 = A100). row_operands: 1 for the
    forward (h), 3 for the backward (the gate gradients d_r, d_z, d_gh_n, each (BLOCK_B, K)
    against its own gate's columns).

    Three (BLOCK_B, BLOCK_H) = 16 × 16 gate products: the MMA layout puts every warp on the
    same 16 rows, so each warp runs the whole product and reads the whole slice and h tile
    through ldmatrix (H = 1024, bf16: 256 ldmatrix.x4 of 512 bytes per warp, 128 KiB).
    STACKED_GATES: one (4 * BLOCK_H, BLOCK_B) product, 64 rows, which four warps split. On
    sm_90 each warpgroup issues it as wgmma over all or half of the batch columns, reading
    the stacked slice (padding included) once and its columns of h; on sm_80 (mma.sync) each
    of the four warps along the rows reads its rows and all of h. SPLIT_K: each warp reads
    its K slice of the three gates and of h, so the slice and h are read once a step."""
    k = max(16, 1 << (H - 1).bit_length())
    h_tile = row_operands * cfg["BLOCK_B"] * k * itemsize
    if cfg.get("SPLIT_K", 1) > 1:
        return 3 * cfg["BLOCK_H"] * k * itemsize + h_tile
    if cfg.get("STACKED_GATES"):
        groups = max(1, cfg["num_warps"] // 4)
        return groups * 4 * cfg["BLOCK_H"] * k * itemsize + (h_tile if arch >= 90 else 4 * h_tile)
    return cfg["num_warps"] * (3 * cfg["BLOCK_H"] * k * itemsize + h_tile)


PATHS = ("persistent", "per_step", "grid_sync", "cudnn")


def auto_path(B: int, H: int, dtype: str) -> str:
    """What gru_triton's dispatcher picks on an H100 for this shape (full-length rows)."""
    import torch

    from gru_triton import dispatch

    dots = {"bf16": "16-bit", "fp16": "16-bit", "tf32": "tf32", "fp32": "ieee"}[dtype]
    return dispatch.recurrence_path(H, B, torch.device("cuda"), dots=dots)


# Measured forward µs/step (T = 256, one layer), looked up in these files in this order: the
# first that has a shape gives its numbers.
RESULTS = pathlib.Path(__file__).resolve().parent / "results"
# The newest first: 2026-12-04's kernels (its forms/ with the 16-bit forms, auto/ for TF32).
MEASURED = (RESULTS / "nvidia-h200-2026-12-04" / "forms" / "results.json",
            RESULTS / "nvidia-h200-2026-12-04" / "auto" / "results.json",
            RESULTS / "nvidia-h200-2026-11-25" / "auto" / "results.json",
            RESULTS / "nvidia-h200-2026-11-25" / "dispatch" / "results.json",
            RESULTS / "nvidia-h200-2026-11-25" / "results.json")


def measured(B: int, H: int, dtype: str, sources=MEASURED) -> str:
    """"grid_sync a, cuDNN b" (µs/step, forward) from the first results file with the shape."""
    for path in sources:
        if not path.exists():
            continue
        found = {r["impl"]: r["us_per_step"] for r in json.loads(path.read_text())
                 if (r["op"], r["dtype"], r["B"], r["H"], r["T"], r["layers"])
                 == ("fwd", dtype, B, H, 256, 1) and r["us_per_step"] is not None}
        if "cudnn" in found and "gru_triton/grid_sync" in found:
            return (f"grid_sync {found['gru_triton/grid_sync']:.1f}, "
                    f"cuDNN {found['cudnn']:.1f}")
    return "not measured"


def table(shapes=((1, 256), (16, 256), (64, 256), (16, 1024), (64, 1024), (16, 2048),
                  (64, 2048), (256, 1024)), dtypes=("bf16", "tf32", "fp32")) -> str:
    """"fp32" is fp32 with IEEE dots (no tensor cores), "tf32" fp32 with TF32 dots."""
    lines = ["| B | H | dtype | W_hh bytes/step | " + " | ".join(f"{p} µs" for p in PATHS)
             + " | best | auto picks | measured on an H200 (µs) |",
             "|---|---|---|---|" + "---|" * len(PATHS) + "---|---|---|"]
    for dtype in dtypes:
        for B, H in shapes:
            times = {p: per_step_us(p, B, H, dtype) for p in PATHS}
            finite = {p: t for p, t in times.items() if not math.isnan(t)}
            best = min(finite, key=finite.get)
            cells = " | ".join(f"{t:.1f}" for t in times.values())
            lines.append(f"| {B} | {H} | {dtype} | {3 * H * H * BYTES[dtype] / 2**20:.2f} MiB "
                         f"| {cells} | {best} | {auto_path(B, H, dtype)} "
                         f"| {measured(B, H, dtype)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table())
