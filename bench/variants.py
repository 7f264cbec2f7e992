"""Time grid_sync under tile configurations other than the launcher's, to measure the levers
docs/performance.md lists (batch-tile rows, which decide whether W_hh stays on chip; warps
per program) before the launcher's table changes. Needs a CUDA GPU.

    python bench/variants.py --out bench/results/variants.json                # forward
    python bench/variants.py --kernel bwd --op fwdbwd --out .../variants-bwd.json

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
# "stacked": the forward's three gate products as one transposed dot over the resident slice
# (gru_fwd_kernel's STACKED_GATES), at the warps resident_config gives it; forward kernel only.
# "split K": the resident slice cut along K, a slice per warp (SPLIT_K), so each step reads it
# from shared memory once instead of once per warp (kernel report, forward: 128 KiB against
# 512 KiB at bf16 H 1024). The backward's split form also keeps a K = 1024 slice on chip at
# all (its whole product's three operand rows do not fit), so at B 16 / H 1024 "split K" is
# its resident form against the launcher's streamed one; at B 64 the backward's 64-row tile
# is never resident, and "16 rows, split K" is (H <= 512, where the grid fits).
# "16 rows, 32 wide, split K": 32-wide hidden chunks halve the grid, so at B 64 / H 1024
# (4 tiles x 32 chunks = 128 programs <= 132 SMs) every program owns one chunk and keeps its
# 32-wide slice on chip, split along K (225 KiB of shared memory compiled, an H100's 227;
# kernel report), where the launcher streams W_hh from L2 (20.9 us/step against cuDNN's 18.2).
# "K 128" / "stages": where the slice is not resident (B 64 at H 1024, H 2048) each step walks
# K in BLOCK_K chunks, each an L2 round trip the next waits for (the H200's times there are
# ~0.6 us per chunk); fewer, wider chunks, or Triton's software pipelining of the chunk loop,
# shorten that chain (bf16: no spills on sm_90 either way). The resident plan ignores both.
# The H200 (2026-12-04) timed "K 128, 3 stages" fastest, and the launchers now stream so in
# 16 bits; "K 128, 4 stages" and "K 256, 2/3 stages" go further (not compiled in the kernel
# report: a spill shows as time). TF32 streams from H 1024 at B 64 and at H 2048 in the
# launcher's 32-wide, one-stage chunks (26-87 us/step on the H200, behind cuDNN): its
# pipelined chunks compile without spills on sm_90 as "K 128, 3 stages" in the 64-row tile
# (forward 186 registers, 169 KiB) and "K 64, 3 stages" in the 16-row one at 4 warps (234)
# and the backward's 64-row one (190, 185 KiB); K 128 spills 32-40 bytes in 16-row tiles.
# The 16-bit backward streams only at B 64 H 2048 now (85.0 us/step forward + backward
# against cuDNN's 52.3): its 64-row tile compiles "K 128, 3 stages" without spills on sm_90
# (185 registers, 185 KiB; 187 under triton 3.6.0), "K 64, 3 stages" too (148, 95 KiB).
VARIANTS = (("launcher", {}), ("split K", {"SPLIT_K": 8}),
            ("16 rows, 32 wide, split K", {"BLOCK_B": 16, "BLOCK_H": 32, "SPLIT_K": 8}),
            ("stacked", {"STACKED_GATES": True}),
            ("16 rows, split K", {"BLOCK_B": 16, "SPLIT_K": 8}),
            ("K 128", {"BLOCK_K": 128}),
            ("K 128, 3 stages", {"BLOCK_K": 128, "num_stages": 3}), ("3 stages", {"num_stages": 3}),
            ("K 128, 4 stages", {"BLOCK_K": 128, "num_stages": 4}),
            ("K 64, 3 stages", {"BLOCK_K": 64, "num_stages": 3}),
            ("K 256, 3 stages", {"BLOCK_K": 256, "num_stages": 3}),
            ("K 256, 2 stages", {"BLOCK_K": 256, "num_stages": 2}),
            ("16 rows", {"BLOCK_B": 16}), ("4 warps", {"num_warps": 4}),
            ("16 rows, 4 warps", {"BLOCK_B": 16, "num_warps": 4}), ("8 warps", {"num_warps": 8}),
            ("tf32x3", {"dots": "tf32x3"}), ("not split", {"SPLIT_K": 1}),
            ("32 rows, stacked", {"BLOCK_B": 32, "STACKED_GATES": True}),
            ("32 rows, stacked, no LICM", {"BLOCK_B": 32, "STACKED_GATES": True,
                                           "NO_LICM": True}),
            ("rotated K, no LICM", {"ROTATE_K": True, "NO_LICM": True}),
            ("32 rows, stacked, rotated K, no LICM", {"BLOCK_B": 32, "STACKED_GATES": True,
                                                      "ROTATE_K": True, "NO_LICM": True}),
            ("narrow tiles", {"NARROW_TILES": True}),
            ("stacked, narrow tiles", {"STACKED_GATES": True, "NARROW_TILES": True}),
            ("tf32x3, narrow tiles", {"dots": "tf32x3", "NARROW_TILES": True}),
            ("tf32x3, 3 stages", {"dots": "tf32x3", "num_stages": 3}),
            ("stacked, TMA rows", {"STACKED_GATES": True, "TMA_ROWS": True}),
            ("32 rows, stacked, TMA rows", {"BLOCK_B": 32, "STACKED_GATES": True,
                                            "TMA_ROWS": True}),
            ("stacked, no LICM", {"STACKED_GATES": True, "NO_LICM": True}),
            ("stacked, 4 warps, no LICM", {"STACKED_GATES": True, "num_warps": 4,
                                           "NO_LICM": True}),
            ("stacked, TMA rows, 4 warps, no LICM", {"STACKED_GATES": True, "TMA_ROWS": True,
                                                     "num_warps": 4, "NO_LICM": True}),
            ("32 rows, stacked, TMA rows, 4 warps, no LICM", {
                "BLOCK_B": 32, "STACKED_GATES": True, "TMA_ROWS": True, "num_warps": 4,
                "NO_LICM": True}),
            ("8 wide, stacked", {"BLOCK_H": 8, "STACKED_GATES": True}),
            ("8 wide, stacked, TMA rows", {"BLOCK_H": 8, "STACKED_GATES": True, "TMA_ROWS": True}),
            ("8 wide, stacked, TMA rows, 2 warps", {"BLOCK_H": 8, "STACKED_GATES": True,
                                                    "TMA_ROWS": True, "num_warps": 2}))
# "32 rows, stacked" (forward, 16 bits): at B 64 / H 1024 the 16-row grid (4 x 64) does not
# fit 132 SMs and the launcher streams W_hh in a 64-row tile (9.88 us/step on the H200);
# in 32-row tiles 2 x 64 = 128 programs each hold their stacked slice on chip (resident_config:
# 8 warps, 232 registers, 193 KiB on sm_90), reading h's 32 rows a step instead of 64 rows
# and the slice.
# "rotated K, no LICM" (the stacked forward only, gru_fwd_kernel's ROTATE_K): each program walks K, in
# its slice and in h_{t-1}, from its own chunk on, so the programs' reads of h right after
# the grid barrier start at different lines (bench/exchange_bench.py's "barrier, rotated"
# times the same on the exchange alone).
# "narrow tiles" (either kernel, 16-row tiles on grid_sync): each batch tile covers fewer
# rows than the dot's 16 (kernels.gru._narrowed: halved while twice the tiles still fit the
# SMs; B 16 H 1024: 8 rows in 2 x 64 programs), so each program reads 8 rows of h_t (the
# backward: of the three gate gradients) a step instead of 16, and twice the programs hold
# the slice. The H200's exchange alone took 3.71 us/step with 64 programs reading 32 KiB
# each and 2.43 with 128 reading 16 KiB (exchange.json, B 16 H 1024 and B 64 H 512).
# "stacked, narrow tiles" (forward): both, where the launcher does not stack (TF32: at
# H 256-512 its plain resident forward runs 3.9-6.7 us/step, 2.3-2.6x cuDNN; bf16's went
# from 4.10 to 2.95 stacked at B 64 H 512).
# "tf32x3, narrow tiles" (--dtype fp32): both, where the rows read are fp32 (the backward's
# three rows of gate gradients: 96 KiB a program a step at B 16 H 512, 24 in 4-row tiles).
# "stacked, TMA rows" / "32 rows, stacked, TMA rows" (forward, 16 bits or TF32, sm_90): the stacked
# product reads h_{t-1} by one TMA copy of its (rows, K) block into shared memory, where the
# wgmma reads it (gru_fwd_kernel's TMA_ROWS), instead of each thread loading its share into
# registers and storing it there; bench/exchange_bench.py's "barrier, TMA" times the same
# read in the exchange alone. Compiled (sm_90, bf16 K 1024, 8 warps): 152 registers against
# 210 (16 rows) and 232 (32 rows) under triton 3.9; under 3.6.0, the GPU image's, 199 and
# 205 against 254 and 255 with 200 bytes spilled (32 rows). TF32 reads its rounded rows
# (hd) so: at K 512, 134-153 against 188-228 (3.9), 186-202 against 248-255 with 168 bytes
# spilled (3.6.0, 32 rows).
# "... no LICM" (forward, the stacked product): the time loop compiled without loop-invariant
# code motion (gru_fwd_kernel's NO_LICM). With that motion, the stacked wgmma's 64-bit
# shared-memory descriptors (128 at bf16 K 1024), which no step changes, are computed before
# the loop and held in registers for the whole launch; without it, in uniform registers where
# they are used, and the compiled step loop is as long (sm_90 SASS, bf16 K 1024, 8 warps: 627
# instructions against 629) on 135 registers against 254 (triton 3.6.0, the GPU image's).
# Every stacked form compiles without spills so, under 3.6.0 and 3.9 alike: "stacked, no
# LICM" is the launcher's 8-warp form, what the flag alone does; "32 rows, stacked, no LICM"
# (8 warps) spilled 200 bytes under 3.6.0 without it; "rotated K, no LICM" 328 (16 rows, K
# 1024), and "32 rows, stacked, rotated K, no LICM" spills 200 still (904 without).
# "stacked, 4 warps, no LICM" / "stacked, TMA rows, 4 warps, no LICM" / "32 rows, stacked,
# TMA rows, 4 warps, no LICM" (forward, sm_90): one warpgroup instead of two. The stacked
# wgmma's M is the slice's 64 rows, so Triton gives a second warpgroup half of N (the batch
# rows), and each warpgroup reads the whole slice from shared memory every step: at bf16
# K 1024, 288 KiB of dot reads a step against 164 at 4 warps (kernel report's
# dot_smem_bytes), about 1.2 against 0.7 us at 128 bytes a clock. resident_config gives 8
# warps there because 4 spilled under triton 3.6.0: 712 bytes with pointer loads, 352 with
# TMA rows (424 at 32 rows), 58 stores and 84 loads of local memory a thread a step, the
# descriptors held across the loop. Without LICM none spills (3.6.0: 231 registers with
# pointer loads, 229 with TMA rows, 242 at 32 rows; 3.9: 225, 225, 237). TF32 at K 512
# (fp32 rows of 2 KiB) likewise: 296 against 160 KiB, 218 and 215 registers (3.6.0).
# "8 wide, stacked" (forward): each program owns 8 hidden units, not 16, so its stacked slice
# is 32 rows ([W_r; W_z; W_n; 0] in 8-row blocks) and twice the programs hold half the slice
# each. In TF32 at K 1024 that slice (128 KiB) fits beside h (64 KiB) on an H100, in 128
# programs at B <= 16, where the 16-wide one needs K pieces (the launcher's split form: 13.56
# us/step at B 16 H 1024 against cuDNN's 14.6-23.3). The product is mma.sync's (32 rows are
# under a warpgroup's 64), one 16 x 8 tile a warp at 4 warps; at 2, with TMA rows (with
# pointer loads 2 warps spill), the slice is read from shared memory less often (sm_90,
# TF32 K 1024: 256 against 388 KiB a step; 255 registers, no spills under triton 3.9 and
# 3.6.0). Where the 8-wide slice cannot be held (its grid does not fit, H not a multiple
# of 16) the variant fails to plan and is not timed.
# "tf32x3, 3 stages" (--dtype fp32): where tf32x3 streams W_hh (from H 1024, but the forward's
# B 16 H 1024 in K pieces), its 32-wide chunk loop pipelined over 3 stages. cuDNN's IEEE GRU
# is slowest there (B 16 H 2048 79.7 us/step, B 64 H 2048 101.3). Compiled for sm_90 at the
# launcher's tiles and warps, with no spills under triton 3.9 and 3.6.0: forward 16 rows
# 244/246 registers, 64 rows 192/186; backward 16 rows 223/223, 64 rows 218/254. 64-wide
# chunks spill there (16-368 bytes) but in the backward's 16-row tile.
# "tf32x3" (--dtype fp32 only: nn.GRU's IEEE flag): both kernels' W_hh products as three TF32
# tensor-core products, IEEE fp32's accuracy (docs/performance.md, "IEEE fp32 on tensor
# cores"), with the tiles and resident plan the launchers give it; "launcher" there is what
# the dispatcher gives grid_sync: IEEE FMAs, or tf32x3 itself in a forward-only run where
# dispatch.FORWARD_WINS has the shape (then "tf32x3" is the launcher's own kernel and is not
# timed again). What decides the "tf32x3" rows of dispatch.GRID_SYNC_WINS and FORWARD_WINS.
# "not split": the slice not cut along K, where the launcher cuts it (kernels.gru's
# _sixteen_bit_forms and _tf32_forms): at TF32 K = 1024 the whole slice does not fit beside
# h, so this is the streamed form the launcher ran before _tf32_forms.
FORWARD_ONLY = ("STACKED_GATES", "ROTATE_K", "TMA_ROWS")
# (B, H), I = H; a time-boxed run reaches the first ones: the headline H first.
SHAPES = ((16, 1024), (64, 1024), (64, 512), (64, 256), (16, 2048))
# Largest max |ours - nn.GRU| / max |nn.GRU| a variant may have to be timed: fp32 under the
# IEEE flag is held to fp32's (bench/harness.py's), where tf32x3 must not lose accuracy.
TOLERANCE = {"fp32": 1e-4}
T = 256


def applies(overrides: dict, kernel: str, dtype: str) -> bool:
    """Whether a variant changes anything for this kernel ("fwd" / "bwd") and dtype: the
    forward-only forms are not the backward's, and tf32x3 is fp32's (IEEE flag) only."""
    return not ((kernel == "bwd" and any(key in overrides for key in FORWARD_ONLY))
                or ("dots" in overrides and dtype != "fp32"))


@contextlib.contextmanager
def grid_sync_config(overrides: dict, kernel: str = "fwd"):
    """Inside: the launchers' grid_sync config for one kernel ("fwd": gru_fwd_kernel, "bwd":
    gru_bwd_kernel) with ``overrides``; an overridden warp count also holds where the
    resident plan would change it."""
    from gru_triton.kernels import gru as gru_kernels

    real_config, real_resident = gru_kernels.recurrence_config, gru_kernels.resident_config

    def config(hidden_size, path="persistent", batch=16, tensor_cores=True, forward=False,
               sms=None, three_pass=False, forms=None):
        cfg = real_config(hidden_size, path, batch, tensor_cores, forward, sms, three_pass,
                          forms)
        if not (path == "grid_sync" and forward == (kernel == "fwd")):
            return cfg
        if "SPLIT_K" in overrides:
            # The launcher's stacked product would take precedence over the split asked for.
            cfg = {k: v for k, v in cfg.items() if k != "STACKED_GATES"}
        return {**cfg, **overrides}

    def resident(cfg, hidden_size, itemsize, smem_limit, row_operands=1, three_pass=False):
        out = real_resident(cfg, hidden_size, itemsize, smem_limit, row_operands, three_pass)
        warps = overrides.get("num_warps")
        if out is not None and warps is not None and cfg["num_warps"] == warps:
            out = {**out, "num_warps": warps}
        return out

    gru_kernels.recurrence_config, gru_kernels.resident_config = config, resident
    try:
        yield
    finally:
        gru_kernels.recurrence_config, gru_kernels.resident_config = real_config, real_resident


def plan(overrides: dict, kernel: str, dtype: torch.dtype, B: int, H: int, op: str,
         device: torch.device) -> tuple:
    """What the varied kernel ("fwd" / "bwd") launches under ``overrides`` at (B, H), I = H:
    (grid, launches, grid-synchronised?, its tile keys, W_hh resident?, dot precision), as
    ``_time_shapes`` runs it (``op`` "fwd" under no_grad, "fwdbwd" saving for backward). Two
    variants with one plan launch the same compiled kernel: timing both measures only the
    noise (the H200, 2026-12-04: six such at bf16 B 16 H 1024 took 11.26-15.15 µs/step
    forward + backward in one run, and one of them read as a 1.27x lever)."""
    from gru_triton.kernels import gru as gru_kernels

    from gru_triton import dispatch

    overrides = dict(overrides)
    dots = overrides.pop("dots", None)
    w_hh = torch.empty(3 * H, H, dtype=dtype,
                       device=device if torch.cuda.is_available() else "meta")
    with grid_sync_config(overrides, kernel), dispatch.force_ieee_dots(dots):
        precision = dispatch.dot_precision(dtype, device, H, B, training=op == "fwdbwd")
        grid, launches, grid_sync, cfg, resident = gru_kernels._kernel_plan(
            w_hh, B, "grid_sync", device, precision, True, kernel == "fwd")
    return grid, launches, grid_sync, tuple(sorted(cfg.items())), resident, precision


def same_kernels(asked, kernel: str, dtype: torch.dtype, B: int, H: int, op: str,
                 device: torch.device) -> dict:
    """Of ``asked`` ((name, overrides), in timing order), the variants not worth timing at
    (B, H): name -> the variant whose kernel it would launch again, "launcher" or one before
    it in ``asked``. A variant that cannot be planned is kept: it fails where it is timed,
    and says why."""
    seen = {plan({}, kernel, dtype, B, H, op, device): "launcher"}
    same = {}
    for name, overrides in asked:
        if name in ("launcher", "launcher, again"):
            continue
        try:
            planned = plan(overrides, kernel, dtype, B, H, op, device)
        except Exception:
            continue
        if planned in seen:
            same[name] = seen[planned]
        else:
            seen[planned] = name
    return same


def summarize(records) -> str:
    """A line per shape: the variants timed, fastest first, each as µs/step and its speed-up
    over the launcher's own config ("launcher"), which is what decides a change to
    recurrence_config; "launcher, again" (timed last) shows how far the same kernel moved
    within the run. Variants that launch the launcher's own kernel (or one timed before them
    at the shape), and those that failed or differed from nn.GRU, are named apart."""
    lines = []
    for B, H in dict.fromkeys((r["B"], r["H"]) for r in records):
        mine = [r for r in records if (r["B"], r["H"]) == (B, H)]
        timed = sorted((r for r in mine if r["us_per_step"] is not None),
                       key=lambda r: r["us_per_step"])
        base = next((r["us_per_step"] for r in timed if r["variant"] == "launcher"), None)
        cells = [f"{r['variant']} {r['us_per_step']:.2f}"
                 + (f" ({base / r['us_per_step']:.2f}x)" if base else "") for r in timed]
        same = {}
        for r in mine:
            if r.get("same_as"):
                same.setdefault(r["same_as"], []).append(r["variant"])
        failed = [r["variant"] for r in mine if r["us_per_step"] is None and not r.get("same_as")]
        lines.append(f"B={B} H={H}: " + ", ".join(cells)
                     + "".join(f"; {'the launcher' if of == 'launcher' else of}'s kernel: "
                               f"{', '.join(names)}" for of, names in same.items())
                     + (f"; not timed: {', '.join(failed)}" if failed else ""))
    return "\n".join(lines)


def _run(module, x, grad, op):
    """The timed call: forward without grad, or forward + backward (returns output, dx)."""
    if op == "fwd":
        with torch.no_grad():
            return [module(x)[0]]
    xi = x.detach().requires_grad_(True)
    out = module(xi)[0]
    out.backward(grad)
    return [out.detach(), xi.grad]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" /
                                             "variants.json"))
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "tf32", "fp32"),
                        help="tf32: fp32 models with nn.GRU's fp32 flag (and so ours) on TF32; "
                             "fp32: the same flag on IEEE")
    parser.add_argument("--shapes", default=None,
                        help="comma-separated B:H pairs to time (default: "
                             + ",".join(f"{b}:{h}" for b, h in SHAPES) + ")")
    parser.add_argument("--kernel", default="fwd", choices=("fwd", "bwd"),
                        help="whose grid_sync config the variants change")
    parser.add_argument("--op", default="fwd", choices=("fwd", "fwdbwd"))
    parser.add_argument("--variant", action="append", default=None,
                        help="a name to time, repeatable (default: all); VARIANTS' order holds")
    args = parser.parse_args(argv)
    names = [name for name, _ in VARIANTS]
    wanted = args.variant or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {names}")
    if args.dtype != "fp32" and any("dots" in dict(VARIANTS)[name] for name in args.variant or []):
        parser.error("tf32x3 is how fp32 models reach IEEE accuracy: --dtype fp32 only")
    try:
        args.shapes = (SHAPES if args.shapes is None else
                       tuple(tuple(int(n) for n in pair.split(":")) for pair in args.shapes.split(",")))
    except ValueError:
        args.shapes = ((),)
    if any(len(shape) != 2 for shape in args.shapes):
        parser.error("--shapes takes comma-separated B:H pairs, e.g. 16:1024,64:512")
    if not torch.cuda.is_available():
        print("No CUDA GPU here: nothing was timed.")
        return 0
    from gru_triton import dispatch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32,
             "fp32": torch.float32}[args.dtype]
    records = []
    # cuDNN's RNN flag, which gru_triton follows: TF32 dots for fp32 models only under "tf32".
    with dispatch.rnn_fp32_precision("tf32" if args.dtype == "tf32" else "ieee"):
        _time_shapes(args, wanted, dtype, records)
    print("Fastest first, speed-up over the launcher's config:")
    print(summarize(records))
    return 0


def _time_shapes(args, wanted, dtype, records) -> None:
    """Times every shape's wanted variants into ``records``, rewriting ``args.out`` after each."""
    import triton
    import triton.testing

    import gru_triton
    from gru_triton import dispatch

    for B, H in args.shapes:
        torch.manual_seed(0)
        ref = torch.nn.GRU(H, H).cuda().to(dtype)
        ours = gru_triton.GRU(H, H).cuda().to(dtype)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(T, B, H, device="cuda", dtype=dtype)
        grad = torch.randn(T, B, H, device="cuda", dtype=dtype)
        expected = [t.double() for t in _run(ref, x, grad, args.op)]
        cudnn_ms = triton.testing.do_bench(functools.partial(_run, ref, x, grad, args.op),
                                           return_mode="median")
        device = torch.device("cuda")
        distinct = 0
        asked = [(name, overrides) for name, overrides in VARIANTS
                 if name in wanted and applies(overrides, args.kernel, args.dtype)]
        if "launcher" in wanted:
            # The launcher once more at the end: how far one kernel's time moved in the run.
            asked.append(("launcher, again", {}))
        # Each kernel is timed once a shape.
        same = same_kernels(asked, args.kernel, dtype, B, H, args.op, device)
        for name, overrides in asked:
            record = dict(B=B, H=H, T=T, dtype=args.dtype, kernel=args.kernel, op=args.op,
                          variant=name, cudnn_ms=cudnn_ms)
            if name in same:
                record.update(ms=None, max_rel_err=None, us_per_step=None, same_as=same[name])
                records.append(record)
                print(f"B={B} H={H} {name:18s} {same[name]}'s kernel: not timed", flush=True)
                continue
            if name == "launcher, again" and distinct < 2:
                continue  # nothing else was timed beside the launcher
            distinct += 1
            overrides = dict(overrides)
            dots = overrides.pop("dots", None)
            try:
                with (grid_sync_config(overrides, args.kernel), dispatch.force_path("grid_sync"),
                      dispatch.force_ieee_dots(dots)):
                    got = _run(ours, x, grad, args.op)
                    err = max(((g.double() - e).abs().max() / e.abs().max()).item()
                              for g, e in zip(got, expected, strict=True))
                    ms = (triton.testing.do_bench(functools.partial(_run, ours, x, grad, args.op),
                                                  return_mode="median")
                          if err <= TOLERANCE.get(args.dtype, 5e-2) else None)
            except Exception as exc:  # a variant that fails to compile or launch
                err, ms = None, None
                record["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            record.update(ms=ms, max_rel_err=err, us_per_step=None if ms is None else 1e3 * ms / T)
            records.append(record)
            step = "-" if ms is None else f"{1e3 * ms / T:.2f}"
            print(f"B={B} H={H} {name:18s} {step:>7s} us/step  (cuDNN {1e3 * cudnn_ms / T:.2f})"
                  f"  err {err}  {record.get('error', '')}", flush=True)
            # Rewritten after every variant: a time-boxed run keeps what it timed.
            out = pathlib.Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(dict(gpu=torch.cuda.get_device_name(),
                                           torch=torch.__version__, triton=triton.__version__,
                                           date=str(datetime.date.today()), records=records),
                                      indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
