"""Model-level benchmark: training and inference throughput (images/s) of a
UniRepLKNet-style net at K=13 and a ConvNeXt-style net at K=7, on leanconv's
depthwise kernels against the same net (same weights) on PyTorch's
convolutions, in NCHW and channels_last, in the same run.

The leanconv net is the PyTorch net passed through ``leanconv.convert``.
Training = forward + cross-entropy + backward + SGD step in train mode (the
UniRepLKNet in its multi-branch form); inference = eval-mode forward without
autograd (the UniRepLKNet re-parameterized to single large kernels, as it
would be deployed).  ``python benchmarks/bench_models.py --help``.
"""
from __future__ import annotations

import argparse
import copy
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..commands import device, int_at_least, positive_float, subset_of
from .common import OUT_HELP, environment, paired_rounds, parser, returns_exit_code, setup_run, write_report


@dataclass
class NetConfig:
    """A benchmarked network: registry name and constructor arguments."""

    label: str
    model: str
    kernel: int
    kwargs: dict[str, Any] = field(default_factory=dict)


NETS = {
    "unireplknet": NetConfig("UniRepLKNet-A K=13", "unireplknet_a", 13, dict(kernel_sizes=(3, 13, 13, 13))),
    "convnext": NetConfig("ConvNeXt-atto K=7", "convnext_atto", 7, dict(kernel_sizes=7)),
}
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def build_parser() -> argparse.ArgumentParser:
    p = parser("models", __doc__.split("\n\n")[0])
    p.add_argument("--nets", type=subset_of(NETS), default=",".join(NETS),
                   help=f"comma-separated subset of {list(NETS)}")
    p.add_argument("--modes", type=subset_of(["train", "infer"]), default="train,infer",
                   help="comma-separated subset of train,infer")
    p.add_argument("--layouts", type=subset_of(LAYOUTS), default=",".join(LAYOUTS),
                   help=f"comma-separated subset of {list(LAYOUTS)}")
    p.add_argument("--image-size", type=int_at_least(32), default=224, help="image side, >= 32 (default 224)")
    p.add_argument("--batch", type=int_at_least(1), default=8, help="images per training / inference batch")
    p.add_argument("--device", type=device, default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--min-run-time", type=positive_float, default=5.0,
                   help="seconds the slowest variant of a (net, mode) runs (at least 5 interleaved rounds)")
    p.add_argument("--cpu-time", action="store_true",
                   help="time with this process's CPU time (needs --device cpu --threads 1): robust on a busy machine")
    p.add_argument("--quick", action="store_true", help="small run: 96x96 images, batch 4")
    p.add_argument("--out", default=None, help=OUT_HELP)
    return p


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer):
    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def _infer_step(model: nn.Module, x: torch.Tensor):
    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def _variants(net: NetConfig, mode: str, layouts: list[str], device: torch.device, seed: int = 0):
    """(backend, layout, model) for every variant, all with the same weights."""
    from leanconv import convert, models, reparameterize_model

    torch.manual_seed(seed)
    base = models.create(net.model, backend="torch", **net.kwargs).to(device)
    with torch.no_grad():  # layer scale 1 (not 1e-6): every block then shows in the agreement check
        for name, p in base.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
    out = []
    for layout in layouts:
        for backend in ("torch", "leanconv"):
            m = copy.deepcopy(base) if backend == "torch" else convert(base)[0]
            if mode == "infer":
                m = reparameterize_model(m.eval(), inplace=True)
            out.append((backend, layout, m.to(memory_format=LAYOUTS[layout])))
    return out


