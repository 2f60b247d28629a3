"""``leanconv rollout``: roll trained surrogates out on the test split and compare
them with the FE reference and the repeat-last-frame baseline."""
from __future__ import annotations

import argparse

from . import UsageError, device, int_at_least

# row labels the comparison uses itself
_RESERVED = ("repeat last frame", "FE reference")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollout", help="autoregressive rollout of trained surrogates vs the FE reference; table + plots")
    p.add_argument("--data", required=True, help="data set folder (like the one the models were trained on)")
    p.add_argument("--run", action="append", required=True, metavar="[LABEL=]DIR",
                   help="a training run folder (holding model.pt) or a model file, optionally labelled; "
                        "repeat for several (labels must differ)")
    p.add_argument("--steps", type=int_at_least(1), default=10, help="snapshot intervals to predict (default 10)")
    p.add_argument("--out", required=True, help="folder for comparison.{json,md}, nrmse.png, snapshots.png")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--max-windows", type=int_at_least(1), default=256, help="test windows to use at most (default 256)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="roll models out on data whose frame grid, snapshot spacing or channels differ from their "
                        "training data (with a warning) instead of refusing")
    p.set_defaults(func=run)


OUTPUTS = ("comparison.json", "comparison.md", "nrmse.png", "snapshots.png")


def parse_runs(specs: list[str]) -> dict[str, "Path"]:  # noqa: F821
    """``[LABEL=]PATH`` specs -> {label: model file}; refuses duplicate labels and paths holding no model."""
    from pathlib import Path

    runs: dict[str, Path] = {}
    given: dict[str, str] = {}
    for spec in specs:
        label, sep, folder = spec.partition("=") if "=" in spec else ("", "", spec)
        if sep and not label:
            raise UsageError(f"--run {spec}: the label before '=' is empty")
        if not folder:
            raise UsageError(f"--run {spec}: no run folder after '='")
        path = Path(folder)
        if not label:  # the run folder's name (also for DIR/model.pt), else the file's stem
            whole = path.resolve()
            if path.is_dir():
                label = whole.name
            elif whole.name in ("model.pt", "checkpoint.pt"):
                label = whole.parent.name
            else:
                label = whole.stem
        if label in runs:
            raise UsageError(f"--run: the label {label!r} is given twice ({given[label]} and {spec}); "
                             "give each run its own LABEL=DIR")
        if label in _RESERVED or label.startswith("FE "):
            raise UsageError(f"--run {spec}: the label {label!r} is taken by a baseline row; choose another")
        if not path.exists():
            raise UsageError(f"--run {spec}: {folder} does not exist")
        if path.is_dir():
            if not (path / "model.pt").is_file():
                hint = (f"; its training has not finished (resume it with `leanconv train ... --resume`), or pass "
                        f"{path / 'checkpoint.pt'} to roll out its last checkpoint"
                        if (path / "checkpoint.pt").is_file() else " (train one with `leanconv train --out DIR`)")
                raise UsageError(f"--run {spec}: {folder} holds no model.pt{hint}")
            path = path / "model.pt"
        runs[label], given[label] = path, spec
    return runs


def run(args: argparse.Namespace) -> int:
    import sys

    from leanconv._preflight import check_output_dir
    from leanconv.surrogate.data import open_data
    from leanconv.surrogate.evaluate import evaluate, write_outputs
    from leanconv.surrogate.train import load_model

    # checks before any work: outputs, runs, models, data set (verified), models against the data
    check_output_dir(args.out, "--out", files=OUTPUTS)
    runs = parse_runs(args.run)
    models = {}
    for label, path in runs.items():
        try:
            models[label] = load_model(path, device=args.device)
        except ValueError as exc:
            raise UsageError(f"--run {label}: {exc}") from exc
    open_data(args.data)
    result = evaluate(models, args.data, steps=args.steps, device=args.device, max_windows=args.max_windows,
                      allow_mismatch=args.allow_mismatch)
    for warning in result.get("warnings", []):
        print(f"leanconv rollout: warning: {warning}", file=sys.stderr)
    paths = write_outputs(result, args.out)
    print(paths["md"].read_text())
    print("figures:", paths["nrmse_png"], paths["snapshots_png"])
    return 0
