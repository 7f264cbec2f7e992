"""How accurate is a GRU whose W_hh products are Triton's "tf32x3" dots? Emulated on the CPU.

    python bench/tf32x3_accuracy.py [--T 256] [--B 16] [--H 256,1024]

fp32 models under nn.GRU's IEEE flag (``torch.backends.cudnn.rnn.fp32_precision = "ieee"``)
run their recurrence on CUDA cores, where cuDNN won every shape the H200 timed. "tf32x3"
runs each product on tensor cores as three TF32 ones: every fp32 operand x is split into
big = tf32(x) (round to nearest, ties away: ``cvt.rna.tf32.f32``) and small = x - big, which
the MMA reads as TF32 (its low 13 bits dropped), and a·b is big·big + big·small + small·big,
accumulated in fp32. A product of two TF32 values is exact in fp32, so fp32 matmuls of the
split operands on the CPU reproduce it up to the order of the sums.

This runs one GRU layer (nn.GRU's initialisation, x and h0 standard normal) T steps with its
h_{t-1} @ W_hhᵀ done three ways: IEEE fp32, emulated tf32x3 and emulated TF32, everything
else in fp32, and prints max |out - out_fp64| / max |out_fp64| for each, beside nn.GRU's own
fp32 CPU run. tf32x3 is worth running for IEEE only if its error is IEEE's, not TF32's.
No GPU needed; the GPU's own answer is tests/test_cuda.py::test_tf32x3_keeps_ieee_accuracy.
"""

import argparse
import sys

import torch


def tf32_round(x: torch.Tensor) -> torch.Tensor:
    """fp32 -> the nearest TF32 value (10 mantissa bits), ties away from zero."""
    return ((x.view(torch.int32) + 0x1000) & ~0x1FFF).view(torch.float32)


def tf32_truncate(x: torch.Tensor) -> torch.Tensor:
    """What an MMA reads of an fp32 operand: its top 19 bits."""
    return (x.view(torch.int32) & ~0x1FFF).view(torch.float32)


def dot_tf32x3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (M, K) @ b (K, N) as Triton's tf32x3: the small cross terms first, then big·big."""
    a_big, b_big = tf32_round(a), tf32_round(b)
    a_small, b_small = tf32_truncate(a - a_big), tf32_truncate(b - b_big)
    return (a_small @ b_big + a_big @ b_small) + a_big @ b_big


def dot_tf32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return tf32_round(a) @ tf32_round(b)


def gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, dot):
    """nn.GRU's one layer, with ``dot`` for h_{t-1} @ W_hhᵀ; (T, B, H) outputs."""
    gates_x = x @ w_ih.t() + b_ih
    h, outputs = h0, []
    for t in range(x.shape[0]):
        x_r, x_z, x_n = gates_x[t].chunk(3, -1)
        h_r, h_z, h_n = (dot(h, w_hh.t()) + b_hh).chunk(3, -1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        outputs.append(h)
    return torch.stack(outputs)


def errors(T: int, B: int, H: int, seed: int = 0) -> dict:
    """Max relative error against the fp64 run of the same layer, per way of multiplying."""
    torch.manual_seed(seed)
    gru = torch.nn.GRU(H, H)
    params = [p.detach() for p in (gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0,
                                   gru.bias_hh_l0)]
    x, h0 = torch.randn(T, B, H), torch.randn(B, H)
    exact = gru_layer(x.double(), h0.double(), *(p.double() for p in params),
                      lambda a, b: a @ b)

    def err(out):
        return ((out.double() - exact).abs().max() / exact.abs().max()).item()

    result = {name: err(gru_layer(x, h0, *params, dot))
              for name, dot in (("ieee", lambda a, b: a @ b), ("tf32x3", dot_tf32x3),
                                ("tf32", dot_tf32))}
    with torch.no_grad():
        result["nn.GRU (CPU, fp32)"] = err(gru(x, h0[None])[0])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=256)
    parser.add_argument("--B", type=int, default=16)
    parser.add_argument("--H", default="256,1024")
    args = parser.parse_args(argv)
    names = ("ieee", "tf32x3", "tf32", "nn.GRU (CPU, fp32)")
    print(f"max |out - fp64| / max |fp64|, one layer, T {args.T}, B {args.B}, I = H\n")
    print("| H | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for H in (int(h) for h in args.H.split(",")):
        result = errors(args.T, args.B, H)
        print(f"| {H} | " + " | ".join(f"{result[n]:.2e}" for n in names) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
