"""The issue's targets, checked against a benchmark's results.json, and the fastest measured
path per shape (what the dispatcher's table should say).

    python bench/targets.py bench/results/<gpu>-<date>/results.json

Prints one line per target (met, missed, or not measured, with the shapes that miss it) and
a table of the fastest correct implementation per shape. Needs no GPU: it reads records.
"""

import argparse
import json
import pathlib
import sys
from collections import defaultdict

OURS = "gru_triton"  # what the user gets: the "auto" dispatch
SHAPE_KEYS = ("op", "dtype", "B", "T", "H", "I", "layers", "bidirectional", "source")


def _by_shape(records):
    shapes = defaultdict(dict)
    for r in records:
        shapes[tuple(r[k] for k in SHAPE_KEYS)][r["impl"]] = r
    return shapes


def _timed(r):
    return r is not None and r["correct"] and r["ms"] is not None


def _target(name, checked, misses):
    """One target's verdict: (name, "met" | "missed" | "not measured", failing shapes)."""
    if not checked:
        return name, "not measured", []
    return name, ("missed" if misses else "met"), misses


def _label(key):
    shape = dict(zip(SHAPE_KEYS, key, strict=True))
    return (f"{shape['op']} {shape['dtype']} B={shape['B']} T={shape['T']} H={shape['H']}"
            + (f" L={shape['layers']}{' bi' if shape['bidirectional'] else ''}"
               if shape["layers"] > 1 else ""))


def check_targets(records) -> list:
    """The issue's targets, each as (name, verdict, shapes that miss it)."""
    shapes = _by_shape(records)
    results = []
    for op, factor in (("fwd", 3.0), ("fwdbwd", 2.0)):
        checked, misses = 0, []
        for key, impls in shapes.items():
            s = dict(zip(SHAPE_KEYS, key, strict=True))
            if not (s["op"] == op and s["B"] <= 64 and 256 <= s["H"] <= 2048 and s["T"] >= 256
                    and s["layers"] == 1 and s["source"] == "sweep"):
                continue
            ours, cudnn = impls.get(OURS), impls.get("cudnn")
            if not _timed(cudnn) or ours is None:
                continue
            checked += 1
            if not _timed(ours) or cudnn["ms"] / ours["ms"] < factor:
                misses.append(_label(key))
        results.append(_target(f"{op} >= {factor:g}x nn.GRU at B <= 64, H 256-2048, T >= 256",
                               checked, misses))
    checked, misses = 0, []
    for key, impls in shapes.items():
        s = dict(zip(SHAPE_KEYS, key, strict=True))
        ours = impls.get(OURS)
        if s["op"] == "fwd" and s["H"] == 1024 and s["B"] <= 64 and s["layers"] == 1 and ours:
            checked += 1
            if not _timed(ours) or ours["us_per_step"] > 2.0:
                misses.append(_label(key))
    results.append(_target("fwd <= 2 us per step per layer at H = 1024, B <= 64", checked,
                           misses))
    checked, misses = 0, []
    for key, impls in shapes.items():
        ours, cudnn = impls.get(OURS), impls.get("cudnn")
        if _timed(cudnn) and ours is not None:
            checked += 1
            # Where auto ran nn.GRU's own op (its record's route), the two timings are the
            # same call twice: a difference is timing noise, not a slower path.
            same_op = ours.get("route") == "cudnn"
            if not _timed(ours) or (ours["ms"] > cudnn["ms"] and not same_op):
                misses.append(_label(key))
    results.append(_target("auto never slower than nn.GRU", checked, misses))
    checked, misses = 0, []
    for key, impls in shapes.items():
        ours = impls.get(OURS)
        if key[0] == "fwdbwd" and _timed(ours) and ours["cudnn_peak_mem_bytes"] is not None:
            checked += 1
            if ours["peak_mem_bytes"] > ours["cudnn_peak_mem_bytes"]:
                misses.append(_label(key))
    results.append(_target("training-step peak memory <= nn.GRU's", checked, misses))
    return results


def fastest(records) -> list:
    """Per shape: (label, fastest correct impl, its ms, cuDNN's ms, auto's impl ms)."""
    rows = []
    for key, impls in sorted(_by_shape(records).items(), key=lambda kv: str(kv[0])):
        timed = {name: r["ms"] for name, r in impls.items() if _timed(r)}
        if not timed:
            continue
        best = min(timed, key=timed.get)
        rows.append((_label(key), best, timed[best], timed.get("cudnn"), timed.get(OURS)))
    return rows


def _ms(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def report(records) -> str:
    lines = ["| target | verdict | shapes that miss it |", "|---|---|---|"]
    for name, verdict, misses in check_targets(records):
        shown = ", ".join(misses[:6]) + (f" and {len(misses) - 6} more" if len(misses) > 6 else "")
        lines.append(f"| {name} | {verdict} | {shown or '-'} |")
    lines += ["", "| shape | fastest | ms | cuDNN ms | auto ms |", "|---|---|---|---|---|"]
    for label, best, ms, cudnn, ours in fastest(records):
        lines.append(f"| {label} | {best} | {ms:.3f} | {_ms(cudnn)} | {_ms(ours)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=pathlib.Path, help="results.json file(s)")
    args = parser.parse_args(argv)
    records = [r for path in args.results for r in json.loads(path.read_text())]
    print(report(records), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
