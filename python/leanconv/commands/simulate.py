"""``leanconv simulate``: make a wave data set (resumable, checksummed shards)."""
from __future__ import annotations

import argparse

from . import device, int_at_least


def _pair(kind):
    def parse(text: str):
        parts = text.split(",")
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"expected MIN,MAX or one value, got {text!r}")
        try:
            return tuple(kind(p) for p in parts)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return parse


def register(sub: argparse._SubParsersAction) -> None:
    from leanconv.wave.generate import DatasetConfig

    d = DatasetConfig()
    p = sub.add_parser(
        "simulate",
        help="simulate the 2-D wave equation into a data set folder",
        description="Simulate trajectories of the 2-D wave equation (Q1 finite elements, central differences) "
        "on the unit square and write them as memory-mappable .npy shards with a JSON manifest "
        "(settings, seed, version, SHA-256 per shard).  Rerunning the same command resumes an "
        "interrupted run; the same seed gives the same bytes.",
    )
    p.add_argument("--out", required=True, help="data set folder (created; resumed if it holds this data set)")
    p.add_argument("--samples", type=int_at_least(1), default=256, help="number of trajectories (default 256)")
    p.add_argument("--grid", type=int, default=d.grid, help=f"nodes per side; frames are GRID x GRID (default {d.grid})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"solver steps per trajectory (default {d.steps})")
    p.add_argument("--every", type=int, default=d.every, help=f"steps between stored frames (default {d.every})")
    p.add_argument("--courant", type=float, default=d.courant, help=f"dt as a fraction of the scheme's stability limit (q1: h/c_max; fd4: 1.06 h/c_max; default {d.courant})")
    p.add_argument("--boundary", default=d.boundary,
                   help="neumann (reflecting, default), dirichlet, absorbing, or four kinds LEFT,RIGHT,BOTTOM,TOP")
    p.add_argument("--sponge", type=int, default=0, help="sponge layer width in cells on absorbing sides (default 0)")
    p.add_argument("--media", default=",".join(d.media),
                   help="velocity models to draw from: constant, layered, inclusions, random (comma list)")
    p.add_argument("--c-min", type=float, default=d.c_min, help=f"lowest velocity (default {d.c_min})")
    p.add_argument("--c-max", type=float, default=d.c_max, help=f"highest velocity (default {d.c_max})")
    p.add_argument("--source", choices=["pulse", "ricker"], default=d.source,
                   help="Gaussian initial pulses at rest, or a Ricker point source (default pulse)")
    p.add_argument("--pulses", type=_pair(int), default=d.pulses, help="MIN,MAX pulses per trajectory (default 1,3)")
    p.add_argument("--pulse-width", type=_pair(float), default=d.pulse_width, help="MIN,MAX pulse width in cells (default 2,4)")
    p.add_argument("--ricker-ppw", type=_pair(float), default=d.ricker_ppw,
                   help="MIN,MAX points per peak wavelength of the Ricker source (default 10,20)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype, help="simulation precision (frames are float32)")
    p.add_argument("--scheme", choices=["q1", "fd4"], default=d.scheme,
                   help="fd4 (default): fourth-order finite differences in space and time, the cheaper at "
                        "every accuracy measured; q1: bilinear finite elements, second order")
    p.add_argument("--coarsen", type=int, default=d.coarsen,
                   help="store every COARSEN-th node per axis (GRID-1 divisible by it): frames on a coarser grid "
                        f"than the solver's (default {d.coarsen})")
    p.add_argument("--shard-size", type=int_at_least(1), default=d.shard_size,
                   help=f"trajectories per shard (default {d.shard_size})")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="seed (default 0)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace a data set made with other settings in --out")
    p.add_argument("--preview", action="store_true", help="also write OUT/preview.png with a few trajectories")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from leanconv.wave import DatasetConfig, open_dataset, write_dataset

    config = DatasetConfig(
        grid=args.grid, steps=args.steps, every=args.every, courant=args.courant,
        boundary=args.boundary, sponge=args.sponge,
        media=tuple(m.strip() for m in args.media.split(",") if m.strip()),
        c_min=args.c_min, c_max=args.c_max, source=args.source, pulses=args.pulses,
        pulse_width=args.pulse_width, ricker_ppw=args.ricker_ppw, dtype=args.dtype,
        shard_size=args.shard_size, coarsen=args.coarsen, scheme=args.scheme,
    )
    t0 = time.perf_counter()
    # checks --out (writable, free space, lock, other settings) before simulating anything
    root = write_dataset(args.out, config, args.samples, args.seed, device=args.device,
                         overwrite=args.overwrite, progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    data = open_dataset(root, verify="quick")
    s = data.settings
    print(f"{data}; dt={s['dt']:.4g}, snapshot every {s['every']} steps ({s['snapshot_dt']:.4g}), "
          f"boundary {s['boundary']}; {elapsed:.1f} s")
    if args.preview:
        from leanconv.wave.preview import plot_preview

        print(f"preview: {plot_preview(data, root / 'preview.png')}")
    return 0
