"""pytest-benchmark suite for run-to-run tracking of the kernels on a GPU:

    pytest bench/ --benchmark-only

Skipped without CUDA (nothing can be timed). Each benchmark syncs the GPU so that the
measured time is the kernels', not the launch queue's.
"""

import pytest
import torch

import gru_triton
from gru_triton import dispatch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SHAPES = [(16, 256, 256), (64, 256, 1024), (16, 1024, 1024), (32, 256, 2048)]


def _setup(B, T, H, dtype, requires_grad):
    gru = gru_triton.GRU(H, H).cuda().to(dtype)
    x = torch.randn(T, B, H, device="cuda", dtype=dtype, requires_grad=requires_grad)
    return gru, x


@pytest.mark.parametrize("path", dispatch.PATHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-T{}-H{}".format(*s))
def test_forward(benchmark, shape, dtype, path):
    gru, x = _setup(*shape, dtype, False)

    def run():
        with torch.no_grad(), dispatch.force_path(path):
            gru(x)
        torch.cuda.synchronize()

    run()
    benchmark(run)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-T{}-H{}".format(*s))
def test_forward_backward(benchmark, shape, dtype):
    gru, x = _setup(*shape, dtype, True)

    def run():
        gru(x)[0].sum().backward()
        torch.cuda.synchronize()

    run()
    benchmark(run)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-T{}-H{}".format(*s))
def test_cudnn_forward_baseline(benchmark, shape):
    B, T, H = shape
    gru = torch.nn.GRU(H, H).cuda()
    x = torch.randn(T, B, H, device="cuda")

    def run():
        with torch.no_grad():
            gru(x)
        torch.cuda.synchronize()

    run()
    benchmark(run)
