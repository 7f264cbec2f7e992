"""Compile every shipped kernel configuration for real GPUs, ahead of time, with no GPU.

For each recurrence kernel, hidden size, dtype and target (sm_80 = A100, sm_90 = H100) this
builds the cubin with ``triton.compile`` and reads registers, shared memory and spills with
the ``cuobjdump`` that ships inside the triton wheel, and whether the PTX uses tensor cores
(``mma`` / ``wgmma``). The configurations are the launchers' own (``recurrence_config``), so
what is reported is what runs.

    python -m gru_triton.kernel_report            # writes docs/kernel-report.{md,json}
"""

import argparse
import concurrent.futures
import datetime
import json
import multiprocessing
import os
import pathlib
import re
import subprocess
import tempfile

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from .kernels import gru as gru_kernels

# 16 stands for every H <= 16, which gets the 16-wide tiles; the rest share the 32-wide ones.
HIDDEN_SIZES = (16, 64, 128, 256, 512, 1024)
# The split-K forms at H = 2048 too: there a 16-bit slice of K = 2048 stays on an H100 with h
# staged two K pieces at a time (K_PIECES); the other forms' code at 2048 is that at 1024.
EXTRA_HIDDEN_SIZES = {"grid_sync+resident+split_k+lengths": (2048,)}
ARCHS = (80, 90)
# (weight dtype, fp32 dot precision); the recurrence carries its state in fp32 ("acc"), or
# fp64 for fp64 weights, and the gate and state buffers ("st": storage dtype) are the weights'
# dtype for fp16/bf16, else the acc one.
PRECISIONS = (("bf16", "ieee"), ("fp16", "ieee"), ("fp32", "tf32"), ("fp32", "tf32x3"),
              ("fp32", "ieee"), ("fp64", "ieee"))

