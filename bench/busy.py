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

``--official DIR`` adds the official code's rows (bench/official.py), quiet and busy alike. ``--phases
quiet,busy,quiet`` instead runs ONE long training per config and round, the busy processes starting and stopping
between the phases (``--iters`` iterations each), and reports s/iter per phase: how fast the run adapts to load
that comes and goes (util/governor.py).

Example:
    python bench/busy.py                                 # demo, ours and --plain, 3 busy processes, 3 rounds
    python bench/busy.py --config demo --official ../official --phases quiet,busy,quiet --iters 60
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

from bench.official import check_checkout  # noqa: E402
from bench.run import Runner, runners  # noqa: E402
from bench.workloads import Config  # noqa: E402
from util.logger import get_logger, setup_logging  # noqa: E402
from util.threads import available_cores  # noqa: E402

log = get_logger("bench.busy")

SPIN = "while True: pass"
# --busy_kind torch: another user's PyTorch job, torch's default threads (all cores, OpenMP's spin-waiting barriers)
TORCH_LOOP = ("import torch\nconv = torch.nn.Conv2d(64, 64, 3, padding=1)\nx = torch.randn(1, 64, 64, 64)\n"
              "with torch.no_grad():\n    while True:\n        conv(x)\n")
BUSY_CODE = {"spin": SPIN, "torch": TORCH_LOOP}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", action="append", default=[],
                   help="a workload and extra flags (repeatable); default: demo, demo --official_runtime (our "
                        "step, the official runtime settings) and demo --plain (the official step and runtime)")
    p.add_argument("--busy", type=int, default=3, help="competing busy processes")
    p.add_argument("--busy_kind", choices=sorted(BUSY_CODE), default="spin",
                   help="what each busy process runs: spin (one Python busy loop) or torch (convolutions with "
                        "torch's default threads, like another user's training; the fair share then assumes one "
                        "process's worth of cores each)")
    p.add_argument("--iters", type=int, default=0, help="timed iterations per run (0: the workload's default)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per run")
    p.add_argument("--rounds", type=int, default=3, help="repetitions, alternating configs and conditions")
    p.add_argument("--data_dir", default=str(ROOT / "bench" / "out" / "data"), help="cache of the generated images")
    p.add_argument("--json", default="", help="also write the results here")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for one run")
    p.add_argument("--official", default="", metavar="DIR",
                   help="also the official code of the checkout at DIR (bench/official.py), quiet and busy alike, "
                        "in rows labelled '<config> @official'")
    p.add_argument("--phases", default="",
                   help="comma-separated quiet/busy phases of ONE long training run per config and round, e.g. "
                        "quiet,busy,quiet: --iters iterations each (default 40), the busy processes starting and "
                        "stopping between them; per-phase s/iter (training workloads only)")
    args = p.parse_args(argv)
    if args.busy < 1 or args.rounds < 1 or args.iters < 0 or args.warmup < 0:
        p.error("--busy and --rounds must be >= 1, --iters and --warmup >= 0")
    args.config = args.config or ["demo", "demo --official_runtime", "demo --plain"]
    if args.official and check_checkout(Path(args.official)):
        p.error("--official: " + check_checkout(Path(args.official)))
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    if any(x not in ("quiet", "busy") for x in args.phases):
        p.error("--phases: a comma-separated list of quiet and busy")
    if args.phases and not args.iters:
        args.iters = 40
    args.device, args.checkout = "cpu", []
    return args


class Spinners:
    """Busy processes (one busy loop each, or a PyTorch loop: ``--busy_kind``), started and stopped on demand."""

    def __init__(self, kind: str = "spin") -> None:
        """None running."""
        self.procs: List[subprocess.Popen] = []
        self.code = BUSY_CODE[kind]

    def set(self, n: int) -> None:
        """Make ``n`` of them run."""
        while len(self.procs) < n:
            self.procs.append(subprocess.Popen([sys.executable, "-c", self.code]))
        while len(self.procs) > n:
            proc = self.procs.pop()
            proc.kill()
            proc.wait()


def run_with_load(config: Config, runner: Runner, busy: int, args: argparse.Namespace) -> Dict[str, Any]:
    """One run of ``config`` while ``busy`` busy processes compete (0: quiet)."""
    spinners = Spinners(args.busy_kind)
    spinners.set(busy)
    try:
        return runner(config, args)
    finally:
        spinners.set(0)


def phase_plan(phases: List[str], warmup: int, iters: int) -> List[str]:
    """The phase of every iteration of a phased run, warm-up first (untimed, in the first phase)."""
    names = [f"{i + 1}:{name}" for i, name in enumerate(phases)]  # numbered: quiet,busy,quiet has two quiets
    return [names[0]] * warmup + [name for name in names for _ in range(iters)]


def run_phased(config: Config, runner: Runner, args: argparse.Namespace) -> Dict[str, Any]:
    """One long run through ``args.phases``: the busy processes start and stop as the run's iterations report in.

    The iteration running while the load switches is labelled "switch" (it saw both) and left out of the phases.
    """
    plan = phase_plan(args.phases, args.warmup, args.iters)
    spinners = Spinners(args.busy_kind)
    switched: List[int] = []

    def on_iteration(done: int) -> None:
        if done < len(plan) and plan[done] != plan[done - 1]:
            spinners.set(args.busy if plan[done].endswith("busy") else 0)
            switched.append(done)

    spinners.set(args.busy if plan[0].endswith("busy") else 0)
    try:
        result = runner(config, argparse.Namespace(**{**vars(args), "iters": len(plan) - args.warmup}),
                        on_iteration=on_iteration)
    finally:
        spinners.set(0)
    labels = plan[args.warmup:]
    for index in switched:
        if index - args.warmup >= 0:
            labels[index - args.warmup] = "switch"
    result["phase_of_iter"] = labels[-len(result["s_per_iter"]):] if result["s_per_iter"] else []
    return result


