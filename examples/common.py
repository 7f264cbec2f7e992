"""What every example shares: the command line, picking nn.GRU or gru_triton, progress, plots.

Import this before torch/triton: ``--interpret`` has to set TRITON_INTERPRET=1 before triton
is imported for the real kernels to run on a CPU.
"""

import argparse
import os
import sys


def parse_args(description: str, add_arguments=None, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--impl", choices=["torch", "triton", "both"], default="both",
                        help="nn.GRU, gru_triton.GRU, or both one after the other (default)")
    parser.add_argument("--fast", action="store_true",
                        help="a small model and a few steps (what the test suite runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interpret", action="store_true",
                        help="on a CPU, run gru_triton's real kernels in the Triton interpreter "
                             "(slow) instead of its PyTorch fallback")
    parser.add_argument("--out-dir", default=os.path.dirname(os.path.abspath(sys.argv[0])),
                        help="where the plot goes (default: next to the script)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.interpret:
        os.environ["TRITON_INTERPRET"] = "1"
    return args


def impls(choice: str):
    return ["torch", "triton"] if choice == "both" else [choice]


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def use_kernels_on_cpu_if_interpreting():
    """With TRITON_INTERPRET=1, gru_triton runs its kernels on CPU tensors too."""
    import gru_triton

    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        gru_triton.set_backend("triton")


def gru_class(impl: str):
    """torch.nn.GRU or gru_triton.GRU: the only thing an example changes between impls."""
    import torch

    import gru_triton

    return torch.nn.GRU if impl == "torch" else gru_triton.GRU


def progress(iterable, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, dynamic_ncols=True, leave=False, **kwargs)


def save_plot(fig, out_dir: str, name: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label(impl: str) -> str:
    """What actually ran, for plots and summaries."""
    import torch

    if impl == "torch":
        return "nn.GRU"
    if torch.cuda.is_available():
        return "gru_triton"
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return "gru_triton (kernels in the interpreter)"
    return "gru_triton (CPU: its PyTorch fallback)"


def plot_losses(results: list, title: str, out_dir: str, filename: str, metric: str,
                metric_name: str) -> str:
    """Training-loss curves of each impl, labelled with its final ``metric``; returns the
    plot's path."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in results:
        ax.plot(r["losses"], label=f"{label(r['impl'])} ({metric_name} {r[metric]:.3f})")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.legend()
    return save_plot(fig, out_dir, filename)


def summary(results: list, metric: str, metric_name: str) -> str:
    return ", ".join(f"{label(r['impl'])} {metric_name} {r[metric]:.4f}" for r in results)
