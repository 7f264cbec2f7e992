"""µs per step of a grid_sync step's exchange alone: every program publishes its slice of h_t
and reads all of it back, with no product and no gate math, under two protocols.

    python bench/exchange_bench.py [--results-root bench/results]

Why: between two products a grid_sync step stores its (16 × 16) tile of h_t, meets the others
at the grid barrier (a releasing atomic, then acquiring reads of the counter) and reads
h_t's rows, (16, H), from L2: at least three round trips in a row, after the barrier's fence
waits for the store. bench/barrier_bench.py times the barrier alone (0.9 µs at 64 programs on
the H200); this times what the issue's 2 µs per step at H = 1024 cannot go below while the
step is built this way, and what a protocol without the barrier would take instead:

- "barrier": what gru_fwd_kernel does now. Store the tile (16-bit), ``_grid_barrier``, load
  the rows with ``.cg``.
- "flagged": each 8-byte word carries two 16-bit values and the step that wrote them (one
  aligned 64-bit store, which a reader sees whole or not at all), so the data is its own
  signal: no fence, no atomic, no counter. A reader loads the rows (twice the bytes) and
  loads them again while any word is from an older step. NCCL's LL protocol works this way.
  (The GRU forward had this handover as a form of its own, FLAGGED_H, from ac49bc4: on the
  H200 it was slower than the barrier's split forward at three of the four shapes timed, and
  it was removed; docs/performance.md.)
- "flagged, probe": the same, but it first spins on one word per publishing program (row 0,
  the first word of each 16-unit chunk: H / 16 words), so a reader that arrives early
  re-reads a few sectors, not the whole (16, H) tile.
- "barrier, rotated": "barrier", but each program reads the rows starting at its own chunk
  (columns j0, j0 + 1, ..., wrapping around), so that right after the barrier the programs'
  first requests go to different lines instead of all to column 0's. The H200 measured the
  exchange growing with the bytes each program reads (1.5 µs at 8 KiB, 3.7 at 32, 5.4 at
  64), far slower than one SM's share of L2 bandwidth: if the programs queue on the same
  lines, this spreads them.
- "barrier, own tile": "barrier", but each program reads back only its own (16 × 16) tile:
  the store, the barrier and the check without the read of the other programs' values, so
  "barrier" minus this is what that read costs in place.
- "barrier, TMA": "barrier", but the rows are read by the tensor memory accelerator (a
  host-side ``TensorDescriptor`` over h_t, one bulk copy of the (16, H) tile into shared
  memory, issued by one thread and awaited on an mbarrier) instead of 8 vectorised loads
  per thread. If the read is slow because of how many loads an SM keeps in flight, not
  because of L2, this is faster. TMA reads through the async proxy, so each program fences
  the proxies (``kernels.gru._proxy_fence``) after its stores and after the barrier's
  acquire, as gru_fwd_kernel's TMA_ROWS does. sm_90 only; elsewhere the descriptor's load
  is plain loads and the fence is left out.
- "barrier, narrow": "barrier" in narrow batch tiles (the kernels' TILE_ROWS, as
  ``kernels.gru._narrowed`` plans them for this GPU's SMs): each tile covers fewer of the
  16 rows, in twice the tiles or more, so each program reads fewer rows of h_t (B 16
  H 1024: 8 rows, 128 programs). Not timed where the grid cannot narrow.

Each step's written values depend on the sum of the read's mismatches, so a step cannot start
before the last one's read ends, as in the recurrence (whose next h_t depends on the product);
that sum, over all steps, must be 0 for the record to stand (``errors``). Grid (B / 16,
H / 16), 8 warps, one cooperative launch of ``STEPS`` steps; the launch with no steps is
subtracted. The programs are not forced one per SM as the recurrence kernels' are; with a
grid no larger than the SM count the block scheduler spreads them anyway.

Without a GPU nothing is timed: it says so and exits 0.
"""

import argparse
import os
import pathlib
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the triton import

import triton  # noqa: E402
import triton.language as tl  # noqa: E402
import triton.testing  # noqa: E402
from triton.tools.tensor_descriptor import TensorDescriptor  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import harness  # noqa: E402
from gru_triton.kernels.gru import (  # noqa: E402
    _batch_tile,
    _grid_barrier,
    _k_order,
    _narrowed,
    _proxy_fence,
    _tma_copies,
)

STEPS = 2000
NUM_WARPS = 8
BLOCK_B, BLOCK_H = 16, 16
PROTOCOLS = ("barrier", "flagged", "flagged, probe", "barrier, rotated", "barrier, own tile",
             "barrier, narrow", "barrier, TMA")
# (B, H): grid_sync's forward grids, B / 16 tiles × H / 16 chunks, up to 128 programs.
SHAPES = ((16, 256), (16, 512), (16, 1024), (16, 2048), (64, 256), (64, 512))


