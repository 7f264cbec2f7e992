#!/usr/bin/env bash
# What a lent GPU is spent on, in time-boxed stages (the device tool runs one command for at
# most 600 s, the machine has torch and triton but no network, and it goes back 30 s after a
# call, so each call installs afresh and must finish inside its limit):
#
#   bash bench/gpu_session.sh                # call 1: stages "cuda" and "bench"  (~9.5 min)
#   bash bench/gpu_session.sh suite pytest-bench   # call 2: the whole suite natively, then
#                                                  # the pytest-benchmark suite
#
# Stages:
#   cuda          tests/test_cuda.py: the GPU-only checks, grid-synchronised barrier first
#   bench         bench/bench_gru.py --quick, time-boxed; the grid_sync path, and the grid
#                 barrier alone (bench/barrier_bench.py), are timed only if its native test
#                 passed in this same call (a broken barrier hangs)
#   suite         the whole test suite natively on CUDA
#   pytest-bench  pytest bench/ --benchmark-only
#
# Output goes to $OUT (the device tool's folder; bench/results otherwise), at most 8 files:
# session.log (every stage's output, versions, nvidia-smi), <gpu>-<date>/results.{json,md,png},
# <gpu>-<date>/barrier.json and pytest-benchmark.json. GPU_SESSION_SECONDS (default 560)
# bounds the whole call.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/results}"
mkdir -p "$out"
log="$out/session.log"
deadline=$((SECONDS + ${GPU_SESSION_SECONDS:-560}))
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(cuda bench)

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
pip install --no-build-isolation --no-deps -e . >>"$log" 2>&1 || say "install failed"

for stage in "${stages[@]}"; do
    case "$stage" in
    cuda)
        run 120 python3 -m pytest -q -rA "${pytest_timeout[@]}" tests/test_cuda.py -k grid_sync
        run 240 python3 -m pytest -q -rfE "${pytest_timeout[@]}" tests/test_cuda.py -k "not grid_sync"
        ;;
    bench)
        impls="cudnn,gru_triton,gru_triton/persistent,gru_triton/per_step"
        if run 120 python3 -m pytest -q "${pytest_timeout[@]}" tests/test_cuda.py -k grid_sync_runs; then
            impls="$impls,gru_triton/grid_sync"
            # The cost model's least certain figure: µs per grid barrier (~10 s).
            run 60 python3 bench/barrier_bench.py --results-root "$out"
        else
            say "grid_sync is not timed: its native test did not pass in this call"
        fi
        # Leave 40 s for the last case to finish and the results to be written.
        run 600 python3 bench/bench_gru.py --quick --results-root "$out" --impls "$impls" \
            --budget-s $(($(left) - 40))
        # The issue's targets and the fastest path per shape, from what was measured.
        for results in "$out"/*/results.json; do
            [ -f "$results" ] && python3 bench/targets.py "$results" 2>&1 | tee -a "$log"
        done
        ;;
    suite)
        run 600 python3 -m pytest -q -rfE "${pytest_timeout[@]}" tests
        ;;
    pytest-bench)
        run 600 python3 -m pytest -q "${pytest_timeout[@]}" bench/ --benchmark-only \
            --benchmark-json="$out/pytest-benchmark.json"
        ;;
    *)
        say "unknown stage $stage (cuda, bench, suite, pytest-bench)"
        exit 2
        ;;
    esac
done
say "done"
