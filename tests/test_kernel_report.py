"""Every shipped kernel configuration compiles for sm_80 and sm_90 without register spills,
fits shared memory, and uses tensor cores where the dtype allows (no GPU needed)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("triton.backends.nvidia")

from gru_triton import kernel_report  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    # The suite runs with TRITON_INTERPRET=1, which turns @triton.jit into the interpreter;
    # compiling for a GPU needs the real JIT functions, so the report runs in its own process.
    out = tmp_path_factory.mktemp("kernel-report")
    env = dict(os.environ, TRITON_INTERPRET="0")
    subprocess.run([sys.executable, "-m", "gru_triton.kernel_report", "--out", str(out)],
                   env=env, check=True, capture_output=True, text=True)
    return json.loads((out / "kernel-report.json").read_text())


def test_every_configuration_is_reported(report):
    # Two kernels, each compiled for an H that is a multiple of 16 and for one that is not.
    per_variant = {v: len(kernel_report.HIDDEN_SIZES) * len(kernel_report.PRECISIONS)
                   * len(kernel_report.ARCHS) * 2 * 2 for v in kernel_report.VARIANTS
                   if "resident" not in v}
    per_variant["grid_sync+lengths"] *= len(kernel_report.GRID_SYNC_BATCH_TILES)
    # With "tf32x3" dots grid_sync's tile stops at 32 rows where H is not a multiple of 16.
    per_variant["grid_sync+lengths"] -= len(kernel_report.HIDDEN_SIZES) * len(kernel_report.ARCHS) * 2
    # fp16/bf16's streamed forward from H = 1024, H a multiple of 16: its 16- and 64-row
    # tiles again, in 128-wide K chunks over 3 stages.
    per_variant["grid_sync+lengths"] += (sum(h >= 1024 for h in kernel_report.HIDDEN_SIZES)
                                         * 2 * 2 * len(kernel_report.ARCHS))
    rows_by_variant = {v: sum(r["variant"] == v for r in report) for v in per_variant}
    assert rows_by_variant == per_variant


def test_resident_rows_are_where_the_launcher_holds_w_hh_on_chip(report):
    """W_RESIDENT: tensor-core dots only, and the shared memory really holds the slice
    (three gates × BLOCK_H × all of K); on grid_sync in bf16 the forward keeps it at the
    issue's headline H = 1024 and the backward (three operands of rows) at H = 512, on both
    targets."""
    resident = [r for r in report if "resident" in r["variant"]]
    assert resident
    for r in resident:
        assert kernel_report.expects_tensor_cores(r) and r["dtype"] != "fp64", r
        itemsize = {"bf16": 2, "fp16": 2, "fp32": 4}[r["dtype"]]
        assert r["BLOCK_K"] >= r["H"] and r["shared_bytes"] >= 3 * r["BLOCK_H"] * r["BLOCK_K"] * itemsize
    for kernel, H in (("gru_fwd_kernel", 1024), ("gru_bwd_kernel", 512)):
        for arch in ("sm_80", "sm_90"):
            assert any(r["variant"] == "grid_sync+resident+lengths" and r["kernel"] == kernel
                       and r["H"] == H and r["dtype"] == "bf16" and r["arch"] == arch
                       for r in resident), (kernel, arch)


def test_resident_steps_read_what_the_cost_model_counts(report):
    """bench/cost_model.py charges a resident step the shared-memory reads of its dots
    (every warp that repeats the 16 × 16 gate products reads the slice and the row operands
    again; the stacked product reads them once per warpgroup on sm_90, the split ones once).
    The compiled kernels' ldmatrix and wgmma instructions say how much that is: within 3%,
    plus at most 48 KiB a step whatever K (the layout changes of the 16 × 16 gate and state
    tiles) for every resident grid_sync row of both kernels from K = 256, where the products
    dominate (below, those tiles do; per_step's 16 × 32 tiles are not modelled). Not the
    backward's TF32 rows: their slice is the dot's second operand untransposed, (K, 16) of
    32-bit values, which ldmatrix cannot transpose, so it is read by plain shared loads
    that the count does not see (it finds only the gradient rows there). Nor the 32-wide
    split forward: its x-side gate tile for the next step passes through shared memory to a
    layout every warp holds whole (bf16 K = 1024: 36 ldmatrix.x4 a warp beside the dots' 56,
    docs/performance.md), which the model of the dots does not count; the 32-wide split
    backward is held to it."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "bench"))
    import cost_model

    rows = [r for r in report if r["variant"].startswith("grid_sync+resident")
            and r["BLOCK_K"] >= 256
            and (r["BLOCK_H"] == 16 or r["kernel"] == "gru_bwd_kernel")
            and (r["kernel"] == "gru_fwd_kernel" or r["dtype"] in ("bf16", "fp16"))]
    assert any(r["BLOCK_H"] == 32 for r in rows)
    assert {r["kernel"] for r in rows} == {"gru_fwd_kernel", "gru_bwd_kernel"}
    for r in rows:
        cfg = dict(r, STACKED_GATES="stacked" in r["variant"])
        model = cost_model.smem_reads(cfg, r["H"], {"bf16": 2, "fp16": 2, "fp32": 4}[r["dtype"]],
                                      int(r["arch"][3:]),
                                      1 if r["kernel"] == "gru_fwd_kernel" else 3)
        assert model <= r["dot_smem_bytes"] <= 1.03 * model + 48 * 1024, (r, model)


def test_stacked_gates_rows(report):
    """The stacked forward compiles where the launcher would run it (H a multiple of 16, the
    padded slice in shared memory: bf16 up to H = 1024 on sm_90), with wgmma on sm_90; the
    headline bf16 H = 1024 forward, plain, runs 4 warps where H is a multiple of 16 and 8
    where it is not."""
    stacked = [r for r in report if "stacked" in r["variant"]]
    assert stacked and all(r["aligned"] and r["kernel"] == "gru_fwd_kernel" for r in stacked)
    for r in stacked:
        itemsize = {"bf16": 2, "fp16": 2, "fp32": 4}[r["dtype"]]
        assert r["shared_bytes"] >= 4 * r["BLOCK_H"] * r["BLOCK_K"] * itemsize
        # 8-wide chunks stack 32 rows, under a warpgroup's 64: mma.sync (test_8_wide_rows).
        assert r["wgmma"] == (r["arch"] == "sm_90" and r["BLOCK_H"] >= 16), r
    assert any(r["H"] == 1024 and r["dtype"] == "bf16" and r["arch"] == "sm_90" for r in stacked)
    headline = {(r["aligned"], r["H"]): r["num_warps"] for r in report
                if r["variant"] == "grid_sync+resident+lengths" and r["kernel"] == "gru_fwd_kernel"
                and r["dtype"] == "bf16" and r["arch"] == "sm_90" and r["BLOCK_K"] == 1024}
    assert headline == {(True, 1024): 4, (False, 1016): 8}


def test_tma_rows(report):
    """TMA_ROWS (bench/variants.py's "stacked, TMA rows"): compiled where the launch would
    take it, the stacked forward on sm_90 in 16- and 32-row tiles, 16-bit and TF32 (whose
    rows come rounded), with TMA copies and the two proxy fences of a grid-synchronised
    step; no other row copies by TMA or fences the proxies."""
    for variant, tiles in (("grid_sync+resident+stacked+tma+lengths", {16, 32}),
                           ("grid_sync+resident+stacked+8wide+tma+lengths", {16})):
        tma = [r for r in report if r["variant"] == variant]
        assert {(r["dtype"], r["dot_precision"], r["arch"], r["aligned"]) for r in tma} == {
            ("bf16", "-", "sm_90", True), ("fp16", "-", "sm_90", True),
            ("fp32", "tf32", "sm_90", True)}
        assert {r["BLOCK_B"] for r in tma if r["H"] == 1024} == tiles
        assert all(r["tma_copies"] and r["proxy_fences"] == 2 and (r["wgmma"] or r["mma"])
                   for r in tma), tma
    others = [r for r in report if "+tma+" not in r["variant"]]
    assert not any(r["tma_copies"] or r["proxy_fences"] for r in others)


def test_stacked_forward_without_licm(report):
    """NO_LICM (bench/variants.py's "... no LICM"): the stacked forward's time loop compiled
    without loop-invariant code motion holds no wgmma descriptors across steps, so every such
    row takes fewer registers than the same row with it, with the same shared memory and dot
    reads. At 4 warps, where the resident plan gives the stacked product 8, one warpgroup
    reads the slice a step where two did: at the headline bf16 K = 1024, 164 KiB against
    288 (sm_90)."""
    def key(r):
        return r["H"], r["dtype"], r["dot_precision"], r["arch"], r["BLOCK_B"], r["aligned"]

    pairs = (("grid_sync+resident+stacked+lengths", "grid_sync+resident+stacked+nolicm+lengths"),
             ("grid_sync+resident+stacked+lengths",
              "grid_sync+resident+stacked+4warps+nolicm+lengths"),
             ("grid_sync+resident+stacked+tma+lengths",
              "grid_sync+resident+stacked+tma+4warps+nolicm+lengths"))
    for hoisted, variant in pairs:
        by_key = {key(r): r for r in report if r["variant"] == hoisted}
        rows = [r for r in report if r["variant"] == variant]
        assert rows and all(r["kernel"] == "gru_fwd_kernel" for r in rows), variant
        for r in rows:
            other = by_key[key(r)]
            if "4warps" not in variant:
                assert r["num_warps"] == other["num_warps"], (r, other)
                assert r["registers"] < other["registers"], (r, other)
                assert (r["shared_bytes"], r["dot_smem_bytes"]) == (
                    other["shared_bytes"], other["dot_smem_bytes"]), (r, other)
                continue
            assert r["num_warps"] == 4 and other["num_warps"] == 8, (r, other)
            if r["arch"] == "sm_90" and r["BLOCK_K"] >= 512:
                assert r["dot_smem_bytes"] < other["dot_smem_bytes"], (r, other)
        headline = [(r["dot_smem_bytes"], by_key[key(r)]["dot_smem_bytes"]) for r in rows
                    if r["H"] == 1024 and r["dtype"] == "bf16" and r["arch"] == "sm_90"
                    and r["BLOCK_B"] == 16]
        if "4warps" in variant:
            assert headline == [(164 * 1024, 288 * 1024)], (variant, headline)
        else:
            assert len(headline) == 1, (variant, headline)


def test_8_wide_rows(report):
    """8-wide hidden chunks (bench/variants.py's "8 wide, stacked"): the stacked forward
    only, in 16-row tiles at the 4 warps resident_config keeps, on mma.sync (its 32 rows
    are under a warpgroup's 64); TF32's K = 1024 slice with h beside it fits an H100, not an
    A100, with pointer loads or TMA rows."""
    rows = [r for r in report if "+8wide+" in r["variant"]]
    assert rows and all(r["BLOCK_H"] == 8 and r["BLOCK_B"] == 16 and r["num_warps"] == 4
                        and r["mma"] and not r["wgmma"] for r in rows), rows
    tf32 = {(r["variant"], r["arch"]) for r in rows if r["dtype"] == "fp32" and r["H"] == 1024}
    assert tf32 == {("grid_sync+resident+stacked+8wide+lengths", "sm_90"),
                    ("grid_sync+resident+stacked+8wide+tma+lengths", "sm_90")}


def test_grid_sync_tiles_are_the_launchers(report):
    """The grid-synchronised rows are compiled with the tiles its launcher picks for B = 16,
    32 and 64 in each kernel (the forward's 16-row tile at 4 warps), including the
    whole-register-file budget that keeps the 64-row tile unspilled."""
    from gru_triton.kernels import gru as gru_kernels

    for kernel, forward in (("gru_fwd_kernel", True), ("gru_bwd_kernel", False)):
        for batch in (16, 32, 64):
            cfg = gru_kernels.recurrence_config(1024, "grid_sync", batch, forward=forward)
            rows = [r for r in report if r["variant"] == "grid_sync+lengths" and r["H"] == 1024
                    and r["kernel"] == kernel and r["BLOCK_B"] == cfg["BLOCK_B"]
                    and kernel_report._tensor_cores(r["dtype"], r["dot_precision"])]
            assert rows and all(r["BLOCK_H"] == cfg["BLOCK_H"] and r["maxnreg"] == cfg["maxnreg"]
                                and r["num_warps"] == cfg["num_warps"] for r in rows), cfg


def test_no_register_spills(report):
    spilled = [r for r in report if r["stack_bytes"] or r["local_bytes"]]
    assert not spilled, spilled


def test_shared_memory_fits(report):
    """Static plus dynamic (Triton's launch-time request) shared memory, per target."""
    for r in report:
        assert r["shared_bytes"] <= kernel_report.SHARED_BYTES_PER_BLOCK[int(r["arch"][3:])], r
    # The dynamic part is counted: every tensor-core kernel stages its dot operands there
    # (except tf32x3's at K = 16 on sm_80, whose 1 KiB is all there is of it compiled).
    assert all(r["shared_bytes"] > 1024 for r in report if (r["mma"] or r["wgmma"]) and not (
        r["dot_precision"] == "tf32x3" and r["BLOCK_K"] == 16 and r["arch"] == "sm_80"))


def test_one_program_per_sm_fits(report):
    """The grid-synchronised path puts one program on each SM and needs them all resident."""
    assert all(r["programs_per_sm"] >= 1 for r in report)
    grid_sync = [r for r in report if "grid_sync" in r["variant"]]
    assert grid_sync and all(r["programs_per_sm"] >= 1 for r in grid_sync)


def test_tensor_cores_for_bf16_fp16_fp64_and_tf32(report):
    for r in report:
        uses_tensor_cores = r["mma"] or r["wgmma"]
        assert uses_tensor_cores == kernel_report.expects_tensor_cores(r), r


def test_grid_barrier_only_where_grid_synchronised(report):
    for r in report:
        assert r["grid_barrier"] == ("grid_sync" in r["variant"]), r


def test_markdown_names_every_row(report):
    text = kernel_report.to_markdown(report)
    assert text.count("\n| gru_") == len(report)


def test_readme_states_the_reports_size(report):
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"{len(report)} configurations, no spills" in readme


def test_split_k_rows(report):
    """The split-K forms compile wherever the launcher would run the slice resident, a warp
    per K slice. At the headline bf16 H = 1024 the forward's dots read the slice and h from
    shared memory once a step (3 × 16 × 1024 + 16 × 1024 values, 128 KiB; 8 KiB more for
    the tiles' layout changes), where the plain form reads them once per warp: 4 warps where
    H is a multiple of 16, 8 where it is not, on both targets. The backward's split form
    holds that slice at all (the plain form's three operand rows do not fit beside it, so it
    has no H = 1024 row), an A100 included, and reads the slice and the three gate-gradient
    rows once (192 KiB), where the plain form at H = 512 reads its half-size ones once per
    warp (8)."""
    split = [r for r in report if "split_k" in r["variant"]]
    assert split and all(r["num_warps"] == r["SPLIT_K"] > 1 for r in split)

    def headline(variant, arch, aligned, kernel="gru_fwd_kernel", K=1024):
        rows = [r for r in report if r["variant"] == variant and r["kernel"] == kernel
                and r["dtype"] == "bf16" and r["arch"] == arch and r["aligned"] == aligned
                and r["BLOCK_K"] == K]
        assert len(rows) <= 1
        return rows[0] if rows else None

    once = (3 * 16 + 16) * 1024 * 2
    for arch in ("sm_80", "sm_90"):
        for aligned, warps in ((True, 4), (False, 8)):
            plain = headline("grid_sync+resident+lengths", arch, aligned)
            split_k = headline("grid_sync+resident+split_k+lengths", arch, aligned)
            assert split_k["num_warps"] == 8 and plain["num_warps"] == warps
            assert once <= split_k["dot_smem_bytes"] <= once + 8192, split_k
            assert plain["dot_smem_bytes"] >= warps * once, plain
        back = headline("grid_sync+resident+split_k+lengths", arch, True, "gru_bwd_kernel")
        assert back["shared_bytes"] <= kernel_report.SHARED_BYTES_PER_BLOCK[80], back
        assert back["dot_smem_bytes"] == (3 * 16 + 3 * 16) * 1024 * 2, back
        assert headline("grid_sync+resident+lengths", arch, True, "gru_bwd_kernel") is None
        # Where H is not a multiple of 16 the split backward spills at K = 1024: not planned.
        assert headline("grid_sync+resident+split_k+lengths", arch, False, "gru_bwd_kernel") is None
        half = headline("grid_sync+resident+lengths", arch, True, "gru_bwd_kernel", 512)
        half_split = headline("grid_sync+resident+split_k+lengths", arch, True,
                              "gru_bwd_kernel", 512)
        assert half_split["dot_smem_bytes"] == (3 * 16 + 3 * 16) * 512 * 2, half_split
        assert half["dot_smem_bytes"] >= 8 * half_split["dot_smem_bytes"], half
    # K pieces: at bf16 H = 2048 both kernels hold the slice on an H100 (not an A100, and
    # not where H is not a multiple of 16), h staged half of K at a time, and still read
    # the slice and their row operands from shared memory once a step.
    for kernel, operands in (("gru_fwd_kernel", 1), ("gru_bwd_kernel", 3)):
        once = (3 * 16 + operands * 16) * 2048 * 2
        row = headline("grid_sync+resident+split_k+lengths", "sm_90", True, kernel, 2048)
        assert row["K_PIECES"] == 2 and row["H"] == 2048, row
        assert once <= row["dot_smem_bytes"] <= once + 8192, row
        assert headline("grid_sync+resident+split_k+lengths", "sm_80", True, kernel, 2048) is None
        assert headline("grid_sync+resident+split_k+lengths", "sm_90", False, kernel, 2048) is None
        tf32 = [r for r in split if r["kernel"] == kernel and r["dot_precision"] == "tf32"
                and r["BLOCK_K"] == 1024 and r["BLOCK_H"] == 16]
        assert tf32 and all(r["K_PIECES"] == 2 and r["arch"] == "sm_90" for r in tf32), tf32
    assert all(r.get("K_PIECES", 1) == 1 for r in split if r["BLOCK_K"] * {"bf16": 2, "fp16": 2,
               "fp32": 4}[r["dtype"]] < 4096)


def test_tf32x3_rows(report):
    """IEEE fp32 accuracy on tensor cores ("tf32x3": three TF32 products per dot) compiles
    to tensor-core instructions on both targets, and its resident rows are the split-K form
    only, where it does not spill: 16-wide chunks, H a multiple of 16, K up to 1024 forward
    (there in four K pieces, on sm_90) and 256 backward (the plain resident form spills
    kilobytes from K = 256). The headline
    IEEE shapes that fit keep W_hh on chip: forward H = 512, backward H = 256, on sm_80 and
    sm_90."""
    x3 = [r for r in report if r["dot_precision"] == "tf32x3"]
    assert x3 and all(r["mma"] or r["wgmma"] for r in x3)
    resident = [r for r in x3 if "resident" in r["variant"]]
    for r in resident:
        assert r["aligned"] and r["BLOCK_H"] == 16, r
        assert r["BLOCK_K"] <= (1024 if r["kernel"] == "gru_fwd_kernel" else 256), r
        assert r.get("SPLIT_K", 1) > 1 or r["BLOCK_K"] == 16, r
        # The forward's K = 1024 slice, with h staged in quarters: an H100's shared memory.
        assert (r.get("K_PIECES", 1) == 4) == (r["BLOCK_K"] == 1024), r
        assert r["BLOCK_K"] < 1024 or r["arch"] == "sm_90", r
    assert any(r["BLOCK_K"] == 1024 for r in resident)
    for kernel, K in (("gru_fwd_kernel", 512), ("gru_bwd_kernel", 256)):
        for arch in ("sm_80", "sm_90"):
            assert any(r["kernel"] == kernel and r["BLOCK_K"] == K and r["arch"] == arch
                       and r["variant"] == "grid_sync+resident+split_k+lengths"
                       for r in resident), (kernel, arch)
    assert not [r for r in x3 if r["variant"] == "grid_sync+lengths" and not r["aligned"]
                and r["BLOCK_B"] > 32]


def test_a_subset_names_known_variants():
    """--variants and --precisions compile a subset (to check another triton release
    quickly, docs/performance.md); a misspelt one is refused before anything compiles."""
    with pytest.raises(SystemExit) as refused:
        kernel_report.main(["--variants", "grid_sync+resident+split_k", "--out", "/nonexistent"])
    assert refused.value.code == 2
    with pytest.raises(SystemExit) as refused:
        kernel_report.main(["--precisions", "fp32:tf32x6", "--out", "/nonexistent"])
    assert refused.value.code == 2