def summarise(label: str, quiet: List[Dict[str, Any]], loaded: List[Dict[str, Any]], busy: int,
              n_cores: int) -> Dict[str, Any]:
    """Medians over the rounds' medians of one config, and the ratios."""
    def med(runs: List[Dict[str, Any]], key: str) -> float:
        return statistics.median(statistics.median(r[key]) for r in runs)

    t_quiet, t_busy = med(quiet, "s_per_iter"), med(loaded, "s_per_iter")
    # CPU figures come from /proc: without them the fair share counts the wall time only
    cpu_quiet = med(quiet, "cpu_s_per_iter") if all(r.get("cpu_s_per_iter") for r in quiet) else t_quiet
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


def in_phase(values: List[Any], phases: List[str], name: str) -> List[Any]:
    """The values of the iterations of phase ``name`` (both lists end at the run's last iteration)."""
    return [v for v, n in zip(values, phases[-len(values):]) if n == name] if values else []


def summarise_phases(label: str, runs: List[Dict[str, Any]], busy: int, n_cores: int) -> List[Dict[str, Any]]:
    """Per phase of the phased runs of one config: medians over the rounds, the thread count at its end, and busy
    phases against the fair share reckoned from the first quiet phase."""
    names = list(dict.fromkeys(n for r in runs for n in r["phase_of_iter"] if n != "switch"))
    rows = []
    fair = None
    for name in names:
        per_round = [in_phase(r["s_per_iter"], r["phase_of_iter"], name) for r in runs]
        cpu_round = [in_phase(r.get("cpu_s_per_iter", []), r["phase_of_iter"], name) for r in runs]
        threads = [in_phase(r.get("threads_per_iter", []), r["phase_of_iter"], name) for r in runs]
        median = statistics.median(statistics.median(x) for x in per_round if x)
        every = [t for x in per_round for t in x]
        cpus = [statistics.median(x) for x in cpu_round if x]
        if fair is None and name.endswith("quiet") and cpus:
            fair = max(median, statistics.median(cpus) * (busy + 1) / n_cores)
        rows.append({"config": label, "phase": name, "s": median, "mean_s": statistics.mean(every), "n": len(every),
                     "threads_end": threads[-1][-1] if threads and threads[-1] else None,
                     "vs_fair": median / fair if fair and name.endswith("busy") else None})
    return rows


def phase_table(rows: List[Dict[str, Any]], busy: int, n_cores: int) -> str:
    """The markdown table of a phased run."""
    lines = [f"phases of one run; {busy} busy processes on {n_cores} cores in the busy phases", "",
             "| config | phase | s/iter median | mean | iterations | threads at its end | busy vs fair |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['phase']} | {r['s']:.3f} | {r['mean_s']:.3f} | {r['n']} | "
                     f"{r['threads_end'] if r['threads_end'] is not None else '—'} | "
                     f"{format(r['vs_fair'], '.2f') + '×' if r['vs_fair'] else '—'} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run every config quiet and busy (or through ``--phases``), alternating, for ``--rounds``; print the table."""
    args = parse_args(argv)
    setup_logging()
    n_cores = available_cores()
    configs = runners(args.config, args)
    runs: Dict[str, Dict[str, List[Dict[str, Any]]]] = {c[0]: {"quiet": [], "busy": [], "phased": []}
                                                        for c in configs}
    load_before = os.getloadavg()[0]
    start = time.time()
    for round_index in range(args.rounds):
        order = configs[round_index % len(configs):] + configs[:round_index % len(configs)]
        for label, config, runner in order:
            if args.phases:
                result = run_phased(config, runner, args)
                runs[label]["phased"].append(result)
                log.info("round %d, %s, phases: %.3f s/iter median", round_index + 1, label,
                         statistics.median(result["s_per_iter"]))
                continue
            conditions = [("quiet", 0), ("busy", args.busy)]
            for name, busy in (conditions if round_index % 2 == 0 else conditions[::-1]):
                result = run_with_load(config, runner, busy, args)
                runs[label][name].append(result)
                log.info("round %d, %s, %s: %.3f s/iter", round_index + 1, label, name,
                         statistics.median(result["s_per_iter"]))
    if args.phases:
        rows = [row for c in configs for row in summarise_phases(c[0], runs[c[0]]["phased"], args.busy, n_cores)]
        text = phase_table(rows, args.busy, n_cores)
    else:
        rows = [summarise(c[0], runs[c[0]]["quiet"], runs[c[0]]["busy"], args.busy, n_cores) for c in configs]
        text = table(rows, args.busy, n_cores)
    print(text)
    out = {"command": "python bench/busy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "cores": n_cores, "busy": args.busy, "busy_kind": args.busy_kind, "rounds": args.rounds,
           "phases": args.phases, "rows": rows, "runs": runs, "load_before": load_before, "wall_s": time.time() - start}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
