"""Variable-length sequences: JapaneseVowels (UEA; 12 LPC channels, 7-29 frames, 9 speakers).

A bidirectional GRU reads each utterance through a PackedSequence (``--feed packed``) or
gru_triton's ``lengths=`` on the padded batch (``--feed lengths``, gru_triton only; nn.GRU has
no such argument, so its runs pack). A linear head classifies the concatenated final states
of both directions. The data ships inside aeon (standard split: 270 train, 370 test).

    python examples/japanese_vowels.py
    python examples/japanese_vowels.py --impl triton --feed lengths
"""

import common

DESCRIPTION = __doc__.splitlines()[0]


def add_arguments(parser):
    parser.add_argument("--feed", choices=["packed", "lengths"], default="packed")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.005)


def load_split():
    """Padded (N, 29, 12) float32 series standardised per channel (train statistics),
    lengths (N,) int64 and labels 0..8, for the standard train and test splits."""
    import numpy as np
    import torch
    from aeon.datasets import load_japanese_vowels

    splits = []
    for split in ("train", "test"):
        series, labels = load_japanese_vowels(split=split)  # list of (12, length) arrays
        lengths = torch.tensor([s.shape[1] for s in series])
        padded = torch.zeros(len(series), 29, 12)
        for i, s in enumerate(series):
            padded[i, :s.shape[1]] = torch.tensor(np.asarray(s, dtype=np.float32).T)
        splits.append([padded, lengths, torch.tensor(labels.astype(np.int64) - 1)])
    train_x, train_len = splits[0][0], splits[0][1]
    frames = torch.cat([train_x[i, :n] for i, n in enumerate(train_len.tolist())])
    mean, std = frames.mean(0), frames.std(0)
    for split in splits:
        inside = torch.arange(29)[None, :, None] < split[1][:, None, None]
        split[0] = torch.where(inside, (split[0] - mean) / std, 0.0)
    return splits


def build_model(impl: str, hidden: int, feed: str):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    class VowelClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = common.gru_class(impl)(12, hidden, batch_first=True, bidirectional=True)
            self.head = torch.nn.Linear(2 * hidden, 9)

        def forward(self, x, lengths):  # x (B, 29, 12) padded, lengths (B,) -> (B, 9) logits
            if feed == "lengths" and impl == "triton":
                _, h_n = self.gru(x, lengths=lengths)
            else:
                packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                              enforce_sorted=False)
                _, h_n = self.gru(packed)
            return self.head(torch.cat([h_n[0], h_n[1]], dim=1))

    return VowelClassifier()


def train(impl: str, args, max_steps=None) -> dict:
    import torch

    device = common.device()
    (x_train, len_train, y_train), (x_test, len_test, y_test) = load_split()
    x_train, y_train, x_test, y_test = (t.to(device) for t in (x_train, y_train, x_test, y_test))
    torch.manual_seed(args.seed)
    model = build_model(impl, args.hidden, args.feed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    order = torch.Generator().manual_seed(args.seed)
    losses, step = [], 0
    for _ in common.progress(range(args.epochs), desc=f"{impl} epochs"):
        for batch in torch.randperm(len(x_train), generator=order).split(args.batch):
            logits = model(x_train[batch.to(device)], len_train[batch])
            loss = torch.nn.functional.cross_entropy(logits, y_train[batch.to(device)])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        if max_steps is not None and step >= max_steps:
            break
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test, len_test).argmax(1) == y_test).float().mean().item()
    return {"impl": impl, "feed": args.feed, "losses": losses, "test_accuracy": accuracy,
            "steps": step}


def run(args) -> list:
    common.use_kernels_on_cpu_if_interpreting()
    max_steps = None
    if args.fast:
        args.hidden, args.epochs, max_steps, args.lr = 16, 1, 5, 0.03
    results = [train(impl, args, max_steps) for impl in common.impls(args.impl)]
    path = common.plot_losses(results, f"JapaneseVowels, bidirectional GRU, {args.feed} input",
                              args.out_dir, "japanese_vowels.png", "test_accuracy", "test accuracy")
    print(f"japanese_vowels ({args.feed}): "
          f"{common.summary(results, 'test_accuracy', 'test accuracy')} after "
          f"{results[0]['steps']} steps; plot {path}")
    return results


if __name__ == "__main__":
    run(common.parse_args(DESCRIPTION, add_arguments))