_SIGNATURES = {
    "gru_fwd_kernel": (gru_kernels.gru_fwd_kernel,
                       ["gates_ptr:st", "w_hh_ptr:w", "b_hh_ptr:w", "hs_ptr:st", "ghn_ptr:st",
                        "rh_ptr:acc", "hf_ptr:acc", "hd_ptr:acc", "lengths_ptr:i32",
                        "sync_ptr:i32"],
                       dict(HAS_BIAS=True, REVERSE=False, SAVE=True)),
    "gru_bwd_kernel": (gru_kernels.gru_bwd_kernel,
                       ["dhs_ptr:st", "gates_ptr:st", "ghn_ptr:st", "hs_ptr:st", "h0_ptr:st",
                        "w_hh_ptr:w", "lengths_ptr:i32", "sync_ptr:i32", "dgx_ptr:st",
                        "dghn_ptr:st", "dcarry_ptr:acc", "dd_ptr:acc"],
                       dict(REVERSE=False, HAS_DHS=True)),
}
# The constexpr flags that change the code: PyTorch's GRU on full-length rows, with per-row
# lengths (packed sequences), the reset-before form (two phases per step) with lengths, the
# grid-synchronised path (a grid barrier per step) with lengths, and the forward kernel with
# its W_hh slice held on chip (W_RESIDENT) as per_step and grid_sync launch it.
_GRID_SYNC_RESIDENT = dict(RESET_AFTER=True, HAS_LENGTHS=True, GRID_SYNC=True, W_RESIDENT=True)
_STACKED = dict(_GRID_SYNC_RESIDENT, STACKED_GATES=True)
VARIANTS = {
    "reset_after": dict(RESET_AFTER=True, HAS_LENGTHS=False, GRID_SYNC=False),
    "reset_after+lengths": dict(RESET_AFTER=True, HAS_LENGTHS=True, GRID_SYNC=False),
    "reset_before+lengths": dict(RESET_AFTER=False, HAS_LENGTHS=True, GRID_SYNC=False),
    "grid_sync+lengths": dict(RESET_AFTER=True, HAS_LENGTHS=True, GRID_SYNC=True),
    "resident+lengths": dict(RESET_AFTER=True, HAS_LENGTHS=True, GRID_SYNC=False,
                             W_RESIDENT=True),
    "grid_sync+resident+lengths": _GRID_SYNC_RESIDENT,
    # The forward's three gate products as one stacked dot (bench/variants.py's "stacked";
    # the launchers do not pick it yet: not measured on a GPU).
    "grid_sync+resident+stacked+lengths": _STACKED,
    # The same walking K from each program's own chunk, its time loop compiled without
    # loop-invariant code motion as bench/variants.py's "rotated K, no LICM" runs it.
    "grid_sync+resident+stacked+rotated+nolicm+lengths": dict(_STACKED, ROTATE_K=True,
                                                              NO_LICM=True),
    # Narrow tiles: a batch tile covering 8 of the dot's 16 rows (TILE_ROWS), so each program
    # reads half the rows of h_t (or of the gate gradients) a step (bench/variants.py's
    # "narrow tiles", which picks 8, 4 or 2 rows by the grid; the code is the same for each).
    "grid_sync+resident+stacked+narrow+lengths": dict(_STACKED, TILE_ROWS=8),
    # h_{t-1} read by TMA into shared memory for the stacked product (bench/variants.py's
    # "stacked, TMA rows"; 16 bits, sm_90's copies, plain loads on sm_80).
    "grid_sync+resident+stacked+tma+lengths": dict(_STACKED, TMA_ROWS=True),
    # 8-wide hidden chunks, the stacked product only (its 32 rows are the dot's M): twice the
    # programs, each holding half the slice, so TF32's K = 1024 slice fits beside h without K
    # pieces (bench/variants.py's "8 wide, stacked", and with TMA rows).
    "grid_sync+resident+stacked+8wide+lengths": dict(_STACKED, BLOCK_H=8),
    "grid_sync+resident+stacked+8wide+tma+lengths": dict(_STACKED, TMA_ROWS=True, BLOCK_H=8),
    # The stacked forward's time loop compiled without loop-invariant code motion (NO_LICM:
    # its wgmma descriptors computed where used, not held in registers across steps), at the
    # launcher's warps and at 4 (``WARPS``), with pointer loads or TMA rows: what lets one
    # warpgroup hold the product without spilling under triton 3.6.0 (bench/variants.py's
    # "stacked, no LICM", "stacked, 4 warps, no LICM", "stacked, TMA rows, 4 warps, no LICM").
    "grid_sync+resident+stacked+nolicm+lengths": dict(_STACKED, NO_LICM=True),
    "grid_sync+resident+stacked+4warps+nolicm+lengths": dict(_STACKED, NO_LICM=True),
    "grid_sync+resident+stacked+tma+4warps+nolicm+lengths": dict(_STACKED, TMA_ROWS=True,
                                                                 NO_LICM=True),
    "grid_sync+resident+split_k+narrow+lengths": dict(_GRID_SYNC_RESIDENT, SPLIT_K=8,
                                                      TILE_ROWS=8),
    # The warps splitting the resident slice along K, forward and backward
    # (bench/variants.py's "split K"; not picked yet either).
    "grid_sync+resident+split_k+lengths": dict(_GRID_SYNC_RESIDENT, SPLIT_K=8),
    # The same with 32-wide hidden chunks, whose grid is half as wide (bench/variants.py's
    # "16 rows, 32 wide, split K": B 64 at H 1024 with a chunk per program).
    "grid_sync+resident+split_k+wide+lengths": dict(_GRID_SYNC_RESIDENT, SPLIT_K=8, BLOCK_H=32),
}
# Variants compiled at these warps where the resident plan gives others (and not where it
# gives the same: the variant without the warps has those rows).
WARPS = {"grid_sync+resident+stacked+4warps+nolicm+lengths": 4,
         "grid_sync+resident+stacked+tma+4warps+nolicm+lengths": 4}
# Flags only the forward kernel has.
FORWARD_ONLY_FLAGS = ("STACKED_GATES", "ROTATE_K", "TMA_ROWS", "NO_LICM")
# Flags that the launchers' resident plan must give a row for it to run (``runs_with``).
PLAN_FLAGS = ("STACKED_GATES", "SPLIT_K", "TMA_ROWS")
_ITEMSIZE = {"bf16": 2, "fp16": 2, "fp32": 4, "fp64": 8}
# The grid-synchronised path sizes its batch tile to the batch (16, 32 or 64 rows, 16 without
# tensor cores); the other paths' tiles do not depend on it.
GRID_SYNC_BATCH_TILES = (16, 32, 64)
REGISTERS_PER_SM = 65536
# Shared memory per SM, and what one program may use (the opt-in limit per block).
SHARED_BYTES_PER_SM = {80: 164 * 1024, 90: 228 * 1024}
SHARED_BYTES_PER_BLOCK = {80: 163 * 1024, 90: 227 * 1024}
_SCALARS = ("T", "B", "H", "step_begin", "n_steps")


