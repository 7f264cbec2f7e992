#!/usr/bin/env bash
# Everything a lent GPU should be spent on, in one script (the device has torch and triton but
# no network): install, the test suite natively on CUDA, the quick benchmark, the
# pytest-benchmark suite. Results land in bench/results/<gpu>-<date>/ (and $OUT if set).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/results}"
mkdir -p "$out"
nvidia-smi | tee "$out/nvidia-smi.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)" | tee "$out/versions.txt"
pip install --no-build-isolation --no-deps -e . > "$out/install.log" 2>&1
python3 -m pytest -q -x tests/test_cuda.py 2>&1 | tail -30 | tee "$out/pytest-cuda.txt"
python3 -m pytest -q 2>&1 | tail -30 | tee "$out/pytest-all.txt"
python3 bench/bench_gru.py --quick --results-root "$out" 2>&1 | tail -5
python3 -m pytest bench/ --benchmark-only -q --benchmark-json="$out/pytest-benchmark.json" 2>&1 | tail -40 \
    | tee "$out/pytest-benchmark.txt"