def _depthwise_counts(model: nn.Module) -> dict[str, int]:
    """How many depthwise layers of ``model`` run leanconv's kernels and how many PyTorch's
    (the table shows that each variant runs what its label says)."""
    from leanconv.nn import DepthwiseConv2d

    dw = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1]
    lean = sum(isinstance(m, DepthwiseConv2d) for m in dw)
    return {"dw_layers_leanconv": lean, "dw_layers_torch": len(dw) - lean}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every variant of every (net, mode); the variants of one (net, mode) run in
    interleaved rounds, and each speedup is the median of the ratios within a round."""
    device = torch.device(args.device)
    nets = [NETS[n] for n in args.nets]
    modes, layouts = args.modes, args.layouts
    clock = time.process_time if args.cpu_time else time.perf_counter
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    rows: list[dict[str, Any]] = []
    for net in nets:
        for mode in modes:
            g = torch.Generator().manual_seed(1)
            x0 = torch.randn(args.batch, 3, args.image_size, args.image_size, generator=g).to(device)
            y = torch.randint(0, 1000, (args.batch,), generator=g).to(device)
            reference = None
            fns, group = {}, []
            for backend, layout, model in _variants(net, mode, layouts, device):
                x = x0.contiguous(memory_format=LAYOUTS[layout])
                row: dict[str, Any] = dict(net=net.label, mode=mode, layout=layout, backend=backend,
                                           **_depthwise_counts(model))
                try:
                    with torch.no_grad():
                        logits = model.eval()(x)  # same weights: the variants must agree
                    model.train(mode == "train")
                    if mode == "train":
                        opt = torch.optim.SGD(model.parameters(), lr=1e-4)
                        fn = _train_step(model, x, y, opt)
                    else:
                        fn = _infer_step(model, x)
                    fn()  # warm-up
                except (RuntimeError, NotImplementedError) as exc:  # e.g. no CUDA kernel in this build
                    row.update(ms=None, images_per_s=None, note=str(exc).splitlines()[0][:120])
                    rows.append(row)
                    print(f"{net.label:20s} {mode:5s} {layout:13s} {backend:8s} unavailable: {row['note']}")
                    continue
                reference = logits if reference is None else reference
                row["max_rel_diff"] = ((logits - reference).abs().max() / reference.abs().max()).item()
                fns[(backend, layout)] = fn
                group.append(row)
            if fns:
                times = {k: np.asarray(v) for k, v in paired_rounds(fns, args.min_run_time, clock, sync).items()}
                _add_timings(group, times, args.batch)
            rows.extend(group)
            for row in group:
                print(f"{net.label:20s} {mode:5s} {row['layout']:13s} {row['backend']:8s} {row['ms']:10.1f} ms  "
                      f"{row['images_per_s']:8.2f} img/s  x{row['speedup_vs_best_torch'] or float('nan'):.2f} "
                      f"vs best torch", flush=True)
    return rows


def _add_timings(group: list[dict[str, Any]], times: dict[tuple[str, str], np.ndarray], batch: int) -> None:
    """ms and images/s (medians) of every row of one (net, mode), and its speedups: the
    median over the rounds of PyTorch's time in the same layout / its time, and of
    PyTorch's faster layout in that round / its time."""
    torch_times = [t for (backend, _), t in times.items() if backend == "torch"]
    best_torch = np.minimum.reduce(torch_times) if torch_times else None
    for row in group:
        t = times[(row["backend"], row["layout"])]
        row["ms"] = float(np.median(t)) * 1e3
        row["images_per_s"] = batch / float(np.median(t))
        same = times.get(("torch", row["layout"]))
        row["speedup_same_layout"] = float(np.median(same / t)) if same is not None else None
        row["speedup_vs_best_torch"] = float(np.median(best_torch / t)) if best_torch is not None else None
        row["rounds"] = len(t)


@returns_exit_code
def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.quick:
        args.image_size, args.batch = 96, 4
    out = setup_run(args, p.error)
    rows = run(args)
    env = environment(args.device)
    env.update(
        image_size=args.image_size, batch=args.batch, clock="process CPU time" if args.cpu_time else "wall",
        load_average_1_5_15min=[round(v, 2) for v in os.getloadavg()],
    )
    notes = (
        "Throughput in images/s (median over `rounds` interleaved rounds: each round runs every variant of a "
        "(net, mode) once, so all see the same machine load). train = fwd + loss + bwd + SGD step (UniRepLKNet "
        "in its multi-branch training form); infer = eval forward, no autograd (UniRepLKNet re-parameterized). "
        "leanconv = the PyTorch net passed through leanconv.convert (same weights). speedup_same_layout: vs "
        "PyTorch in the same memory layout; speedup_vs_best_torch: vs PyTorch's faster layout in the same round "
        "(medians of per-round ratios). dw_layers_leanconv / dw_layers_torch: the model's depthwise layers on "
        "leanconv's kernels / on PyTorch's."
    )
    suffix = "" if args.device == "cpu" else "_" + args.device.replace(":", "")
    if args.device == "cpu" and torch.get_num_threads() > 1:
        suffix += f"-{torch.get_num_threads()}threads"
    json_path, md_path = write_report(
        "models" + suffix, env, rows, out_dir=out,
        columns=["net", "mode", "layout", "backend", "ms", "images_per_s", "speedup_same_layout",
                 "speedup_vs_best_torch", "rounds", "max_rel_diff", "dw_layers_leanconv", "dw_layers_torch", "note"],
        notes=notes,
    )
    print(f"wrote {json_path} and {md_path}")
    return 0
