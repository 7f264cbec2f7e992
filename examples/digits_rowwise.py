"""Row-by-row image classifier, the classic GRU demo, on scikit-learn's 8x8 digits.

A two-layer GRU(100) reads each image one pixel row per timestep (T = 8, I = 8) and a linear
head classifies its last hidden state. Adam at learning rate 0.01, batch 100; gradient-norm
clipping and exponential learning-rate decay are options. Runs nn.GRU and gru_triton.GRU from
the same initial weights and reports both test accuracies.

    python examples/digits_rowwise.py                 # both impls, full run
    python examples/digits_rowwise.py --impl triton --clip 1.0 --lr-decay 0.97
"""

import common

DESCRIPTION = __doc__.splitlines()[0]


def add_arguments(parser):
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--clip", type=float, default=0.0, help="max gradient norm (0: off)")
    parser.add_argument("--lr-decay", type=float, default=1.0,
                        help="multiply the learning rate by this after every epoch")


def load_split(seed: int):
    """Digits as (N, 8, 8) float32 in [0, 1] and int64 labels: 75 % train, 25 % test."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.images / 16.0, digits.target, test_size=0.25, random_state=seed,
        stratify=digits.target)
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)
    as_y = lambda a: torch.tensor(a, dtype=torch.int64)
    return as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test)


def build_model(impl: str, hidden: int, layers: int):
    import torch

    class RowClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = common.gru_class(impl)(8, hidden, layers, batch_first=True)
            self.head = torch.nn.Linear(hidden, 10)

        def forward(self, images):  # (B, 8 rows, 8 pixels) -> (B, 10) logits
            _, h_n = self.gru(images)
            return self.head(h_n[-1])

    return RowClassifier()


def train(impl: str, args, max_steps=None) -> dict:
    import torch

    device = common.device()
    x_train, y_train, x_test, y_test = (t.to(device) for t in load_split(args.seed))
    torch.manual_seed(args.seed)  # same initial weights for both impls
    model = build_model(impl, args.hidden, args.layers).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)
    order = torch.Generator().manual_seed(args.seed)
    losses, step = [], 0
    for _ in common.progress(range(args.epochs), desc=f"{impl} epochs"):
        for batch in torch.randperm(len(x_train), generator=order).split(args.batch):
            loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        scheduler.step()
        if max_steps is not None and step >= max_steps:
            break
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return {"impl": impl, "losses": losses, "test_accuracy": accuracy, "steps": step}


def run(args) -> list:
    common.use_kernels_on_cpu_if_interpreting()
    max_steps = None
    if args.fast:
        # A small model learns visibly in a dozen steps at a higher learning rate.
        args.hidden, args.batch, args.epochs, max_steps, args.lr = 16, 50, 1, 12, 0.05
    results = [train(impl, args, max_steps) for impl in common.impls(args.impl)]
    path = common.plot_losses(results, "Digits, one pixel row per timestep", args.out_dir,
                              "digits_rowwise.png", "test_accuracy", "test accuracy")
    print(f"digits_rowwise: {common.summary(results, 'test_accuracy', 'test accuracy')} after "
          f"{results[0]['steps']} steps; plot {path}")
    return results


if __name__ == "__main__":
    run(common.parse_args(DESCRIPTION, add_arguments))
