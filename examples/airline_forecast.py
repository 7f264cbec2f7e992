"""Sequence-to-sequence regression: one-step-ahead forecasts of the airline passengers series.

A two-layer GRU returns its whole output sequence and a per-timestep linear head maps each
step to the next month's value (what Keras users write as ``GRU(return_sequences=True)`` +
``TimeDistributed(Dense(1))``). Box-Jenkins' monthly airline passengers 1949-1960, as shipped
in aeon: trained on the first 120 months, scored on the last 24 against the seasonal-naive
forecast (the value twelve months earlier); the plot shows prediction against truth.

    python examples/airline_forecast.py
"""

import common

DESCRIPTION = __doc__.splitlines()[0]
TRAIN_MONTHS = 120


def add_arguments(parser):
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--window", type=int, default=36)
    parser.add_argument("--stride", type=int, default=1, help="months between training windows")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=0.01)


def load_series():
    """(144,) float32 log-passengers standardised with the training months' statistics, and
    the function that maps them back to passengers."""
    import numpy as np
    import torch
    from aeon.datasets import load_airline

    log = torch.tensor(np.log(np.asarray(load_airline(), dtype=np.float64)), dtype=torch.float32)
    mean, std = log[:TRAIN_MONTHS].mean(), log[:TRAIN_MONTHS].std()
    return (log - mean) / std, lambda z: torch.exp(z * std + mean)


def build_model(impl: str, hidden: int, layers: int):
    import torch

    class Seq2Seq(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = common.gru_class(impl)(1, hidden, layers, batch_first=True)
            self.head = torch.nn.Linear(hidden, 1)  # applied at every timestep

        def forward(self, x, hx=None):  # x (B, T, 1) -> next values (B, T, 1), h_n
            out, h_n = self.gru(x, hx)
            return self.head(out), h_n

    return Seq2Seq()


def train_model(impl: str, args, series):
    """Trains on random windows of the training months; returns the model and its losses."""
    import torch

    device = common.device()
    torch.manual_seed(args.seed)
    model = build_model(impl, args.hidden, args.layers).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    train = series[:TRAIN_MONTHS].to(device)
    starts = torch.arange(0, TRAIN_MONTHS - args.window, args.stride)
    windows = torch.stack([train[s:s + args.window + 1] for s in starts.tolist()])
    x, y = windows[:, :-1, None], windows[:, 1:, None]
    losses = []
    for _ in common.progress(range(args.steps), desc=f"{impl} steps"):
        prediction, _ = model(x)
        loss = torch.nn.functional.mse_loss(prediction, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model.eval(), losses


def run(args) -> list:
    import torch

    common.use_kernels_on_cpu_if_interpreting()
    if args.fast:
        args.hidden, args.window, args.stride, args.steps = 16, 12, 4, 10
    series, to_passengers = load_series()
    truth = to_passengers(series)
    results = []
    for impl in common.impls(args.impl):
        model, losses = train_model(impl, args, series)
        with torch.no_grad():
            prediction, _ = model(series[None, :-1, None].to(common.device()))
        forecast = to_passengers(prediction[0, :, 0].cpu())  # forecast[t] is month t + 1
        test = slice(TRAIN_MONTHS - 1, len(series) - 1)
        rmse = (forecast[test] - truth[TRAIN_MONTHS:]).square().mean().sqrt().item()
        results.append({"impl": impl, "losses": losses, "test_rmse": rmse,
                        "forecast": forecast.tolist()})
    naive = (truth[TRAIN_MONTHS - 12:-12] - truth[TRAIN_MONTHS:]).square().mean().sqrt().item()
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(range(len(truth)), truth, color="black", label="truth")
    for r in results:
        ax.plot(range(1, len(truth)), r["forecast"],
                label=f"{common.label(r['impl'])} (test RMSE {r['test_rmse']:.1f})")
    ax.axvline(TRAIN_MONTHS, color="grey", linestyle=":")
    ax.set_xlabel("month since January 1949")
    ax.set_ylabel("passengers (thousands)")
    ax.set_title("Airline passengers, one-step-ahead GRU forecasts")
    ax.legend()
    path = common.save_plot(fig, args.out_dir, "airline_forecast.png")
    summary = ", ".join(f"{common.label(r['impl'])} test RMSE {r['test_rmse']:.2f}" for r in results)
    print(f"airline_forecast: {summary} (seasonal naive {naive:.2f}) after {args.steps} steps; "
          f"plot {path}")
    for r in results:
        r["seasonal_naive_rmse"] = naive
    return results


if __name__ == "__main__":
    run(common.parse_args(DESCRIPTION, add_arguments))
