"""``leanconv train``: train a wave surrogate on a data set from ``leanconv simulate``.

Runs as one process, or under torchrun for several processes / nodes:
``torchrun --nproc-per-node 2 -m leanconv train --data D --out R``.
"""
from __future__ import annotations

import argparse
import math

from . import add_resume_or_force, device, int_at_least, nonnegative_float, positive_float


def _rank(text: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1 or a fraction in (0, 1), got {text!r}") from None
    if not math.isfinite(value) or value <= 0 or (value > 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(f"expected an int >= 1 or a fraction in (0, 1), got {text}")
    return int(value) if value >= 1 and value.is_integer() else value


def _surrogate(name: str) -> str:
    from leanconv.models import list_models
    from leanconv.models.registry import model_entry

    try:
        entry = model_entry(name)
    except KeyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if entry.task != "surrogate":
        raise argparse.ArgumentTypeError(
            f"{name!r} is a {entry.task} model, not a wave surrogate (surrogates: "
            f"{', '.join(list_models(task='surrogate'))}; classifiers train with `leanconv train-classifier`)")
    return name


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    from leanconv.surrogate.train import TrainConfig as C

    p.add_argument("--model", type=_surrogate, default=C.model,
                   help=f"registry name of the surrogate (default {C.model})")
    p.add_argument("--conv", default=C.conv, choices=["dense", "factorized", "large_kernel"],
                   help="how the k x k convolutions are built (default dense)")
    p.add_argument("--rank", type=_rank, default=None,
                   help="factorized: CP rank (int >= 1) or fraction of the dense parameters (float in (0, 1))")
    p.add_argument("--width", type=int_at_least(1), default=C.width,
                   help=f"channels at the top level (default {C.width})")
    p.add_argument("--levels", type=int_at_least(1), default=C.levels,
                   help=f"U-Net levels, each halving the grid (default {C.levels}; at most 1 + log2(frame side - 1))")
    p.add_argument("--t-in", type=int_at_least(1), default=C.t_in, help=f"input snapshots (default {C.t_in})")
    p.add_argument("--t-out", type=int_at_least(1), default=C.t_out,
                   help=f"snapshots predicted per call (default {C.t_out})")
    p.add_argument("--base", default=C.base, choices=["last", "fe"],
                   help="what the network corrects: the last frame, or the coarse FE solver's step on the frames' "
                        f"own grid (default {C.base})")


def register(sub: argparse._SubParsersAction) -> None:
    from leanconv.surrogate.train import TrainConfig as C

    p = sub.add_parser("train", help="train a CNN surrogate of the wave solver (resumable, DDP under torchrun)")
    p.add_argument("--data", required=True, help="data set folder (from `leanconv simulate`)")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, model.pt, history.json")
    add_model_arguments(p)
    p.add_argument("--epochs", type=int_at_least(1), default=C.epochs, help=f"epochs (default {C.epochs})")
    p.add_argument("--batch-size", type=int_at_least(1), default=C.batch_size,
                   help=f"windows per batch and process (default {C.batch_size})")
    p.add_argument("--lr", type=positive_float, default=C.lr, help=f"peak learning rate (default {C.lr})")
    p.add_argument("--grad-clip", type=nonnegative_float, default=C.grad_clip,
                   help=f"clip the global gradient norm to this (default {C.grad_clip}; 0 turns it off)")
    p.add_argument("--unroll", type=int_at_least(1), default=C.unroll,
                   help=f"train on UNROLL autoregressive calls per window (default {C.unroll})")
    p.add_argument("--seed", type=int_at_least(0), default=C.seed, help="seed (default 0)")
    p.add_argument("--device", type=device, default=C.device, help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA")
    add_resume_or_force(p, "continue the run in --out from its checkpoint (same settings and data set; "
                           "--device and --quiet may change)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leanconv.surrogate.train import TrainConfig, train

    cfg = TrainConfig(
        data=args.data, out=args.out, model=args.model, conv=args.conv, rank=args.rank, width=args.width,
        levels=args.levels, t_in=args.t_in, t_out=args.t_out, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, grad_clip=args.grad_clip or None, unroll=args.unroll, seed=args.seed, device=args.device, amp=args.amp,
        progress=not args.quiet, base=args.base,
    )
    summary = train(cfg, resume=args.resume, force=args.force)  # checks settings, --out, data and resume before any work
    last = summary["history"][-1] if summary["history"] else {}
    print(f"trained {summary['params']} parameters in {summary['train_time_s']:.1f} s; "
          f"val nRMSE {last.get('val_nrmse', float('nan')):.4g}; model: {args.out}/model.pt")
    return 0
