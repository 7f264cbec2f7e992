"""The benchmark suite's parts that need no GPU: which shapes, how a record looks, and how the
results are written (results.json, results.md, speedup.png). ``bench_gru.py`` does the timing.
"""

import dataclasses
import datetime
import itertools
import json
import pathlib
import re

# The sweep of the issue: B x T x H with I = H, one layer; plus a 2-layer bidirectional case.
SWEEP = dict(B=(1, 8, 32, 64, 256), T=(64, 256, 1024), H=(64, 128, 256, 512, 1024, 2048))
# H = 1024 first: a time-boxed run (--budget-s) reaches the headline shape first.
QUICK = dict(B=(16, 64), T=(256,), H=(1024, 256, 2048))
DTYPES = ("fp32", "tf32", "bf16", "fp16")
QUICK_DTYPES = ("fp32", "tf32", "bf16")
OPS = ("fwd", "fwdbwd")
# GRU shapes (hidden, batch, timesteps) of Baidu's DeepBench, code/kernels/rnn_problems.h:
# its training set and its server-inference set (a subset of the latter).
DEEPBENCH_TRAIN = [(2816, 32, 187), (2816, 32, 375), (2048, 32, 375), (2048, 32, 750),
                   (1536, 32, 750), (2560, 32, 187), (512, 32, 1), (1024, 32, 1500),
                   (1024, 64, 1500)]
DEEPBENCH_INFER = [(2816, 1, 187), (2048, 2, 375), (2048, 4, 750), (1536, 4, 375),
                   (2560, 4, 187), (512, 1, 1), (512, 4, 1), (1024, 1, 1500), (1024, 4, 1500)]
# Agreement with nn.GRU required before a shape is timed: max |ours - cuDNN| relative to the
# largest |cuDNN| value, for output (and, for fwdbwd, the input gradient).
TOLERANCE = {"fp32": 1e-4, "tf32": 1e-2, "bf16": 5e-2, "fp16": 1e-2}
RECORD_FIELDS = ("gpu", "torch", "triton", "date", "op", "impl", "route", "dtype", "B", "T",
                 "H", "I", "layers", "bidirectional", "source", "ms", "us_per_step", "speedup_vs_cudnn",
                 "max_rel_err", "correct", "peak_mem_bytes", "cudnn_peak_mem_bytes", "note")


@dataclasses.dataclass(frozen=True)
class Case:
    op: str
    dtype: str
    B: int
    T: int
    H: int
    I: int
    layers: int = 1
    bidirectional: bool = False
    source: str = "sweep"


def cases(quick: bool = False, grid: dict | None = None, dtypes=None, ops=OPS,
          layers: int = 1, bidirectional: bool = False) -> list:
    """Every (shape, dtype, op) the suite times: the sweep (or its quick subset), a 2-layer
    bidirectional case per dtype, and the DeepBench GRU shapes (full suite only).

    ``grid`` (a dict like SWEEP), ``dtypes`` and ``ops``: a custom sweep of these shapes
    alone (to measure the dispatcher's thresholds), without the extra cases; each a stack of
    ``layers``, ``bidirectional`` or not (custom sweeps only).

    Ordered shape by shape, each shape in every op and dtype, so that a run cut short by its
    time budget has whole shapes to compare rather than whole dtypes missing."""
    custom = grid is not None
    grid = grid or (QUICK if quick else SWEEP)
    dtypes = dtypes or (QUICK_DTYPES if quick else DTYPES)
    if not custom and (layers, bidirectional) != (1, False):
        raise ValueError("layers and bidirectional shape a custom sweep (grid) only")
    shapes = [dict(B=B, T=T, H=H, I=H, layers=layers, bidirectional=bidirectional)
              for H, B, T in itertools.product(grid["H"], grid["B"], grid["T"])]
    if not custom:
        shapes.append(dict(B=32, T=256, H=512, I=512, layers=2, bidirectional=True))
    out = [Case(op, dtype, **shape)
           for shape in shapes for op, dtype in itertools.product(ops, dtypes)]
    if not quick and not custom:
        for source, deepbench in (("deepbench-train", DEEPBENCH_TRAIN),
                                  ("deepbench-infer", DEEPBENCH_INFER)):
            op = "fwd" if source == "deepbench-infer" else "fwdbwd"
            out.extend(Case(op, dtype, B, T, H, H, source=source)
                       for H, B, T in deepbench for dtype in dtypes)
    return out


