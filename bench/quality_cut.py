"""CUT, FastCUT and CycleGAN on real photos (apple2orange) for the same wall-clock time, scored alike.

Each model is trained by train.py in a subprocess with its published defaults (resnet_9blocks, ngf = ndf = 64;
CUT's antialiased layers and PatchNCE) at ``--size`` px, from a fresh folder, with the learning rate held
constant (``--n_epochs`` large, no decay), and stopped by SIGTERM after ``--minutes``: the graceful stop saves
``latest``, and its training state says how many iterations the model reached. Start-up (imports, building the
networks) counts in the budget, the same for all. The final generators are then scored with the protocol of
docs/evaluation.md (``training/evaluator.py``: the first ``--eval_num`` test images, resized to ``--size``) in
the direction A -> B that all three translate: SWD against testB and the domain classifier's score, next to
the identity (untranslated testA) and the floor (real trainB images). CycleGAN's B -> A is reported too.

The runs are sequential; run it on an otherwise idle machine (the figures are wall-clock figures).

Example:
    python bench/quality_cut.py                          # 3 x 15 min of training, then the scores
    python bench/quality_cut.py --minutes 2 --models cut,fastcut --eval_num 50
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.quality import (DEFAULT_DATAROOT, UNPAIRED_METRICS, markdown_table, resolve_dataroot,  # noqa: E402
                           unpaired_baselines)
from util.logger import get_logger, setup_logging  # noqa: E402

log = get_logger("bench.quality_cut")

MODELS: Dict[str, List[str]] = {
    "cycle_gan": ["--model", "cycle_gan"],
    "cut": ["--model", "cut", "--CUT_mode", "CUT"],
    "fastcut": ["--model", "cut", "--CUT_mode", "FastCUT"],
}


def build_parser() -> argparse.ArgumentParser:
    """Flags of the benchmark (defaults = the documented run)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataroot", default=None, help=f"photos (default {DEFAULT_DATAROOT}; skipped when absent)")
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "quality_cut"), help="output folder")
    p.add_argument("--models", default="cycle_gan,cut,fastcut", help=f"comma-separated, from {','.join(MODELS)}")
    p.add_argument("--minutes", type=float, default=15.0, help="training wall-clock time per model")
    p.add_argument("--size", type=int, default=64, help="crop size (load size = size * 286 / 256)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads of each training and of scoring")
    p.add_argument("--eval_num", type=int, default=200, help="test images per domain for the scores")
    p.add_argument("--seed", type=int, default=0, help="train.py --seed")
    p.add_argument("--extra", default="", help="more train.py flags for every model (e.g. '--ngf 32 --ndf 32')")
    return p


def train_argv(args: argparse.Namespace, model: str, dataroot: Path, checkpoints: Path) -> List[str]:
    """train.py's command line for ``model``: its defaults, constant learning rate, no saving until stopped."""
    return MODELS[model] + ["--dataroot", str(dataroot), "--name", f"equal_time_{model}", "--checkpoints_dir",
                            str(checkpoints), "--load_size", str(round(args.size * 286 / 256)), "--crop_size",
                            str(args.size), "--n_epochs", "100000", "--n_epochs_decay", "0", "--seed",
                            str(args.seed), "--gpu_ids", "-1", "--display_id", "0", "--num_threads", "0",
                            "--print_freq", "100", "--save_latest_freq", "100000000", "--save_epoch_freq",
                            "100000000", "--overwrite", *args.extra.split()]


