"""Benchmark training and test configurations: s/iter, images/s and peak memory, with ratios.

Each config runs in a fresh process (bench/worker.py) for ``--warmup`` untimed and ``--iters`` timed iterations
on generated demo images (datasets/make_demo_dataset.py, cached under ``--data_dir``; ``--dataroot DIR``: real
images), with data loading included. ``--rounds`` repeats every config, alternating them (the order rotates every round) so that machine
noise hits all alike; the median is the median of the rounds' medians (robust to one disturbed round), min and
max span every timed iteration. Results: a markdown table on stdout (ratios against each workload's first config
and against the official figures) and JSON (``--json``).

Examples:
    python bench/run.py --preset cpu                          # the issue's CPU table (plain, fp32, --amp bf16)
    python bench/run.py --config "pix2pix_256 --plain" --config pix2pix_256   # --plain: the official step
    python bench/run.py --config "cycle_gan_128" --config "cycle_gan_128 --amp bf16" --iters 5 --rounds 3
    python bench/run.py --preset gpu --device cuda --warmup 5  # one GPU; compile needs a longer warm-up
    python bench/run.py --config cycle_gan_128 --checkout ../before   # also each config from another checkout
    python bench/run.py --config demo --official ../pytorch-CycleGAN-and-pix2pix   # the official code, same run
See docs/performance.md for the workloads, the measured tables and the exact commands.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.official import check_checkout, run_official, stream  # noqa: E402
from bench.worker import ITER_MARKER, RESULT_MARKER  # noqa: E402
from bench.workloads import PRESETS, WORKLOADS, Config, official_label, parse_config  # noqa: E402
from util.logger import get_logger, setup_logging  # noqa: E402

log = get_logger("bench")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), help="a predefined list of configs")
    p.add_argument("--config", action="append", default=[],
                   help="a workload and extra flags, e.g. \"cycle_gan_256 --amp bf16\" (repeatable); workloads: "
                        + ", ".join(WORKLOADS))
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--iters", type=int, default=0, help="timed iterations per round (0: the workload's default)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per round")
    p.add_argument("--rounds", type=int, default=2, help="repetitions of every config, alternating")
    p.add_argument("--data_dir", type=str, default=str(ROOT / "bench" / "out" / "data"),
                   help="where the generated images are cached")
    p.add_argument("--dataroot", default="", metavar="DIR",
                   help="real images instead of the generated ones, for every config: a folder of images for test "
                        "workloads (e.g. a dataset's testA), a dataset root (trainA/trainB, or train/ for pix2pix) "
                        "for training workloads")
    p.add_argument("--json", type=str, default="", help="write the results here (default: print after the table)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for one config run")
    p.add_argument("--checkout", action="append", default=[],
                   help="another checkout of this project (e.g. an older commit, made with git worktree): every "
                        "config also runs with its code (its bench/worker.py), alternating with ours in each round; "
                        "its rows are labelled '<config> @<folder name>' (repeatable)")
    p.add_argument("--official", default="", metavar="DIR",
                   help="a checkout of the official code: each config's official counterpart (same data and flags, "
                        "our speed options dropped; bench/official.py) runs in the same rounds, in a row labelled "
                        "'<config> @official'; the 'vs official run' column compares with it")
    args = p.parse_args(argv)
    if args.official and check_checkout(Path(args.official)):
        p.error("--official: " + check_checkout(Path(args.official)))
    if not args.preset and not args.config:
        p.error("give --preset or at least one --config")
    if args.dataroot:
        if not Path(args.dataroot).is_dir():
            p.error(f"--dataroot {args.dataroot}: no such folder")
        args.dataroot = str(Path(args.dataroot).resolve())
    for folder in args.checkout:
        if not (Path(folder) / "bench" / "worker.py").is_file():
            p.error(f"--checkout {folder} has no bench/worker.py (a checkout of this project?)")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            p.error("--device cuda: CUDA is not available on this machine")
    return args


def load_average() -> Optional[List[float]]:
    """The 1/5/15-minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_worker(config: Config, args: argparse.Namespace, root: Path = ROOT,
               on_iteration: Optional[Callable[[int], None]] = None) -> Dict[str, Any]:
    """Run one config in a fresh process with the code of checkout ``root`` and return its parsed result (raises
    with its output on failure); ``on_iteration(n)`` hears of each finished training iteration (n from 1)."""
    request = {"workload": config.workload, "extra": list(config.extra), "device": args.device,
               "iters": args.iters or config.spec.iters, "warmup": args.warmup, "data_dir": args.data_dir,
               "dataroot": getattr(args, "dataroot", ""), "progress": on_iteration is not None}
    cmd = [sys.executable, str(root / "bench" / "worker.py"), json.dumps(request)]
    found: List[Dict[str, Any]] = []

    def on_line(line: str, stamp: float, pid: int) -> None:
        if line.startswith(RESULT_MARKER):
            found.append(json.loads(line[len(RESULT_MARKER):]))
        elif line.startswith(ITER_MARKER) and on_iteration is not None:
            on_iteration(int(line[len(ITER_MARKER):]))

    code, tail = stream(cmd, root, dict(os.environ), args.timeout, on_line)
    if found and found[0].get("dataroot", "") != request["dataroot"]:
        raise RuntimeError(f"{root}: its bench/worker.py does not take --dataroot (it would time other images)")
    if found:
        return found[0]
    raise RuntimeError(f"benchmark config '{config.label}' failed (exit {code}):\n{tail}")


