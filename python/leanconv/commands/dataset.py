"""``leanconv dataset verify|info DIR``: check or describe a wave data set folder."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="verify or describe a wave data set folder",
                       description="Tools for data set folders written by `leanconv simulate`.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    v = actions.add_parser("verify", help="check the manifest's consistency and every shard against it "
                                          "(presence, size, header, SHA-256)",
                           description="Check a data set folder: the manifest's own consistency (counts, shard "
                                       "list, solver settings re-derived from the config, the seed against the "
                                       "stored velocity models) and every shard file (presence, size, .npy header, "
                                       "SHA-256).  Exit code 0: OK, 1: problems (one BAD line each).")
    v.add_argument("dir", help="data set folder")
    v.add_argument("--quick", action="store_true", help="skip the SHA-256 (sizes and headers only)")
    v.set_defaults(func=verify)
    i = actions.add_parser("info", help="print the manifest's settings and sizes")
    i.add_argument("dir", help="data set folder")
    i.set_defaults(func=info)


def verify(args: argparse.Namespace) -> int:
    from leanconv.wave import verify_dataset

    report = verify_dataset(args.dir, full=not args.quick)
    for problem in report.problems:
        print(f"BAD  {problem}")
    mib = report.bytes_checked / 2**20
    if report.ok:
        print(f"OK   {report.root}: {report.shards_checked} shards, {mib:.1f} MiB verified"
              + (" (sizes and headers only)" if args.quick else " (SHA-256)"))
        return 0
    print(f"{len(report.problems)} problem(s) in {report.root}")
    return 1


def info(args: argparse.Namespace) -> int:
    import json
    import sys

    from leanconv.wave.store import read_manifest
    from leanconv.wave.verify import manifest_problems

    m = read_manifest(args.dir)  # DatasetError: one line, exit code 2
    problems = manifest_problems(m)
    try:
        size = sum(f["bytes"] for s in m["shards"] for f in s["files"].values())
        shards = len(m["shards"])
    except (KeyError, TypeError, AttributeError):
        size, shards = float("nan"), "?"
    print(f"{args.dir}: {m['samples']} trajectories in {shards} shards, {size / 2**20:.1f} MiB, "
          f"seed {m['seed']}, leanconv {m.get('leanconv_version')}, complete: {m['complete']}")
    print("solver:", json.dumps(m["solver"]))
    print("config:", json.dumps(m["config"]))
    for p in problems:
        print(f"leanconv dataset info: warning: {p}", file=sys.stderr)
    if problems:
        print(f"leanconv dataset info: warning: the manifest is inconsistent; run `leanconv dataset verify {args.dir}`",
              file=sys.stderr)
    return 0
