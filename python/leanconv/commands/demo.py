"""``leanconv demo``: the main job on built-in defaults (see leanconv.surrogate.demo)."""
from __future__ import annotations

import argparse

from . import device, int_at_least


def register(sub: argparse._SubParsersAction) -> None:
    from leanconv.surrogate.demo import DemoConfig as D

    p = sub.add_parser("demo", help="simulate, train dense + factorized surrogates, compare (a few minutes on CPU)")
    p.add_argument("--out", default=D.out, help=f"run folder (default {D.out}; rerunning reuses finished stages)")
    p.add_argument("--samples", type=int_at_least(1), default=D.samples,
                   help=f"trajectories (default {D.samples}; enough for training, validation and test splits)")
    p.add_argument("--epochs", type=int_at_least(1), default=D.epochs,
                   help=f"training epochs per model (default {D.epochs})")
    p.add_argument("--device", type=device, default=D.device, help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--seed", type=int_at_least(0), default=D.seed, help="seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from leanconv.surrogate.demo import DemoConfig, run_demo

    cfg = DemoConfig(out=args.out, samples=args.samples, epochs=args.epochs, device=args.device, seed=args.seed,
                     progress=not args.quiet)
    t0 = time.perf_counter()
    res = run_demo(cfg)
    print()
    print(res["paths"]["md"].read_text())
    print("targets:")
    for statement, met, figures in res["targets"]:
        print(f"  [{'met' if met else 'MISSED'}] {statement}: {figures}")
    print(f"figures: {res['paths']['nrmse_png']}, {res['paths']['snapshots_png']}")
    print(f"total {time.perf_counter() - t0:.0f} s ({', '.join(f'{k} {v:.0f}' for k, v in res['timings'].items())})")
    return 0
