"""``leanconv train-classifier``: train a registry classifier on bundled data (no downloads)."""
from __future__ import annotations

import argparse
import ast
import json

from . import add_resume_or_force, device, int_at_least, nonnegative_float, positive_float


def _model_arg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"--model-arg expects KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a plain string such as backend=torch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-classifier",
        help="train a registry classifier (large-kernel or compressed) on scikit-learn's digits",
        description="Train a model from leanconv.models on scikit-learn's bundled digits (upsampled), "
        "with a progress bar, an atomic checkpoint after every epoch (--resume continues it) and the "
        "final test accuracy (also after re-parameterization where the model has such blocks).",
    )
    p.add_argument("--model", default="unireplknet_micro", help="registry name (see --list)")
    p.add_argument("--model-arg", action="append", type=_model_arg, default=[], metavar="KEY=VALUE",
                   help="constructor argument (Python literal), repeatable, e.g. --model-arg kernel_sizes=17")
    p.add_argument("--list", action="store_true", help="list the classification models and exit")
    p.add_argument("--epochs", type=int_at_least(1), default=10)
    p.add_argument("--batch-size", type=int_at_least(1), default=64)
    p.add_argument("--lr", type=positive_float, default=3e-3)
    p.add_argument("--weight-decay", type=nonnegative_float, default=0.05)
    p.add_argument("--warmup-epochs", type=nonnegative_float, default=1.0)
    p.add_argument("--augment", type=nonnegative_float, default=0.08,
                   help="max random shift, fraction of the image (0: off; below 0.5)")
    p.add_argument("--image-size", type=int_at_least(8), default=32, help="digits are upsampled from 8x8 to this size")
    p.add_argument("--seed", type=int_at_least(0), default=0)
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--channels-last", action="store_true", help="train in channels_last memory format")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", default=None, help="folder for checkpoint.pt and metrics.json (default runs/<model>)")
    p.add_argument("--no-save", action="store_true", help="write no checkpoint or metrics")
    add_resume_or_force(p, "continue from the checkpoint in --out (with the same settings: model, data, schedule, "
                           "--epochs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from leanconv.models import list_models, model_entry
    from leanconv.classify.train import TrainConfig, train_classifier

    if args.list:
        for name in list_models(task="classification"):
            print(f"{name:24s} {model_entry(name).summary}")
        return 0
    out = None if args.no_save else (args.out or f"runs/{args.model}")
    cfg = TrainConfig(
        model=args.model, model_kwargs=dict(args.model_arg), image_size=args.image_size, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
        augment=args.augment, seed=args.seed, device=args.device, channels_last=args.channels_last, out=out,
    )
    cfg.validate()  # model name and arguments, sizes: before torch's threads are touched
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = train_classifier(cfg, resume=args.resume, force=args.force, progress=not args.no_progress)
    summary = {k: v for k, v in result.items() if k != "history"}
    print(json.dumps(summary, indent=2))
    line = (f"{result['model']}: test accuracy {100 * result['test_accuracy']:.2f}% "
            f"({result['test_images']} images) after {result['epochs']} epochs, "
            f"{result['train_time_s']:.1f} s training, {result['params']:,} parameters")
    if "reparam_test_accuracy" in result:
        line += f"; re-parameterized: {100 * result['reparam_test_accuracy']:.2f}%"
    print(line)
    if out:
        print(f"checkpoint and metrics in {out}/")
    return 0