@triton.jit
def _pack_h_words(value, flag):
    """value (R, C) 16-bit, C even; flag a scalar int: (R, C // 2) int64 words, word i holding
    value[:, 2i] in bits 0-15, value[:, 2i + 1] in bits 16-31 (the two values' own layout in
    memory, little-endian) and the flag in bits 32-63. One aligned 8-byte store writes a
    word, and a reader sees all of it or none: the flag says which step's values it holds."""
    lo, hi = tl.split(tl.reshape(value, (value.shape[0], value.shape[1] // 2, 2)))
    lo = lo.to(tl.uint16, bitcast=True).to(tl.uint64)
    hi = hi.to(tl.uint16, bitcast=True).to(tl.uint64)
    stamp = tl.full(lo.shape, flag, tl.uint64) << 32
    return (stamp | (hi << 16) | lo).to(tl.int64, bitcast=True)


@triton.jit
def _unpack_h_words(words, dtype: tl.constexpr):
    """``_pack_h_words`` undone: (R, 2C) values of the 16-bit ``dtype`` from (R, C) words."""
    w = words.to(tl.uint64, bitcast=True)
    lo = (w & 0xFFFF).to(tl.uint16).to(dtype, bitcast=True)
    hi = ((w >> 16) & 0xFFFF).to(tl.uint16).to(dtype, bitcast=True)
    return tl.reshape(tl.join(lo, hi), (w.shape[0], 2 * w.shape[1]))


@triton.jit
def _oldest_flag(words, mask):
    """The smallest flag among the words under ``mask`` (int32 max where there are none)."""
    return tl.min(tl.ravel(tl.where(mask, (words >> 32).to(tl.int32), 2147483647)))


@triton.jit
def _exchange_kernel(hs_ptr, words_ptr, sync_ptr, errors_ptr, hs_desc, B, H, n_steps,
                     FLAGGED: tl.constexpr, PROBE: tl.constexpr, ROTATED: tl.constexpr,
                     OWN_TILE: tl.constexpr, BLOCK_B: tl.constexpr,
                     BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, TILE_ROWS: tl.constexpr = 0,
                     TMA: tl.constexpr = False, PROXY_FENCE: tl.constexpr = False):
    """``n_steps`` exchanges. hs: (2, B, H) bf16 (barrier); words: (2, B, H // 2) int64
    (flagged), zeros at launch; sync: (B / BLOCK_B,) int32 zeros; errors: (1,) int32, gets
    the number of values read wrong. Step s writes (s + 3b + j) % 256 at (b, j) to slot s % 2,
    plus the number of wrong values its program read the step before. TILE_ROWS (barrier
    only): the rows a tile covers, as in the recurrence kernels (0: BLOCK_B). TMA (barrier,
    16-row tiles): the rows are read through hs_desc, a descriptor over hs as (2 * B, H)
    in (BLOCK_B, BLOCK_K) blocks; PROXY_FENCE: with the proxy fences TMA needs on a GPU
    (the interpreter runs no inline PTX)."""
    mask_b, rows = _batch_tile(B, BLOCK_B, TILE_ROWS)
    j0 = tl.program_id(1) * BLOCK_H
    offs_j = j0 + tl.arange(0, BLOCK_H)
    mine = mask_b[:, None] & (offs_j < H)[None, :]
    # The columns read back: all of h (from column 0, or from this program's own chunk), or
    # this program's own tile.
    if OWN_TILE:
        offs_k = offs_j
    elif ROTATED:
        offs_k = _k_order(j0, BLOCK_K, True)  # the walk the kernels' ROTATE_K takes
    else:
        offs_k = tl.arange(0, BLOCK_K)
    mask_k = mask_b[:, None] & (offs_k < H)[None, :]
    half = H // 2
    words_j = j0 // 2 + tl.arange(0, BLOCK_H // 2)
    words_k = tl.arange(0, BLOCK_K // 2)  # flagged: from column 0, all of h
    mask_w = mask_b[:, None] & (words_k < half)[None, :]
    # Probe: row 0 of this tile, the first word of every chunk of BLOCK_H units.
    probe_k = tl.arange(0, BLOCK_K // BLOCK_H) * (BLOCK_H // 2)
    mask_probe = (probe_k < half) & (tl.program_id(0) * BLOCK_B + 0 * probe_k < B)
    wrong = 0
    total = 0
    for step in range(n_steps):
        slot = step % 2
        value = ((step + 3 * rows[:, None] + offs_j[None, :] + wrong) % 256).to(tl.float32)
        value = value.to(tl.bfloat16)
        if FLAGGED:
            base = words_ptr + (slot * B + rows[:, None].to(tl.int64)) * half
            tl.store(base + words_j[None, :], _pack_h_words(value, step + 1),
                     mask=mask_b[:, None] & (words_j < half)[None, :])
            if PROBE:
                p_probe = words_ptr + (slot * B + tl.program_id(0) * BLOCK_B) * half + probe_k
                seen = tl.load(p_probe, mask=mask_probe, other=0, volatile=True)
                while _oldest_flag(seen, mask_probe) < step + 1:
                    seen = tl.load(p_probe, mask=mask_probe, other=0, volatile=True)
            words = tl.load(base + words_k[None, :], mask=mask_w, other=0, volatile=True)
            while _oldest_flag(words, mask_w) < step + 1:
                words = tl.load(base + words_k[None, :], mask=mask_w, other=0, volatile=True)
            h = _unpack_h_words(words, tl.bfloat16)
        else:
            base = hs_ptr + (slot * B + rows[:, None].to(tl.int64)) * H
            tl.store(base + offs_j[None, :], value, mask=mine)
            if TMA:
                # Inline PTX with side effects keeps its place among the stores, the barrier's
                # atomics and the copy, which are side-effecting PTX too.
                if PROXY_FENCE:
                    _proxy_fence()
                _grid_barrier(sync_ptr, step + 1)
                if PROXY_FENCE:
                    _proxy_fence()
                h = hs_desc.load([slot * B + tl.program_id(0) * BLOCK_B, 0])
            else:
                _grid_barrier(sync_ptr, step + 1)
                h = tl.load(base + offs_k[None, :], mask=mask_k, other=0.0, cache_modifier=".cg")
        expected = ((step + 3 * rows[:, None] + offs_k[None, :]) % 256).to(tl.float32)
        wrong = tl.sum(tl.sum((mask_k & (h.to(tl.float32) != expected)).to(tl.int32), axis=1))
        total += wrong
    tl.atomic_add(errors_ptr, total)


def narrow_rows(B: int, H: int, sms: int | None) -> int:
    """The rows a "barrier, narrow" tile covers: the recurrence launchers' narrowing
    (``kernels.gru._narrowed``) of a 16-row tile of 16-wide chunks; 16 where it does not
    narrow (or the SM count is unknown)."""
    cfg = _narrowed(dict(BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H, NARROW_TILES=True), B, H, sms)
    return cfg.get("TILE_ROWS", BLOCK_B)


def exchange(protocol: str, B: int, H: int, n_steps: int, device, start_flag: int = 0,
             columns: int | None = None, tile_rows: int | None = None) -> int:
    """One launch of ``n_steps`` exchanges among (cdiv(B, 16), H / 16) programs; returns the
    number of values read wrong (0 unless the protocol is broken). H a multiple of 16.
    start_flag: the flag the flagged protocols' words hold at launch (0, older than any
    step); a larger one makes readers take words not yet written, which the count must show.
    columns (flagged only, with a start_flag past every step): launch only that many of each
    tile's H / 16 programs, so the other chunks' words are never written and every reader
    takes them (on a GPU, where programs run at once, a word not yet written is otherwise
    a race the writer usually wins). tile_rows ("barrier, narrow" only): the rows a tile
    covers; by default ``narrow_rows`` for this device's SMs."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if H % BLOCK_H:
        raise ValueError(f"H must be a multiple of {BLOCK_H}, got {H}")
    if columns is not None and (protocol.startswith("barrier") or start_flag <= n_steps
                                or not 1 <= columns <= H // BLOCK_H):
        # Under the barrier the missing programs never arrive; with an older flag their
        # words are awaited forever.
        raise ValueError("columns: flagged protocols only, with start_flag > n_steps and "
                         f"1 <= columns <= {H // BLOCK_H}")
    rows = BLOCK_B
    if protocol == "barrier, narrow":
        rows = tile_rows or narrow_rows(B, H, _sms(device))
    tiles = triton.cdiv(B, rows)
    hs = torch.zeros(2, B, H, dtype=torch.bfloat16, device=device)
    block_k = triton.next_power_of_2(H)
    hs_desc = TensorDescriptor.from_tensor(hs.view(2 * B, H), [BLOCK_B, block_k])
    words = torch.full((2, B, H // 2), start_flag << 32, dtype=torch.int64, device=device)
    sync = torch.zeros(tiles, dtype=torch.int32, device=device)
    errors = torch.zeros(1, dtype=torch.int32, device=device)
    extra = {"launch_cooperative_grid": True} if device.type == "cuda" else {}
    _exchange_kernel[(tiles, columns or H // BLOCK_H)](
        hs, words, sync, errors, hs_desc, B, H, n_steps, FLAGGED=protocol.startswith("flagged"),
        PROBE=protocol == "flagged, probe", ROTATED=protocol == "barrier, rotated",
        OWN_TILE=protocol == "barrier, own tile", BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H,
        BLOCK_K=block_k, TILE_ROWS=0 if rows == BLOCK_B else rows,
        TMA=protocol == "barrier, TMA", PROXY_FENCE=(protocol == "barrier, TMA" and device.type == "cuda"
                                 and _tma_copies(device)),
        num_warps=NUM_WARPS, **extra)
    return int(errors.item())


def ptx(protocol: str, H: int, arch: int = 90) -> str:
    """The PTX of ``protocol``'s exchange kernel at B 16 and hidden size H (a multiple of
    16), compiled for ``arch`` ahead of time, as a GPU of that architecture would launch it (the proxy
    fences where it has TMA): what the tests read where no GPU can run it. Needs the real
    JIT (TRITON_INTERPRET=0)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    block_k = triton.next_power_of_2(H)
    signature = {"hs_ptr": "*bf16", "words_ptr": "*i64", "sync_ptr": "*i32", "errors_ptr": "*i32",
                 "hs_desc": f"tensordesc<bf16[{BLOCK_B}, {block_k}]>", "B": "i32", "H": "i32",
                 "n_steps": "i32"}
    constexprs = dict(FLAGGED=protocol.startswith("flagged"), PROBE=protocol == "flagged, probe",
                      ROTATED=protocol == "barrier, rotated", OWN_TILE=protocol == "barrier, own tile",
                      BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H, BLOCK_K=block_k, TILE_ROWS=0,
                      TMA=protocol == "barrier, TMA",
                      PROXY_FENCE=protocol == "barrier, TMA" and arch >= 90)
    signature.update(dict.fromkeys(constexprs, "constexpr"))
    # As the launch specializes them: 16-byte aligned pointers, and B and H multiples of 16.
    attrs = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(_exchange_kernel.arg_names)
             if name in ("B", "H") or signature.get(name, "").startswith("*")}
    compiled = triton.compile(ASTSource(fn=_exchange_kernel, signature=signature,
                                        constexprs=constexprs, attrs=attrs),
                              target=GPUTarget("cuda", arch, 32), options={"num_warps": NUM_WARPS})
    return compiled.asm["ptx"]


def _sms(device) -> int | None:
    return (torch.cuda.get_device_properties(device).multi_processor_count
            if device.type == "cuda" else None)


def us_per_step(protocol: str, B: int, H: int, device) -> float:
    def timed(n):
        return triton.testing.do_bench(lambda: exchange(protocol, B, H, n, device),
                                       return_mode="median")
    return 1e3 * (timed(STEPS) - timed(0)) / STEPS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-root", default=str(pathlib.Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA GPU here: nothing was timed (the programs wait on one another, which the "
              "interpreter, running them one after another, cannot do).")
        return 0
    device = torch.device("cuda")
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    records = []
    for B, H in SHAPES:
        programs = triton.cdiv(B, BLOCK_B) * (H // BLOCK_H)
        if programs > sms:
            continue
        for protocol in PROTOCOLS:
            rows = narrow_rows(B, H, sms) if protocol == "barrier, narrow" else BLOCK_B
            if protocol == "barrier, narrow" and rows == BLOCK_B:
                continue  # the grid cannot narrow: "barrier" itself
            wrong = exchange(protocol, B, H, 50, device)
            us = None if wrong else us_per_step(protocol, B, H, device)
            records.append(dict(protocol=protocol, B=B, H=H, rows=rows,
                                programs=triton.cdiv(B, rows) * (H // BLOCK_H), errors=wrong,
                                us_per_step=us))
            print(records[-1], flush=True)
    path, where = harness.write_probe(args.results_root, "exchange.json",
                                      steps_per_launch=STEPS, num_warps=NUM_WARPS,
                                      records=records)
    print(f"\nA grid_sync step's exchange alone on {where}, µs per step\n")
    print("| B | H | programs | " + " | ".join(PROTOCOLS) + " |")
    print("|---|---|---|" + "---|" * len(PROTOCOLS))
    for B, H in dict.fromkeys((r["B"], r["H"]) for r in records):
        cells = []
        for protocol in PROTOCOLS:
            r = next((r for r in records if (r["B"], r["H"], r["protocol"]) == (B, H, protocol)),
                     None)
            cells.append("-" if r is None else "wrong values" if r["errors"]
                         else f"{r['us_per_step']:.2f}"
                         + (f" ({r['rows']} rows, {r['programs']} programs)"
                            if r["rows"] != BLOCK_B else ""))
        print(f"| {B} | {H} | {triton.cdiv(B, BLOCK_B) * (H // BLOCK_H)} | "
              + " | ".join(cells) + " |")
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
