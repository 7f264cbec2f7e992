"""Streaming / stateful inference: feed a series in chunks, carrying h_n from one call to the
next, and get exactly what one call over the whole series gives (Keras ``stateful=True``).

Trains the airline forecaster of ``airline_forecast.py`` briefly, then runs the whole series
through it once and again in chunks of ``--chunk`` months (as a live system would receive
them), and reports the largest difference between the two. The plot overlays both.

    python examples/streaming.py --chunk 6
"""

import common

DESCRIPTION = __doc__.splitlines()[0]


def add_arguments(parser):
    import airline_forecast

    airline_forecast.add_arguments(parser)
    parser.add_argument("--chunk", type=int, default=12, help="months per call")
    parser.set_defaults(steps=200)


def stream(model, series, chunk: int):
    """Forecasts for series (T,) fed ``chunk`` values per call; h_n is carried between calls."""
    import torch

    outputs, state = [], None
    with torch.no_grad():
        for start in range(0, len(series), chunk):
            piece = series[start:start + chunk][None, :, None]
            prediction, state = model(piece, state)  # state: (layers, 1, hidden)
            outputs.append(prediction[0, :, 0])
    return torch.cat(outputs)


def run(args) -> list:
    import torch

    import airline_forecast

    common.use_kernels_on_cpu_if_interpreting()
    if args.fast:
        args.hidden, args.window, args.stride, args.steps = 16, 12, 4, 5
    series, to_passengers = airline_forecast.load_series()
    inputs = series[:-1].to(common.device())
    results = []
    for impl in common.impls(args.impl):
        model, losses = airline_forecast.train_model(impl, args, series)
        with torch.no_grad():
            whole, _ = model(inputs[None, :, None])
        chunked = stream(model, inputs, args.chunk)
        whole = whole[0, :, 0]
        difference = (whole - chunked).abs().max().item()
        results.append({"impl": impl, "losses": losses, "max_abs_difference": difference,
                        "whole": to_passengers(whole.cpu()).tolist(),
                        "chunked": to_passengers(chunked.cpu()).tolist()})
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(to_passengers(series), color="black", label="truth")
    for r in results:
        months = range(1, len(r["whole"]) + 1)
        ax.plot(months, r["whole"], label=f"{common.label(r['impl'])}: one call")
        ax.plot(months, r["chunked"], linestyle="--",
                label=f"{common.label(r['impl'])}: {args.chunk}-month chunks "
                      f"(max diff {r['max_abs_difference']:.1e})")
    ax.set_xlabel("month since January 1949")
    ax.set_ylabel("passengers (thousands)")
    ax.set_title("Streaming inference carries h_n between calls")
    ax.legend(fontsize=7)
    path = common.save_plot(fig, args.out_dir, "streaming.png")
    summary = ", ".join(f"{common.label(r['impl'])} max |one call - chunked| {r['max_abs_difference']:.2e}"
                        for r in results)
    print(f"streaming ({args.chunk}-month chunks): {summary}; plot {path}")
    return results


if __name__ == "__main__":
    run(common.parse_args(DESCRIPTION, add_arguments))
