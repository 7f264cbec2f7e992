"""Data-parallel training with DistributedDataParallel, launched by torchrun.

Each process trains the row-by-row digits classifier (``digits_rowwise.py``) on its shard of
every global batch; DDP averages the gradients. At the end the replicas' weights are
gathered and compared with each other, and rank 0 trains the same model in a single process
on the whole global batches and compares with that. CPU processes use the gloo backend, GPUs
NCCL (one GPU per process).

    torchrun --standalone --nproc_per_node 2 examples/ddp_train.py --impl triton
"""

import json

import common

DESCRIPTION = __doc__.splitlines()[0]


def add_arguments(parser):
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--global-batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--result", default=None, help="rank 0 writes a JSON summary here")


def _train(model, x, y, args, rank: int, world: int, steps: int):
    """SGD on global batches drawn in the same order everywhere; this process uses its slice."""
    import torch

    # SGD: its update is linear in the gradient, so the DDP-vs-single-process comparison
    # measures the gradient averaging itself (Adam would amplify rounding in tiny gradients).
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    order = torch.Generator().manual_seed(args.seed)
    local = args.global_batch // world
    losses = []
    for _ in common.progress(range(steps), desc=f"rank {rank}", disable=rank != 0):
        batch = torch.randperm(len(x), generator=order)[:args.global_batch]
        mine = batch[rank * local:(rank + 1) * local]
        loss = torch.nn.functional.cross_entropy(model(x[mine]), y[mine])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def run(args) -> dict:
    import os

    import torch
    import torch.distributed as dist

    import digits_rowwise

    common.use_kernels_on_cpu_if_interpreting()
    if args.fast:
        args.hidden, args.global_batch, args.steps = 16, 32, 4
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.global_batch % world:
        raise SystemExit(f"--global-batch {args.global_batch} must split evenly over {world} processes")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)  # so NCCL's barrier below knows this rank's GPU
    x, y, _, _ = (t.to(device) for t in digits_rowwise.load_split(args.seed))
    summary = {}
    for impl in common.impls(args.impl):
        torch.manual_seed(args.seed)
        model = digits_rowwise.build_model(impl, args.hidden, args.layers).to(device)
        single = digits_rowwise.build_model(impl, args.hidden, args.layers).to(device)
        single.load_state_dict(model.state_dict())
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        losses = _train(ddp, x, y, args, rank, world, args.steps)
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        replicas = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(replicas, flat)
        replica_spread = max((r - replicas[0]).abs().max().item() for r in replicas)
        if rank == 0:
            _train(single, x, y, args, 0, 1, args.steps)
            reference = torch.cat([p.detach().reshape(-1) for p in single.parameters()])
            scale = reference.abs().max().item()
            summary[impl] = {"replica_max_abs_difference": replica_spread,
                             "vs_single_process_max_rel_difference":
                                 (flat - reference).abs().max().item() / scale,
                             "first_loss": losses[0], "last_loss": losses[-1]}
    if rank == 0:
        line = ", ".join(f"{common.label(impl)}: replicas differ by {s['replica_max_abs_difference']:.1e}, "
                         f"single-process by {s['vs_single_process_max_rel_difference']:.1e} "
                         f"(loss {s['first_loss']:.3f} -> {s['last_loss']:.3f})"
                         for impl, s in summary.items())
        print(f"ddp_train ({world} processes, {args.steps} steps): {line}")
        if args.result:
            with open(args.result, "w") as f:
                json.dump({"world_size": world, "steps": args.steps, **summary}, f, indent=1)
    # Rank 0 trains the single-process reference alone. Without this barrier the other ranks
    # exit while it still holds their gloo connections open, and a peer's socket closing under
    # gloo's reader thread can abort rank 0 (SIGABRT from an uncaught gloo::IoException).
    dist.barrier()
    dist.destroy_process_group()
    return summary


if __name__ == "__main__":
    run(common.parse_args(DESCRIPTION, add_arguments))