Runner = Callable[..., Dict[str, Any]]  # (config, args, on_iteration=None) -> the worker's result fields


def runners(labels: Sequence[str], args: argparse.Namespace) -> List[Tuple[str, Config, Runner]]:
    """(row label, config, how to run it) for every config: ours, each ``--checkout``'s, the official counterpart
    (once per distinct official command: ``cycle_gan_128`` and ``cycle_gan_128 --amp bf16`` share it)."""
    rows: List[Tuple[str, Config, Runner]] = []
    official: List[Tuple[str, Config, Runner]] = []
    for text in labels:
        config = parse_config(text)
        rows.append((config.label, config, lambda c, a, **kw: run_worker(c, a, **kw)))
        for folder in getattr(args, "checkout", []):
            root = Path(folder).resolve()
            rows.append((f"{config.label} @{root.name}", config,
                         lambda c, a, r=root, **kw: run_worker(c, a, r, **kw)))
        if args.official:
            label = official_label(config)
            if label is None:
                log.info("%s: no official counterpart (CUT is not in the official code)", config.label)
            elif label not in [row[0] for row in official]:
                folder = Path(args.official).resolve()
                official.append((label, config, lambda c, a, f=folder, **kw: run_official(
                    c, f, a.device, a.warmup, a.iters or c.spec.iters, a.data_dir, a.timeout,
                    dataroot=getattr(a, "dataroot", ""), **kw)))
    return rows + official


def environment() -> Dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    env: Dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cpu_count": os.cpu_count(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            env["cpu"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def benchmark(args: argparse.Namespace) -> Dict[str, Any]:
    """Run every config ``--rounds`` times, alternating, and summarize."""
    configs = runners((PRESETS[args.preset] if args.preset else []) + args.config, args)
    runs: Dict[str, List[Dict[str, Any]]] = {label: [] for label, _, _ in configs}
    load_before = load_average()
    started = time.time()
    for r in range(args.rounds):
        order = configs[r % len(configs):] + configs[:r % len(configs)]  # rotate: nobody always goes first
        for label, config, runner in order:
            log.info("round %d/%d: %s", r + 1, args.rounds, label)
            result = runner(config, args)
            runs[label].append(result)
            times = sorted(result["s_per_iter"]) or [float("nan")]
            log.info("  median %.3f s/iter, peak RSS %.0f MB", times[len(times) // 2], result["peak_rss_mb"] or 0)
    rows = [report.summarize(label, runs[label]) for label, _, _ in configs]
    report.add_ratios(rows)
    return {"device": args.device, "rounds": args.rounds, "warmup": args.warmup, "environment": environment(),
            "load_average_before": load_before, "load_average_after": load_average(),
            "wall_s": round(time.time() - started, 1), "results": rows, "runs": runs}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Benchmark, print the table, write or print the JSON."""
    setup_logging()
    args = parse_args(argv)
    out = benchmark(args)
    log.info("\n%s\n", report.table(out["results"], args.device))
    log.info("load average before %s, after %s; %s s", out["load_average_before"], out["load_average_after"],
             out["wall_s"])
    text = json.dumps(out, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
        log.info("results written to %s", args.json)
    else:
        log.info("%s", text)
    return out


if __name__ == "__main__":
    main()