def results_dir(root: str, gpu: str, date: str) -> pathlib.Path:
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")
    return pathlib.Path(root) / f"{slug}-{date}"


def write_probe(results_root: str, name: str, **fields) -> tuple:
    """A GPU micro-benchmark's file (bench/barrier_bench.py, bench/exchange_bench.py):
    ``name`` in the results folder of this GPU and date, holding the GPU, torch, triton and
    CUDA versions and the date, then ``fields``. Returns its path and those facts as a
    phrase for the printed table."""
    import torch
    import triton

    gpu, date = torch.cuda.get_device_name(), str(datetime.date.today())
    result = dict(gpu=gpu, torch=torch.__version__, triton=triton.__version__, date=date,
                  cuda=torch.version.cuda, **fields)
    out_dir = results_dir(results_root, gpu, date)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path, f"{gpu} (torch {torch.__version__}, triton {triton.__version__}, {date})"


def write_results(records: list, out_dir: pathlib.Path, header: str) -> dict:
    """results.json (the records), results.md (a table per op and dtype) and speedup.png
    (speed-up over cuDNN against H, one line per B, one panel per op and dtype)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for r in records:
        missing = set(RECORD_FIELDS) - set(r)
        if missing:
            raise ValueError(f"record lacks {sorted(missing)}: {r}")
    (out_dir / "results.json").write_text(json.dumps(records, indent=1) + "\n")
    (out_dir / "results.md").write_text(to_markdown(records, header))
    plot_speedups(records, out_dir / "speedup.png")
    return {"json": out_dir / "results.json", "md": out_dir / "results.md",
            "png": out_dir / "speedup.png"}


def _speedup_text(r) -> str:
    if not r["correct"] and r["max_rel_err"] is not None:
        return "WRONG: no speed-up"
    if r["speedup_vs_cudnn"] is None:
        return "-"
    return f"{r['speedup_vs_cudnn']:.2f}x"


def to_markdown(records: list, header: str) -> str:
    lines = [header, "",
             "| op | dtype | impl | source | B | T | H | layers | ms | µs/step | vs cuDNN "
             "| max rel err | peak MiB (cuDNN) | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        ms = "-" if r["ms"] is None else f"{r['ms']:.3f}"
        per_step = "-" if r["us_per_step"] is None else f"{r['us_per_step']:.2f}"
        mem = ("-" if r["peak_mem_bytes"] is None else
               f"{r['peak_mem_bytes'] / 2**20:.1f} ({r['cudnn_peak_mem_bytes'] / 2**20:.1f})")
        err = "-" if r["max_rel_err"] is None else f"{r['max_rel_err']:.1e}"
        layers = f"{r['layers']}{' bi' if r['bidirectional'] else ''}"
        impl = r["impl"] + (f" ({r['route']})" if r["impl"] == "gru_triton" and r["route"] else "")
        lines.append(f"| {r['op']} | {r['dtype']} | {impl} | {r['source']} | {r['B']} "
                     f"| {r['T']} | {r['H']} | {layers} | {ms} | {per_step} | {_speedup_text(r)} "
                     f"| {err} | {mem} | {r['note']} |")
    return "\n".join(lines) + "\n"


def plot_speedups(records: list, path: pathlib.Path, impl: str = "gru_triton") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in records if r["impl"] == impl and r["source"] == "sweep" and r["layers"] == 1]
    panels = sorted({(r["op"], r["dtype"]) for r in mine}, key=lambda p: (OPS.index(p[0]), p[1]))
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(3.2 * max(len(panels), 1), 3),
                             squeeze=False, sharey=True)
    for ax, (op, dtype) in zip(axes[0], panels, strict=False):
        rows = [r for r in mine if r["op"] == op and r["dtype"] == dtype and r["correct"]]
        for B in sorted({r["B"] for r in rows}):
            for T in sorted({r["T"] for r in rows}):
                line = sorted((r["H"], r["speedup_vs_cudnn"]) for r in rows
                              if r["B"] == B and r["T"] == T and r["speedup_vs_cudnn"])
                if line:
                    ax.plot(*zip(*line, strict=True), marker="o", label=f"B={B}, T={T}")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{op} {dtype}")
        ax.set_xlabel("H (= I)")
    axes[0][0].set_ylabel(f"{impl} speed-up over cuDNN")
    if axes[0][-1].get_legend_handles_labels()[0]:
        axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
