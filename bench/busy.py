"""Training speed on a busy machine: the slowdown with N competing CPU-bound processes, against the fair share.

Each config (a bench workload, by default the README's demo: ours; our step with the official runtime settings,
``--official_runtime``: OpenMP's default spin-wait, 4 data-loader workers; and the official step written plainly,
``--plain``, which also keeps the official runtime) runs in a fresh process (bench/worker.py) twice per round:
on the otherwise idle machine, and while ``--busy`` processes spin on the CPU (one busy loop each, as another
user's jobs would). Rounds alternate the configs and the two conditions, so slow drifts of the machine hit all
alike.

The fair share: with N busy processes our training is one of N + 1 processes on C cores, so it may expect C /
(N + 1) cores. Quiet, an iteration takes ``t_quiet`` seconds of wall time and ``cpu_quiet`` seconds of CPU time
(the process and its data-loader workers), so at the fair share it would take ``max(t_quiet, cpu_quiet *
(N + 1) / C)``. The table gives the busy time against that (1.0 = the fair share; the goal is <= 1.5).

Example:
    python bench/busy.py                                 # demo, ours and --plain, 3 busy processes, 3 rounds
    python bench/busy.py --config demo --config "demo --num_threads 0" --busy 3 --rounds 2
See docs/performance.md ("A busy machine") for the measured table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import run_worker  # noqa: E402
from bench.workloads import parse_config  # noqa: E402
from util.logger import get_logger, setup_logging  # noqa: E402
from util.threads import available_cores  # noqa: E402

log = get_logger("bench.busy")

SPIN = "while True: pass"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", action="append", default=[],
                   help="a workload and extra flags (repeatable); default: demo, demo --official_runtime (our "
                        "step, the official runtime settings) and demo --plain (the official step and runtime)")
    p.add_argument("--busy", type=int, default=3, help="competing busy processes")
    p.add_argument("--iters", type=int, default=0, help="timed iterations per run (0: the workload's default)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per run")
    p.add_argument("--rounds", type=int, default=3, help="repetitions, alternating configs and conditions")
    p.add_argument("--data_dir", default=str(ROOT / "bench" / "out" / "data"), help="cache of the generated images")
    p.add_argument("--json", default="", help="also write the results here")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for one run")
    args = p.parse_args(argv)
    if args.busy < 1 or args.rounds < 1 or args.iters < 0 or args.warmup < 0:
        p.error("--busy and --rounds must be >= 1, --iters and --warmup >= 0")
    args.config = args.config or ["demo", "demo --official_runtime", "demo --plain"]
    return args


def run_with_load(label: str, busy: int, args: argparse.Namespace) -> Dict[str, Any]:
    """One worker run of ``label`` while ``busy`` spinning processes compete (0: quiet)."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
    try:
        return run_worker(parse_config(label), argparse.Namespace(device="cpu", iters=args.iters, warmup=args.warmup,
                                                                  data_dir=args.data_dir, timeout=args.timeout))
    finally:
        for proc in spinners:
            proc.kill()
        for proc in spinners:
            proc.wait()


def summarise(label: str, quiet: List[Dict[str, Any]], loaded: List[Dict[str, Any]], busy: int,
              n_cores: int) -> Dict[str, Any]:
    """Medians over the rounds' medians of one config, and the ratios."""
    def med(runs: List[Dict[str, Any]], key: str) -> float:
        return statistics.median(statistics.median(r[key]) for r in runs)

    t_quiet, t_busy = med(quiet, "s_per_iter"), med(loaded, "s_per_iter")
    cpu_quiet = med(quiet, "cpu_s_per_iter")
    fair = max(t_quiet, cpu_quiet * (busy + 1) / n_cores)
    every = [t for r in loaded for t in r["s_per_iter"]]
    return {"config": label, "quiet_s": t_quiet, "quiet_cores": cpu_quiet / t_quiet, "busy_s": t_busy,
            "busy_min_s": min(every), "busy_max_s": max(every), "slowdown": t_busy / t_quiet, "fair_s": fair,
            "vs_fair": t_busy / fair, "threads": quiet[0].get("torch_threads")}


def table(rows: List[Dict[str, Any]], busy: int, n_cores: int) -> str:
    """The markdown table."""
    lines = [f"{busy} busy processes on {n_cores} cores; s/iter medians (busy min-max)", "",
             "| config | quiet s/iter | quiet cores used | busy s/iter | slowdown | fair-share s/iter | busy vs fair |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['quiet_s']:.3f} | {r['quiet_cores']:.2f} | {r['busy_s']:.3f} "
                     f"({r['busy_min_s']:.3f}-{r['busy_max_s']:.3f}) | {r['slowdown']:.2f}x | {r['fair_s']:.3f} | "
                     f"{r['vs_fair']:.2f}x |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run every config quiet and busy, alternating, for ``--rounds``; print and return the table."""
    args = parse_args(argv)
    setup_logging()
    n_cores = available_cores()
    runs: Dict[str, Dict[str, List[Dict[str, Any]]]] = {c: {"quiet": [], "busy": []} for c in args.config}
    load_before = os.getloadavg()[0]
    start = time.time()
    for round_index in range(args.rounds):
        order = args.config[round_index % len(args.config):] + args.config[:round_index % len(args.config)]
        for label in order:
            conditions = [("quiet", 0), ("busy", args.busy)]
            for name, busy in (conditions if round_index % 2 == 0 else conditions[::-1]):
                result = run_with_load(label, busy, args)
                runs[label][name].append(result)
                log.info("round %d, %s, %s: %.3f s/iter", round_index + 1, label, name,
                         statistics.median(result["s_per_iter"]))
    rows = [summarise(c, runs[c]["quiet"], runs[c]["busy"], args.busy, n_cores) for c in args.config]
    text = table(rows, args.busy, n_cores)
    print(text)
    out = {"command": "python bench/busy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "cores": n_cores, "busy": args.busy, "rounds": args.rounds, "rows": rows, "runs": runs,
           "load_before": load_before, "wall_s": time.time() - start}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