def train_for(argv: List[str], seconds: float, threads: int, log_file: Path) -> Dict[str, Any]:
    """Run train.py with ``argv``, SIGTERM it after ``seconds``; return the wall and CPU time it used."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    start = time.time()
    before = os.times()
    with open(log_file, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *argv], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=seconds)
            raise RuntimeError(f"train.py ended before its time was up (exit {proc.returncode}); see {log_file}")
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # finishes the iteration, saves latest, exits 143
            code = proc.wait(timeout=600)
    after = os.times()
    if code != 128 + signal.SIGTERM:
        raise RuntimeError(f"train.py exited with {code} instead of saving on SIGTERM; see {log_file}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"wall_s": time.time() - start, "cpu_s": cpu}


def reached(exp: Path) -> Dict[str, int]:
    """Epoch and total_iters of the checkpoint the stop saved."""
    from training.checkpoints import read_state, state_path

    state = read_state(state_path(str(exp), "latest"))
    return {"epoch": int(state["epoch"]), "total_iters": int(state["total_iters"])}


def score(model_name: str, dataroot: Path, checkpoints: Path, args: argparse.Namespace, suite: Any) -> Dict[str, float]:
    """Load the run's latest generators as test.py does (architecture from its config.json) and score them."""
    from models import create_model
    from options.test_options import TestOptions

    test_argv = MODELS[model_name] + ["--dataroot", str(dataroot), "--name", f"equal_time_{model_name}",
                                      "--checkpoints_dir", str(checkpoints), "--gpu_ids", "-1", "--crop_size",
                                      str(args.size), "--load_size", str(args.size)]
    opt = TestOptions().parse(test_argv, save=False)
    model = create_model(opt)
    model.setup(opt)
    return suite.evaluate(model)


def main(argv: Optional[Sequence[str]] = None) -> Optional[Dict[str, Any]]:
    """Train each model for the same time, score them, print and save the table; None when skipped."""
    from bench.quality import parsed_options, _json_safe
    from training.evaluator import UnpairedSuite

    args = build_parser().parse_args(argv)
    setup_logging()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown or not models:
        raise ValueError(f"--models: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODELS)}")
    if not args.minutes > 0 or args.threads < 1 or args.eval_num < 2:
        raise ValueError("--minutes must be > 0, --threads >= 1 and --eval_num >= 2")
    dataroot = resolve_dataroot(args)
    if dataroot is None:
        log.warning("bench/quality_cut.py skipped: %s is not available; pass --dataroot", DEFAULT_DATAROOT)
        return None
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = out / "checkpoints"
    results: Dict[str, Any] = {"command": "python bench/quality_cut.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "dataroot": str(dataroot), "minutes": args.minutes,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": os.getloadavg()[0], "models": {}}
    runs = {}
    for model in models:
        run_argv = train_argv(args, model, dataroot, checkpoints)
        log.info("training %s for %.1f min: python train.py %s", model, args.minutes, " ".join(run_argv))
        used = train_for(run_argv, args.minutes * 60, args.threads, out / f"train_{model}.log")
        runs[model] = (run_argv, {**used, **reached(checkpoints / f"equal_time_{model}")})
        log.info("%s reached %d iterations (%.1f min wall, %.1f min CPU)", model,
                 runs[model][1]["total_iters"], used["wall_s"] / 60, used["cpu_s"] / 60)
    results["load_after_training"] = os.getloadavg()[0]
    first_argv = runs[models[0]][0] + ["--eval_num", str(args.eval_num), "--eval_metrics", ",".join(UNPAIRED_METRICS)]
    suite_opt = parsed_options(first_argv)
    suite = UnpairedSuite(suite_opt, UNPAIRED_METRICS, torch.device("cpu"))
    rows = []
    for model in models:
        run_argv, used = runs[model]
        scores = score(model, dataroot, checkpoints, args, suite)
        results["models"][model] = {"argv": run_argv, **used, "scores": scores}
        rows.append({"row": model, "iterations": used["total_iters"], "s/iter": used["wall_s"] / used["total_iters"],
                     **scores})
    base = unpaired_baselines(suite_opt)
    rows.append({"row": "identity (untranslated testA)", **base["identity"]})
    rows.append({"row": "floor (real trainB)", **base["floor"]})
    results["baselines"] = base
    columns = ["iterations", "s/iter", "swd_AtoB", "domain_score_AtoB", "swd_BtoA", "domain_score_BtoA"]
    table = markdown_table(columns, rows)
    acc = base["identity"].get("domain_acc_real")
    note = (f"{args.minutes:g} min of training each at {args.size} px, {args.threads} threads; domain classifier "
            f"accuracy on the real test subset {acc:.4f}; load average {results['load_before']:.2f} before, "
            f"{results['load_after_training']:.2f} after training")
    log.info("\n%s\n%s", table, note)
    (out / "quality_cut.json").write_text(json.dumps(_json_safe(results), indent=2) + "\n")
    (out / "quality_cut.md").write_text(f"`{results['command']}`\n\n{table}\n\n{note}\n")
    return results


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise SystemExit(f"bench/quality_cut.py: error: {exc}") from exc
