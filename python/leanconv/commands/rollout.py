"""``leanconv rollout``: roll trained surrogates out on the test split and compare
them with the FE reference and the repeat-last-frame baseline."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollout", help="autoregressive rollout of trained surrogates vs the FE reference; table + plots")
    p.add_argument("--data", required=True, help="data set folder (the one the models were trained on)")
    p.add_argument("--run", action="append", required=True, metavar="[LABEL=]DIR",
                   help="a training run folder (holding model.pt), optionally labelled; repeat for several")
    p.add_argument("--steps", type=int, default=10, help="snapshot intervals to predict (default 10)")
    p.add_argument("--out", required=True, help="folder for comparison.{json,md}, nrmse.png, snapshots.png")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--max-windows", type=int, default=256, help="test windows to use at most (default 256)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from leanconv.surrogate.evaluate import evaluate, write_outputs
    from leanconv.surrogate.train import load_model
    from leanconv.wave import DatasetError

    try:
        models = {}
        for spec in args.run:
            label, _, folder = spec.rpartition("=")
            folder = Path(folder)
            model, info = load_model(folder / "model.pt" if folder.is_dir() else folder, device=args.device)
            models[label or folder.name] = (model, info)
        result = evaluate(models, args.data, steps=args.steps, device=args.device, max_windows=args.max_windows)
    except (ValueError, FileNotFoundError, DatasetError) as exc:
        print(f"leanconv rollout: error: {exc}", file=sys.stderr)
        return 2
    paths = write_outputs(result, args.out)
    print(paths["md"].read_text())
    print("figures:", paths["nrmse_png"], paths["snapshots_png"])
    return 0