def _cuobjdump() -> str:
    import triton.backends.nvidia as nvidia

    return os.path.join(os.path.dirname(nvidia.__file__), "bin", "cuobjdump")


def compile_one(kernel_name: str, variant: str, dtype: str, dot_precision: str, cfg: dict,
                arch: int, aligned: bool = False, flags: dict | None = None) -> dict:
    """Compiles one configuration; returns its resource usage and tensor-core use.
    ``flags``: constexpr flags over the launchers' (what-if compiles; tests).

    aligned: as Triton's launcher compiles it for a hidden size that is a multiple of 16
    (every pointer 16-byte aligned, as PyTorch allocates, and H divisible by 16): the loads
    along H are then vectorised, which changes the registers. Otherwise as it compiles for
    any other H (scalar loads)."""
    fn, pointers, base = _SIGNATURES[kernel_name]
    asked = flags or {}
    flags = dict(base, **VARIANTS[variant])
    flags.setdefault("W_RESIDENT", False)
    flags.setdefault("TILE_ROWS", 0)
    if kernel_name == "gru_fwd_kernel":
        # As gru_forward launches it: the fp32 state apart wherever the states are 16-bit.
        flags["F32_STATE"] = dtype in ("bf16", "fp16")
        flags.setdefault("STACKED_GATES", False)
        flags.setdefault("ROTATE_K", False)
        flags.setdefault("TMA_ROWS", False)
        flags.setdefault("NO_LICM", False)
    # As resident_config gives it: at most one slice per 16 of K.
    flags["SPLIT_K"] = cfg.get("SPLIT_K", 1)
    flags["K_PIECES"] = cfg.get("K_PIECES", 1)
    # As the launchers run TF32: the reset-after kernels' rows come rounded from their producer.
    flags["ROWS_ROUNDED"] = dot_precision == "tf32" and flags.get("RESET_AFTER", True)
    flags.update(asked)
    if kernel_name == "gru_fwd_kernel":
        # As _launch gives them: TMA copies, and their proxy fences, on sm_90 only.
        flags.setdefault("PROXY_FENCE", flags["TMA_ROWS"] and arch >= 90)
    signature, constexprs = {}, {}
    for spec in pointers:
        name, kind = spec.split(":")
        acc = "fp64" if dtype == "fp64" else "fp32"
        storage = dtype if dtype in ("bf16", "fp16") else acc
        signature[name] = {"acc": f"*{acc}", "st": f"*{storage}", "w": f"*{dtype}",
                           "i32": "*i32", "i64": "*i64"}[kind]
    for name in _SCALARS:
        signature[name] = "i32"
    meta = dict(flags, DOT_PRECISION=dot_precision, DOT_IN_FP32=False,
                **{k: v for k, v in cfg.items() if k.startswith("BLOCK_")})
    if kernel_name == "gru_fwd_kernel":
        # The states' descriptor (TMA_ROWS), or None, which the launch leaves it.
        if flags["TMA_ROWS"]:
            signature["h_desc"] = f"tensordesc<{dtype}[{cfg['BLOCK_B']}, {cfg['BLOCK_K']}]>"
        else:
            meta["h_desc"] = None
    for name, value in meta.items():
        signature[name] = "constexpr"
        constexprs[name] = value
    attrs = {}
    if aligned:
        for index, name in enumerate(fn.arg_names):
            if name == "H" or signature.get(name, "").startswith("*"):
                attrs[(index,)] = [["tt.divisibility", 16]]
    compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs,
                                        attrs=attrs),
                              target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": cfg["num_warps"], "num_stages": cfg["num_stages"],
                                       "maxnreg": cfg["maxnreg"]})
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        usage = subprocess.run([_cuobjdump(), "--dump-resource-usage", f.name],
                               capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", usage))
    ptx = compiled.asm["ptx"]
    threads = 32 * cfg["num_warps"]
    # Register files allocate per warp in units of 256 registers.
    regs_per_warp = -(-int(fields["REG"]) * 32 // 256) * 256
    by_regs = REGISTERS_PER_SM // (regs_per_warp * cfg["num_warps"])
    # cuobjdump sees only static shared memory; what Triton asks for at launch (the dot
    # operands' staging, layout conversions) is dynamic and lives in the kernel's metadata.
    shared = int(fields["SHARED"]) + compiled.metadata.shared
    by_smem = SHARED_BYTES_PER_SM[arch] // max(shared, 1)
    # The dots' operand reads from shared memory, counted once per instruction as the code
    # is written (a K loop repeats its body): ldmatrix per warp, 128 bytes per 8x8 matrix;
    # wgmma per warpgroup, its A (64 x k) and B (k x n) tiles. For a resident slice, whose
    # product is one pass over K, that is one step's reads, which bench/cost_model.py counts.
    itemsize = {"bf16": 2, "f16": 2, "tf32": 4}
    ldmatrix = sum(int(x) for x in re.findall(r"ldmatrix\.sync\.aligned\.m8n8\.x(\d)", ptx))
    wgmma = re.findall(r"wgmma\.mma_async\.sync\.aligned\.m64n(\d+)k(\d+)\.f32\.(\w+)\.", ptx)
    wgmma_bytes = sum((64 * int(k) + int(k) * int(n)) * itemsize.get(t, 8) for n, k, t in wgmma)
    return {
        "dot_smem_bytes": ldmatrix * 128 * cfg["num_warps"]
                          + wgmma_bytes * max(1, cfg["num_warps"] // 4),
        "programs_per_sm": min(by_regs, by_smem, 2048 // threads),
        "registers": int(fields["REG"]),
        "stack_bytes": int(fields["STACK"]),
        "local_bytes": int(fields["LOCAL"]),
        "shared_bytes": shared,
        # TMA_ROWS: h_{t-1}'s block by TMA copies, behind proxy fences at the grid barrier.
        "tma_copies": bool(re.search(r"cp\.async\.bulk\.tensor", ptx)),
        "proxy_fences": len(re.findall(r"fence\.proxy\.async\.global", ptx)),
        "mma": bool(re.search(r"\bmma\.sync", ptx)),
        "wgmma": "wgmma" in ptx,
        # The grid barrier: a releasing atomic add, then acquiring loads of the counter.
        "grid_barrier": bool(re.search(r"\.gpu\.release\.add", ptx)
                             and re.search(r"ld\.global\.gpu\.acquire", ptx)),
        # CTA barriers and ldmatrix as the code is written: what staging an operand through
        # registers adds to a K loop (docs/performance.md, "TF32 operands").
        "cta_barriers": len(re.findall(r"\bbar\.sync\b", ptx)),
        "ldmatrix": len(re.findall(r"\bldmatrix\.", ptx)),
    }


def configs(variant: str, hidden_size: int, kernel_name: str = "gru_bwd_kernel") -> list:
    """The launchers' tile configurations that this variant runs with at this hidden size,
    for one kernel. grid_sync: each batch tile its launcher may pick (it picks 32 and 64
    rows only for tensor-core dots, but every tile is compiled for every dtype); the forward
    runs its 16-row tile at 4 warps. W_RESIDENT: the 16-row tile the launcher widens to all
    of K (``runs_with`` then keeps the dtypes and targets it picks it for), and for the
    stacked grid_sync forward the 32-row one too."""
    flags = VARIANTS[variant]
    forward = kernel_name == "gru_fwd_kernel"
    if flags.get("W_RESIDENT"):
        path = "grid_sync" if flags["GRID_SYNC"] else "per_step"
        cfg = gru_kernels.recurrence_config(hidden_size, path, 16, forward=forward)
        for flag in (*PLAN_FLAGS, "BLOCK_H"):
            if flags.get(flag):
                cfg = dict(cfg, **{flag: flags[flag]})
        if (flags.get("STACKED_GATES") and flags["GRID_SYNC"] and not flags.get("TILE_ROWS")
                and cfg["BLOCK_H"] >= 16):
            # The stacked product also holds its slice in 32-row tiles (resident_config):
            # B 64 at H 1024 in a grid that fits 132 SMs (bench/variants.py's "32 rows,
            # stacked"). Not in 8-wide chunks, whose point is the grid of B <= 16.
            return [cfg, dict(cfg, BLOCK_B=32)]
        return [cfg]
    if flags["GRID_SYNC"]:
        tiles = [gru_kernels.recurrence_config(hidden_size, "grid_sync", rows, forward=forward)
                 for rows in GRID_SYNC_BATCH_TILES]
        if forward and hidden_size >= 1024:
            # fp16/bf16's streamed forward (``_sixteen_bit_forms``): 128-wide K chunks over 3
            # stages, in the 64-row tile (B 64 at H 1024) and the 16-row one (H 2048).
            tiles += [dict(cfg, BLOCK_K=128, num_stages=3) for cfg in tiles
                      if cfg["BLOCK_B"] in (16, 64)]
        return tiles
    return [gru_kernels.recurrence_config(hidden_size)]


def _tensor_cores(dtype: str, dot_precision: str) -> bool:
    return dtype in ("bf16", "fp16") or (dtype == "fp32" and dot_precision in ("tf32", "tf32x3"))


def runs_with(kernel_name: str, variant: str, cfg: dict, hidden_size: int, dtype: str,
              dot_precision: str, arch: int, aligned: bool = False):
    """The configuration the launchers run for this row, or None for a row they never run:
    W_RESIDENT is for tensor-core dots, where the slice fits the target's shared memory
    (``gru_kernels.resident_config``; the backward stages three operands of rows, the
    forward one), with the warps it gives an H that is a multiple of 16 (``aligned``) or
    not (then ``hidden_size`` - 8, the same K). The stacked product runs aligned only.
    grid_sync's forward without tensor cores keeps 8 warps; with "tf32x3" dots its batch
    tile stops at 32 rows where H is not a multiple of 16."""
    flags = VARIANTS[variant]
    tensor_cores = _tensor_cores(dtype, dot_precision)
    if not flags.get("W_RESIDENT"):
        if cfg["num_stages"] > 1 and (dtype not in ("bf16", "fp16") or not aligned):
            return None  # the streamed 16-bit forward's pipelined chunks, H a multiple of 16
        if flags["GRID_SYNC"] and not tensor_cores:
            # As recurrence_config(..., tensor_cores=False) has it, for every tile compiled.
            return dict(cfg, num_warps=8)
        if flags["GRID_SYNC"]:
            # The largest batch tile the launcher gives this precision and alignment (a
            # stand-in H, 8 less, for the unaligned rows' alignment).
            most = gru_kernels.recurrence_config(
                hidden_size if aligned else hidden_size - 8, "grid_sync", 64,
                three_pass=dot_precision == "tf32x3")["BLOCK_B"]
            if cfg["BLOCK_B"] > most:
                return None
        return cfg
    if not tensor_cores or (flags.get("TMA_ROWS") and arch < 90):
        # TMA rows: sm_90's copies only (kernels.gru._tma_copies).
        return None
    planned = gru_kernels.resident_config(cfg, hidden_size if aligned else hidden_size - 8,
                                          _ITEMSIZE[dtype], SHARED_BYTES_PER_BLOCK[arch],
                                          1 if kernel_name == "gru_fwd_kernel" else 3,
                                          three_pass=dot_precision == "tf32x3")
    if planned is not None and any(bool(planned.get(flag)) != bool(flags.get(flag))
                                   for flag in PLAN_FLAGS):
        return None
    if planned is not None and variant in WARPS:
        if planned["num_warps"] == WARPS[variant]:
            return None  # the variant without the warps has this row
        planned = dict(planned, num_warps=WARPS[variant])
    return planned


def _compile_key(key):
    kernel_name, variant, dtype, precision, arch, cfg, aligned = key
    return compile_one(kernel_name, variant, dtype, precision, dict(cfg), arch, aligned)


def build_report(hidden_sizes=None, archs=ARCHS, precisions=PRECISIONS,
                 variants=tuple(VARIANTS), workers=None):
    """One row per (kernel, variant, H, tile configuration, dtype, precision, arch,
    alignment); identical compiles are done once, on ``workers`` processes (default: one per
    CPU). hidden_sizes: None for HIDDEN_SIZES and each variant's EXTRA_HIDDEN_SIZES."""
    if not isinstance(gru_kernels.gru_fwd_kernel, triton.JITFunction):
        raise RuntimeError("the kernel report compiles for real GPUs: run it with TRITON_INTERPRET unset")
    planned = []
    for kernel_name in _SIGNATURES:
        for variant in variants:
            if kernel_name != "gru_fwd_kernel" and any(VARIANTS[variant].get(flag)
                                                       for flag in FORWARD_ONLY_FLAGS):
                continue
            sizes = (HIDDEN_SIZES + EXTRA_HIDDEN_SIZES.get(variant, ())
                     if hidden_sizes is None else hidden_sizes)
            for H, tile in [(h, cfg) for h in sizes
                            for cfg in configs(variant, h, kernel_name)]:
                for dtype, precision in precisions:
                    for arch in archs:
                        # H a multiple of 16 (the benchmark's shapes) and not (ragged).
                        for aligned in (True, False):
                            cfg = runs_with(kernel_name, variant, tile, H, dtype, precision,
                                            arch, aligned)
                            if cfg is None:
                                continue
                            key = (kernel_name, variant, dtype, precision, arch,
                                   tuple(sorted(cfg.items())), aligned)
                            planned.append((key, dict(
                                kernel=kernel_name, variant=variant,
                                H=H if aligned or "resident" not in variant else H - 8,
                                aligned=aligned, dtype=dtype,
                                dot_precision=precision if dtype == "fp32" else "-",
                                arch=f"sm_{arch}", **cfg)))
    keys = list(dict.fromkeys(key for key, _ in planned))
    workers = workers or os.cpu_count() or 1
    if workers > 1:
        # spawn, not fork: the parent has torch and triton loaded, threads included, which a
        # forked child would inherit half-copied.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = dict(zip(keys, pool.map(_compile_key, keys), strict=True))
    else:
        results = {key: _compile_key(key) for key in keys}
    return [dict(row, **results[key]) for key, row in planned]


def expects_tensor_cores(row: dict) -> bool:
    # fp64 uses the double-precision mma of sm_80/sm_90; IEEE fp32 has no tensor-core form.
    return row["dtype"] in ("bf16", "fp16", "fp64") or row["dot_precision"] in ("tf32", "tf32x3")


def to_markdown(rows) -> str:
    lines = [
        "# Kernel report",
        "",
        f"Generated {datetime.date.today()} by `python -m gru_triton.kernel_report` with triton "
        f"{triton.__version__}, torch {torch.__version__}: every shipped configuration compiled "
        "ahead of time (no GPU needed). Spills = STACK + LOCAL bytes; smem = static shared "
        "memory plus what Triton requests at launch (dynamic); tensor cores = `mma.sync` "
        "or `wgmma` in the PTX.",
        "",
        "H aligned: compiled as Triton compiles it for an H that is a multiple of 16 "
        "(16-byte-aligned pointers, vectorised loads along H); \"no\": as for any other H "
        "(resident rows: H - 8, whose resident plan can differ).",
        "",
        "| kernel | variant | H | H aligned | dtype | dot | arch | BLOCK_B×H×K "
        "| warps/stages/maxnreg | regs | spills (B) | smem (B) | programs/SM | tensor cores |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tc = "wgmma" if r["wgmma"] else ("mma" if r["mma"] else "no")
        lines.append(
            f"| {r['kernel']} | {r['variant']} | {r['H']} | {'yes' if r['aligned'] else 'no'} "
            f"| {r['dtype']} | {r['dot_precision']} "
            f"| {r['arch']} | {r['BLOCK_B']}×{r['BLOCK_H']}×{r['BLOCK_K']}"
            f"{f' in {pieces} K pieces' if (pieces := r.get('K_PIECES', 1)) > 1 else ''} "
            f"| {r['num_warps']}/{r['num_stages']}/{r['maxnreg']} "
            f"| {r['registers']} | {r['stack_bytes'] + r['local_bytes']} | {r['shared_bytes']} "
            f"| {r['programs_per_sm']} | {tc} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", help="folder for kernel-report.md / .json")
    parser.add_argument("--hidden-sizes", default=None,
                        help="comma-separated H to compile (default: HIDDEN_SIZES, and "
                             "EXTRA_HIDDEN_SIZES for the variants that have them)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variants to compile (default: all of VARIANTS); "
                             "a subset, for checking another triton release quickly")
    parser.add_argument("--precisions", default=None,
                        help="comma-separated dtype:dot pairs of PRECISIONS to compile (default: "
                             "all), e.g. fp32:tf32x3")
    args = parser.parse_args(argv)
    precisions = (PRECISIONS if args.precisions is None
                  else tuple(tuple(pair.split(":", 1)) for pair in args.precisions.split(",")))
    if set(precisions) - set(PRECISIONS):
        parser.error(f"unknown precisions {sorted(set(precisions) - set(PRECISIONS))}; "
                     f"known: {[':'.join(p) for p in PRECISIONS]}")
    hidden_sizes = (None if args.hidden_sizes is None
                    else tuple(int(h) for h in args.hidden_sizes.split(",")))
    variants = tuple(VARIANTS) if args.variants is None else tuple(args.variants.split(","))
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    rows = build_report(hidden_sizes=hidden_sizes, variants=variants, precisions=precisions)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernel-report.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "kernel-report.md").write_text(to_markdown(rows))
    spills = [r for r in rows if r["stack_bytes"] + r["local_bytes"] > 0]
    print(f"{len(rows)} configurations, {len(spills)} with spills; written to {out}/kernel-report.md")


if __name__ == "__main__":
    main()
