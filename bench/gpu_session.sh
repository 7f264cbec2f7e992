#!/usr/bin/env bash
# What a lent GPU is spent on, in time-boxed stages. The device tool runs one command for at
# most 600 s and a task gets 15 minutes of device time in all, the machine's start (a minute
# or more) included; the machine has torch and triton but no network, so each call installs
# afresh and must finish inside its limit. So the default is one call of 560 s (with the
# tool's timeout_s at 600 and a start of up to ~3 minutes, inside the 15), the most needed
# stages first, each capped so that the later ones still run:
#
#   bash bench/gpu_session.sh      # gridsync suite variants variants-tf32 variants-fp32 \
#                                  # variants-bwd auto forms memory bidirectional breakdown \
#                                  # bidirectional-training
#   bash bench/gpu_session.sh dispatch pytest-bench     # another lease's call
#
# Stages:
#   gridsync      the grid-synchronised path's CUDA tests alone (a broken barrier hangs), then
#                 the grid barrier timed alone (bench/barrier_bench.py), and a step's exchange
#                 of h alone under the barrier and under flags carried in the data
#                 (bench/exchange_bench.py)
#   suite         the whole test suite natively on CUDA, in parallel (pytest-xdist), less the
#                 kernel report (it compiles for GPUs ahead of time and needs none)
#   cuda          tests/test_cuda.py: the GPU-only checks, serially
#   bench         bench/bench_gru.py --quick, time-boxed; the grid_sync path is timed only if
#                 its native test passed in this same call
#   variants      bench/variants.py: grid_sync under other tile configurations (narrow
#                 batch tiles, both kernels; h read by TMA for the stacked product; bf16
#                 B 64 H 1024 in 32-row tiles with the stacked slice on chip)
#   variants-bwd  the same for the backward kernel, timing forward + backward
#   variants-tf32 the split-K forms against the launcher with TF32 dots (fp32 models), both
#                 kernels: at H 1024 their slice stays on chip in two K pieces; the stacked
#                 product and narrow tiles at H 256-512
#   variants-fp32 fp32 models under the IEEE flag: "tf32x3" dots (three TF32 products, IEEE's
#                 accuracy) against the IEEE launcher and cuDNN, forward and forward + backward
#   breakdown     bench/step_breakdown.py: the recurrence kernels alone, with and without their
#                 W_hh product (lengths of 0), so a step's product share is measured in place
#   dispatch      bench_gru.py over the shapes where the dispatcher's table chooses a path
#   auto          bench_gru.py: auto against cuDNN around the table's grid_sync rows
#   forms         bench_gru.py: grid_sync's 16-bit forms against cuDNN, H 256-2048
#   bidirectional bench_gru.py: 2-layer bidirectional inference, auto against cuDNN, where a
#                 layer's two directions run at once (both grid_sync grids fit) and where not,
#                 with them at once (the default) and one after the other
#   bidirectional-training  the same stacks' training step, the directions one after the
#                 other (the default) and at once (dispatch.directions_at_once("training"),
#                 opt-in until measured; its bit-equality test is in the suite)
#   memory        tests/test_memory.py natively (the caching allocator's own peak), then
#                 bench/memory_breakdown.py: what a training step holds at its peak, ours
#                 and cuDNN's, B 16/64, H 256/1024, with C++ frames (memory-cpp.json), and
#                 the 2-layer bidirectional case (memory-bidirectional.json)
#   pytest-bench  pytest bench/ --benchmark-only
#
# Output goes to $OUT (the device tool's folder; bench/results otherwise): session.log
# (every stage's output, versions, nvidia-smi), <gpu>-<date>/results.{json,md,png},
# <gpu>-<date>/barrier.json and exchange.json, pytest-benchmark.json, variants*.json,
# step-breakdown*.json and memory-*.json. The device tool brings back at most 8 files, so under $OUT they are
# packed at the end into session.tar.gz (bench/pack_results.sh), session.log kept beside it;
# a call cut off before the end leaves them unpacked. GPU_SESSION_SECONDS (default 560)
# bounds the whole call, SUITE_SECONDS (default 120: the suite took 85 s on the H200) the suite, AUTO_SECONDS (default 90)
# when auto starts its last case, and BENCH_IMPLS picks what bench times besides cuDNN.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/results}"
mkdir -p "$out"
log="$out/session.log"
deadline=$((SECONDS + ${GPU_SESSION_SECONDS:-560}))
stages=("$@")
# Most needed first: correctness, then the levers not yet timed, those aimed at the largest
# gaps to the issue's targets first: 16 bits (TMA rows, narrow tiles, the 32-row stacked
# forward), TF32, nn.GRU's fp32 default (first the 8-wide stacked forward, its K = 1024
# slice whole), IEEE fp32's pipelined tf32x3 where cuDNN's IEEE GRU is slowest, and the
# backward's pipelined chunks at B 64 H 2048, the one shape that cannot reach 2x either
# way. Then auto and the forms against cuDNN, memory; then the bidirectional layers
# (their correctness is in the suite) and the diagnosis. On the H200 (2026-12-04) a
# variants run took 10-30 s; the whole list may not fit one call, and what is cut is last.
[ ${#stages[@]} -eq 0 ] && stages=(gridsync suite variants variants-tf32 variants-fp32
                                  variants-bwd auto forms memory bidirectional breakdown
                                  bidirectional-training)
grid_ok=0

say() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$log"; }
left() { echo $((deadline - SECONDS)); }
# run CAP_SECONDS CMD...: at most CAP seconds and never past the deadline; output to the log.
run() {
    local cap=$1
    shift
    local budget
    budget=$(left)
    [ "$cap" -lt "$budget" ] && budget=$cap
    if [ "$budget" -le 10 ]; then
        say "skipped (no time left): $*"
        return 124
    fi
    say "run (<= ${budget}s): $*"
    timeout -k 10 "$budget" "$@" 2>&1 | tee -a "$log" | tail -n 25
    local rc=${PIPESTATUS[0]}
    say "exit $rc: $*"
    return "$rc"
}
# A test that hangs (a kernel spinning at a barrier) ends the pytest run with stack traces
# instead of eating the call: the thread method works while the main thread waits on CUDA.
pytest_timeout=(-p timeout --timeout 150 --timeout-method thread)

say "stages: ${stages[*]}"
nvidia-smi >>"$log" 2>&1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" 2>&1 | tee -a "$log"
python3 -m pip install --no-build-isolation --no-deps -e . >>"$log" 2>&1 || say "install failed"
# pip may belong to another interpreter than python3: check the package imports as the tests will.
python3 -c "import gru_triton.kernels" 2>&1 | tee -a "$log"

# run_grid_sync_tests: the barrier's native tests, serially; on success grid_sync may be timed.
run_grid_sync_tests() {
    [ "$grid_ok" = 1 ] && return 0
    if run 120 python3 -m pytest -q -rA "${pytest_timeout[@]}" tests/test_cuda.py -k grid_sync; then
        grid_ok=1
    else
        say "grid_sync is not timed: its native test did not pass in this call"
        return 1
    fi
}

for stage in "${stages[@]}"; do
    case "$stage" in
    gridsync)
        # The cost model's least certain figure: µs per grid barrier (~10 s); then a step's
        # exchange alone, barrier against flags carried in the data, and in narrow tiles
        # (~30 s).
        run_grid_sync_tests && run 60 python3 bench/barrier_bench.py --results-root "$out" \
            && run 55 python3 bench/exchange_bench.py --results-root "$out"
        ;;
    suite)
        # -v logs each result as it lands, so a suite cut off by its cap still says what passed.
        # The suite runs the grid_sync tests too: if it passes, grid_sync may be timed.
        run "${SUITE_SECONDS:-120}" python3 -m pytest -v -rfE -n 12 "${pytest_timeout[@]}" tests \
            --ignore=tests/test_kernel_report.py && grid_ok=1
        ;;
    cuda)
        run 240 python3 -m pytest -q -rfE "${pytest_timeout[@]}" tests/test_cuda.py
        ;;
    bench)
        impls="cudnn,${BENCH_IMPLS:-gru_triton,gru_triton/persistent,gru_triton/per_step}"
        run_grid_sync_tests && impls="$impls,gru_triton/grid_sync"
        # Leave 40 s for the last case to finish and the results to be written.
        run 600 python3 bench/bench_gru.py --quick --results-root "$out" --impls "$impls" \
            --budget-s $(($(left) - 40))
        # The issue's targets and the fastest path per shape, from what was measured.
        for results in "$out"/*/results.json; do
            [ -f "$results" ] && python3 bench/targets.py "$results" 2>&1 | tee -a "$log"
        done
        ;;
    variants)
        # First the stacked product at 4 warps, where the launcher runs it at 8 (bf16
        # K 1024): one warpgroup reads the slice from shared memory once a step instead of
        # two (164 against 288 KiB). Under this image's triton (3.6.0) 4 warps spilled
        # 352-712 bytes in the step loop; with the loop's invariant code left in it (NO_LICM)
        # they compile without spills (229-231 registers). "stacked, no LICM" is the
        # launcher's 8-warp form so compiled (135 registers against 254, the step loop as
        # long): what NO_LICM alone does.
        run_grid_sync_tests && run 45 python3 bench/variants.py --out "$out/variants-4warps.json" \
            --shapes 16:1024,64:512 --variant launcher --variant "stacked, 4 warps, no LICM" \
            --variant "stacked, TMA rows, 4 warps, no LICM" --variant "stacked, no LICM"
        # Narrow tiles, both kernels: each program reads half the rows (or fewer) of
        # h_t a step, in twice the programs; the H200's exchange alone took 3.71 us/step with
        # 64 programs reading 32 KiB each and 2.43 with 128 reading 16 KiB (exchange.json).
        run_grid_sync_tests && run 50 python3 bench/variants.py --out "$out/variants-narrow.json" \
            --shapes 16:1024,16:512,64:256 --variant launcher --variant "narrow tiles"
        run_grid_sync_tests && run 50 python3 bench/variants.py --kernel bwd --op fwdbwd \
            --out "$out/variants-narrow-bwd.json" --shapes 16:1024,64:256 --variant launcher \
            --variant "narrow tiles"
        # h_{t-1} read by one TMA copy into shared memory for the stacked product (TMA_ROWS),
        # where the launcher stacks; the exchange bench's "barrier, TMA" times the read alone.
        # And in 8-wide chunks (twice the programs at B 16, half the slice each).
        run_grid_sync_tests && run 50 python3 bench/variants.py --out "$out/variants-tma.json" \
            --shapes 16:1024,16:512,64:512 --variant launcher --variant "stacked, TMA rows" \
            --variant "8 wide, stacked, TMA rows" --variant "8 wide, stacked, TMA rows, 2 warps"
        # Where the 16-bit forward still misses 3x with a grid that could hold W_hh: B 64 at
        # H 1024, whose launcher streams it in a 64-row tile (9.9 us/step against cuDNN's
        # 20; deeper pipelines, wider chunks and the 32-wide split slice did not beat that,
        # bench/results/nvidia-h200-2026-12-04-tf32-rounding/variants.json). In 32-row tiles
        # the stacked slice stays on chip, 128 programs on 132 SMs. Its pointer loads spill
        # under triton 3.6.0 unless the step loop keeps its invariant code (no LICM).
        run_grid_sync_tests && run 60 python3 bench/variants.py --out "$out/variants.json" \
            --shapes 64:1024 --variant launcher --variant "32 rows, stacked, no LICM" \
            --variant "32 rows, stacked, TMA rows" \
            --variant "32 rows, stacked, TMA rows, 4 warps, no LICM" \
            --variant "32 rows, stacked, rotated K, no LICM"
        # Each program reading h from its own chunk on (the exchange bench's "barrier,
        # rotated"), where the launcher runs the stacked slice.
        run_grid_sync_tests && run 40 python3 bench/variants.py \
            --out "$out/variants-rotated.json" --shapes 16:1024,64:512 --variant launcher \
            --variant "rotated K, no LICM"
        ;;
    variants-bwd)
        # B 64 at H 2048, the one 16-bit shape where the backward still streams W_hh (no
        # grid of 16-row tiles fits 132 SMs): forward + backward 85.0 us/step against
        # cuDNN's 52.3 (forms/), its 64-row tile walking K = 3H in 32-wide chunks, one L2
        # round trip after another. The forward's 128-wide chunks over 3 stages took its
        # streamed step from 20.7 to 9.9 us; the backward's compile without spills
        # (sm_90: 185 registers, 185 KiB under triton 3.9; 187 under 3.6.0).
        run_grid_sync_tests && run 60 python3 bench/variants.py --kernel bwd --op fwdbwd \
            --shapes 64:2048 --variant launcher --variant "K 128, 3 stages" \
            --variant "K 64, 3 stages" --variant "K 128" --out "$out/variants-bwd-streamed.json"
        # The levers that apply to the backward, most promising first (a time-boxed run
        # keeps what it timed): its resident forms, then the streamed chunk loop's.
        run_grid_sync_tests && run 60 python3 bench/variants.py --kernel bwd --op fwdbwd \
            --variant launcher --variant "split K" --variant "16 rows, 32 wide, split K" \
            --variant "16 rows, split K" \
            --variant "16 rows" --variant "K 128" --variant "3 stages" \
            --out "$out/variants-bwd.json"
        ;;
    variants-tf32)
        # First the headline H: TF32's K = 1024 slice held whole in 8-wide chunks (128 KiB
        # with h's 64 beside it, 128 programs at B 16), where the launcher holds it split in
        # two K pieces (13.56 us/step forward against cuDNN's 14.6-23.3).
        run_grid_sync_tests && run 55 python3 bench/variants.py --dtype tf32 \
            --shapes 16:1024,16:512 --variant launcher --variant "8 wide, stacked" \
            --variant "8 wide, stacked, TMA rows" --variant "8 wide, stacked, TMA rows, 2 warps" \
            --out "$out/variants-tf32-8wide.json"
        # TF32 is nn.GRU's fp32 default on CUDA. Its operands are rounded to nearest now, by
        # the kernels that produce the rows (ROWS_ROUNDED): not timed yet. Rounded as they
        # were loaded, the H200 took 5.66-30.40 us/step forward and 40.20-96.69 forward +
        # backward here, against 5.63-26.28 and 31.98-74.86 truncated (docs/performance.md,
        # "TF32 operands"). At B 16 H 1024 the launchers now hold the slice split in two K
        # pieces (_tf32_forms): "not split" is the streamed form they ran before, and the
        # forward + backward's "launcher" is both kernels split, the row the dispatcher's
        # TF32 H 1024 entry waits for.
        # Where TF32 streams W_hh (B 64 at H 1024, H 2048), the pipelined chunks that took
        # bf16's streamed forward from 20.7 to 9.9 us/step.
        run_grid_sync_tests && run 60 python3 bench/variants.py --dtype tf32 \
            --shapes 16:1024,64:1024,64:512 --variant launcher --variant "not split" \
            --variant "K 128, 3 stages" --variant "narrow tiles" --out "$out/variants-tf32.json"
        # Where auto runs TF32 on grid_sync (H 256-512, 2.3-2.6x cuDNN forward, short of
        # 3x): the plain resident forward against the stacked product (bf16: B 64 H 512
        # 4.10 -> 2.95 us/step), its rows read by TMA, at 4 warps (TF32 K 512: the slice
        # read once a step, 160 KiB against 296), and narrow tiles, alone and together.
        run_grid_sync_tests && run 65 python3 bench/variants.py --dtype tf32 \
            --shapes 16:512,64:512,64:256,16:256 --variant launcher --variant stacked \
            --variant "stacked, TMA rows" --variant "stacked, TMA rows, 4 warps, no LICM" \
            --variant "stacked, 4 warps, no LICM" \
            --variant "narrow tiles" --variant "stacked, narrow tiles" \
            --out "$out/variants-tf32-stacked.json"
        # And B 64 at H 512, whose TF32 backward streams in a 64-row tile: bf16 went from
        # 22.95 to 9.42 us/step forward + backward with 16-row tiles split along K.
        run_grid_sync_tests && run 80 python3 bench/variants.py --dtype tf32 \
            --shapes 16:1024,64:512,64:1024 --kernel bwd --op fwdbwd --variant launcher \
            --variant "not split" --variant "16 rows, split K" --variant "K 64, 3 stages" \
            --variant "narrow tiles" --out "$out/variants-tf32-bwd.json"
        run_grid_sync_tests && run 50 python3 bench/variants.py --dtype tf32 \
            --shapes 16:2048,64:2048 --variant launcher --variant "K 64, 3 stages" \
            --variant "K 128, 3 stages" --out "$out/variants-tf32-2048.json"
        ;;
    variants-fp32)
        # IEEE fp32 runs on cuDNN everywhere (grid_sync's IEEE FMAs lost at every shape):
        # tf32x3 where its slice stays on chip (forward H <= 512, and at B 16 H 1024 in four
        # K pieces; backward H <= 256) and where it streams (the rest).
        # First where cuDNN's IEEE GRU is slowest and tf32x3 streams W_hh (forward, µs/step:
        # B 64 H 1024 42.5, B 16 H 2048 79.7, B 64 H 2048 101.3; the 3x target is 14-34):
        # its chunk loop as the launcher runs it and pipelined over 3 stages. Not the IEEE
        # launcher, whose FMAs took 114-1024 us/step there.
        run_grid_sync_tests && run 60 python3 bench/variants.py --dtype fp32 \
            --shapes 16:2048,64:2048,64:1024 --variant tf32x3 --variant "tf32x3, 3 stages" \
            --out "$out/variants-fp32-streamed.json"
        run_grid_sync_tests && run 60 python3 bench/variants.py --dtype fp32 \
            --shapes 16:2048,64:1024 --kernel bwd --op fwdbwd --variant tf32x3 \
            --variant "tf32x3, 3 stages" --out "$out/variants-fp32-streamed-bwd.json"
        shapes=16:512,64:512,16:256,64:256,16:1024
        # With narrow tiles too: tf32x3 reads fp32 rows, twice bf16's bytes (the launcher's
        # forward is tf32x3 at H 256-512, so there "narrow tiles" is tf32x3's).
        run_grid_sync_tests && run 50 python3 bench/variants.py --dtype fp32 --shapes "$shapes" \
            --variant launcher --variant tf32x3 --variant "narrow tiles" \
            --variant "tf32x3, narrow tiles" --out "$out/variants-fp32.json"
        run_grid_sync_tests && run 60 python3 bench/variants.py --dtype fp32 --shapes "$shapes" \
            --kernel bwd --op fwdbwd --variant launcher --variant tf32x3 \
            --variant "tf32x3, narrow tiles" --out "$out/variants-fp32-bwd.json"
        ;;
    memory)
        run 30 python3 -m pytest -q -rA "${pytest_timeout[@]}" tests/test_memory.py
        # The training step's allocator peak against the CPU count (10.9 B per (t, b, h) at
        # bf16 B 16, H 256, CUDA's reduction staging included: the bias sums now stage
        # nothing) and against cuDNN's, with the ATen function behind each block (C++ frames;
        # docs/performance.md, "Memory").
        run 70 python3 bench/memory_breakdown.py --dtypes bf16,tf32 --B 16,64 --H 256,1024 \
            --T 256 --impls cudnn,gru_triton --stacks all --out "$out/memory-cpp.json"
        # The sweep's 2-layer bidirectional case (counted on the CPU: 56.1 B per (t, b, h) in
        # bf16 at H 64, against cuDNN's 105.6 at H 512).
        run 25 python3 bench/memory_breakdown.py --layers 2 --bidirectional --dtypes bf16,tf32 \
            --B 32 --H 512 --T 256 --impls cudnn,gru_triton --out "$out/memory-bidirectional.json"
        ;;
    breakdown)
        # How much of a step is its product (h_{t-1}'s read and the dots) and how much the rest
        # (barrier, x-side gates, gate math, stores), in the launcher's form and the split one:
        # the share that decides which lever can reach 2 us/step at H 1024. Late: diagnosis,
        # not a dispatcher decision.
        # Narrow tiles too: how much of the product's share was the read of the rows.
        run_grid_sync_tests && run 40 python3 bench/step_breakdown.py --shapes 16:1024,64:512,16:512 \
            --variant launcher --variant "split K" --variant "narrow tiles" \
            --out "$out/step-breakdown.json"
        run_grid_sync_tests && run 30 python3 bench/step_breakdown.py --kernel bwd \
            --shapes 16:1024,16:512 --variant launcher --variant "split K" \
            --variant "narrow tiles" --out "$out/step-breakdown-bwd.json"
        ;;
    dispatch)
        # The shapes where the dispatcher's table chooses between the kernel paths and cuDNN.
        impls="cudnn,gru_triton,gru_triton/persistent,gru_triton/per_step"
        run_grid_sync_tests && impls="$impls,gru_triton/grid_sync"
        run 600 python3 bench/bench_gru.py --results-root "$out/dispatch" --impls "$impls" \
            --H 64,128,256,512 --B 1,16,64 --T 256 --dtypes bf16,tf32,fp32 \
            --budget-s $(($(left) - 30))
        ;;
    forms)
        # grid_sync's 16-bit forms as the launchers now plan them (kernels.gru.
        # _sixteen_bit_forms, from the variants of 2026-12-04), against cuDNN, from H 256 to
        # 2048: what decides how far dispatch.GRID_SYNC_WINS["16-bit"] reaches.
        impls="cudnn,gru_triton"
        run_grid_sync_tests && impls="$impls,gru_triton/grid_sync"
        run 120 python3 bench/bench_gru.py --results-root "$out/forms" --impls "$impls" \
            --H 1024,2048,512,256 --B 16,64 --T 256 --dtypes bf16,fp16 --budget-s 90
        ;;
    auto)
        # auto against cuDNN where the dispatcher now picks grid_sync, and just past it; fp16
        # too (the issue asks for its timings, and none has been taken).
        impls="cudnn,gru_triton"
        run_grid_sync_tests && impls="$impls,gru_triton/grid_sync"
        # Starts no case past AUTO_SECONDS (default 90: the H200 timed 12 cases in 40 s), so
        # that the stages after it still run; a call of auto alone may give it more.
        budget=$(($(left) - 30))
        [ "$budget" -gt "${AUTO_SECONDS:-90}" ] && budget=${AUTO_SECONDS:-90}
        run $((budget + 30)) python3 bench/bench_gru.py --results-root "$out/auto" \
            --impls "$impls" --H 256,512,1024 --B 16,64 --T 256 --dtypes bf16,fp16,tf32 \
            --budget-s "$budget"
        # IEEE fp32 inference, which auto now runs as tf32x3 on grid_sync at H 256-512
        # (dispatch.FORWARD_WINS, from variants-fp32.json); its training stays on cuDNN.
        run 45 python3 bench/bench_gru.py --results-root "$out/auto-fp32" \
            --impls cudnn,gru_triton --H 256,512 --B 16,64 --T 256 --dtypes fp32 --ops fwd \
            --budget-s 30
        ;;
    bidirectional)
        # Inference of a bidirectional stack runs each layer's reverse direction on a side
        # stream where both grids fit (on 132 SMs: B 16 up to H 1024, B 32 up to 512, B 64
        # at 256; not B 64 at 512, 128 programs a direction); cuDNN runs the directions at
        # once everywhere. TF32 too: the sweep's 2-layer bidirectional case (B 32, H 512)
        # lost to cuDNN forward there, 33.6 against 30.1 us/step, one direction at a time.
        # Both modes: at once (the default) and one after the other, which decides whether
        # the default stands.
        for mode in inference never; do
            run 45 python3 bench/bench_gru.py --results-root "$out/bidirectional-fwd-$mode" \
                --impls cudnn,gru_triton --layers 2 --bidirectional --B 16,32,64 \
                --H 1024,512,256 --T 256 --dtypes bf16,tf32 --ops fwd --directions-at-once "$mode" \
                --budget-s 30
        done
        ;;
    bidirectional-training)
        # A training step of the same stacks, one direction after the other (the default),
        # then at once: what decides whether "training" becomes the default mode.
        for mode in inference training; do
            run 35 python3 bench/bench_gru.py --results-root "$out/bidirectional-$mode" \
                --impls cudnn,gru_triton --layers 2 --bidirectional --B 16,32 --H 1024,512 \
                --T 256 --dtypes bf16 --ops fwdbwd --directions-at-once "$mode" --budget-s 25
        done
        ;;
    pytest-bench)
        run 600 python3 -m pytest -q "${pytest_timeout[@]}" bench/ --benchmark-only \
            --benchmark-json="$out/pytest-benchmark.json"
        ;;
    *)
        say "unknown stage $stage (gridsync, suite, cuda, bench, variants, variants-bwd, variants-tf32, variants-fp32, breakdown, memory, dispatch, auto, forms, bidirectional, bidirectional-training, pytest-bench)"
        exit 2
        ;;
    esac
done
say "done"
# Past the 8 files the device tool brings back, the rest would be lost: one archive instead.
if [ -n "${OUT:-}" ]; then
    bash bench/pack_results.sh "$out"
fi
