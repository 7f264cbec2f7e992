"""Why TF32 misses the fp64 bound on bias_ih's gradient at H = 1024: emulated on the CPU.

    python bench/tf32_bias_lean.py [--T 48] [--B 16] [--H 1024]

On the H200 (2026-12-04) our TF32 GRU at H 1024, T 48, B 16 put bias_ih's gradient 2.1e-2
from an fp64 GRU's, against cuDNN's 7.7e-3, with every other output and gradient within twice
cuDNN's error. Triton hands the tensor cores the fp32 bits of both operands (no
``cvt.rna.tf32.f32`` in the PTX), and the MMA drops each operand's low 13 bits: every
product leans toward zero. cuDNN and cuBLAS round to nearest first, whose errors cancel.
bias_ih's gradient is the sum of the gate gradients over all T · B rows, so a lean adds up
where rounding noise does not.

This runs one GRU layer forward and backward in fp32 with every W_hh product (h_{t-1} @
W_hhᵀ forward; the gate gradients @ W_hh and hᵀ @ gate gradients backward) on operands
truncated to TF32, then rounded to nearest (the input projection rounded in both, as cuBLAS
does), and prints each one's max |bias_ih.grad - fp64's|. Truncation's should be the larger
by about the H200's ratio. No GPU needed.
"""

import argparse
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from tf32x3_accuracy import tf32_round, tf32_truncate  # noqa: E402


class _Product(torch.autograd.Function):
    """a @ b with both operands passed through ``operand`` (TF32 truncated or rounded), and
    the same for the two products of its backward."""

    @staticmethod
    def forward(ctx, a, b, operand):
        ctx.save_for_backward(a, b)
        ctx.operand = operand
        return operand(a) @ operand(b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        op = ctx.operand
        return op(grad) @ op(b).T, op(a).T @ op(grad), None


def _layer(x, w_ih, w_hh, b_ih, b_hh, operand):
    """One GRU layer (nn.GRU's equations), h0 = 0; ``operand`` None: plain products."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    if operand is None:
        gates_x = x @ w_ih.T + b_ih
    else:
        gates_x = (_Product.apply(x.reshape(T * B, -1), w_ih.T, tf32_round) + b_ih).view(T, B, 3 * H)
    h, out = x.new_zeros(B, H), []
    for t in range(T):
        gates_h = (h @ w_hh.T if operand is None else _Product.apply(h, w_hh.T, operand)) + b_hh
        x_r, x_z, x_n = gates_x[t].chunk(3, 1)
        h_r, h_z, h_n = gates_h.chunk(3, 1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        h = (1 - z) * torch.tanh(x_n + r * h_n) + z * h
        out.append(h)
    return torch.stack(out)


def bias_errors(T: int, B: int, H: int, seed: int = 0) -> dict:
    """max |bias_ih.grad - fp64's| with the W_hh products' operands "truncated" and
    "nearest" (TF32), and fp64's largest |bias_ih.grad| ("scale")."""
    torch.manual_seed(seed)
    ref = torch.nn.GRU(H, H).double()
    x = torch.randn(T, B, H, dtype=torch.float64)
    grad = torch.randn(T, B, H, dtype=torch.float64)

    def bias_grad(dtype, operand):
        w = [p.detach().to(dtype).requires_grad_(True) for p in
             (ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0)]
        (_layer(x.to(dtype), *w, operand) * grad.to(dtype)).sum().backward()
        return w[2].grad.double()

    exact = bias_grad(torch.float64, None)
    return {"truncated": (bias_grad(torch.float32, tf32_truncate) - exact).abs().max().item(),
            "nearest": (bias_grad(torch.float32, tf32_round) - exact).abs().max().item(),
            "scale": exact.abs().max().item()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=48)
    parser.add_argument("--B", type=int, default=16)
    parser.add_argument("--H", type=int, default=1024)
    args = parser.parse_args(argv)
    errors = bias_errors(args.T, args.B, args.H)
    print(f"T {args.T}, B {args.B}, H {args.H}: bias_ih.grad from fp64, operands truncated "
          f"{errors['truncated']:.2e}, rounded to nearest {errors['nearest']:.2e} "
          f"(largest |bias_ih.grad| {errors['scale']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
