"""Quality benchmark on real photos (apple2orange): CycleGAN (unpaired) and pix2pix (paired), next to baselines.

1. cycle_gan is trained through train.py (in this process) with ``--eval_freq``; at every evaluation the
   domain-classifier score and SWD of G_A(testA) vs testB and G_B(testB) vs testA are read back from
   ``loss_log.jsonl``. Baselines with the same protocol (training/evaluator.py): the identity (untranslated test
   images) and the real-vs-real floor (the first ``--eval_num`` training images of the target domain).
2. pix2pix is trained on aligned pairs derived from the same photos (bench/make_paired_from_photos.py, e.g.
   grayscale -> photo) and scored with PSNR/SSIM/L1 on the test split, next to the input itself and the mean
   training photo as baselines.

Prints markdown tables and writes ``<out>/quality.json`` and ``<out>/quality.md``. Sized for a 2-core CPU:
the defaults take roughly 30-60 minutes (docs/evaluation.md has the numbers and the exact command). Without
``../shared/datasets/apple2orange`` (and no ``--dataroot``) the benchmark is skipped with a message.

Example:
    python bench/quality.py                      # both benchmarks, defaults
    python bench/quality.py --only cycle_gan --iters_per_epoch 200 --epochs 1 --eval_every 100
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from util.logger import get_logger, setup_logging  # noqa: E402

log = get_logger("bench.quality")

DEFAULT_DATAROOT = ROOT.parent / "shared" / "datasets" / "apple2orange"
BENCHMARKS = ("cycle_gan", "pix2pix")
UNPAIRED_METRICS = ["swd", "classifier"]
PAIRED_METRICS = ["psnr", "ssim", "l1"]


def build_parser() -> argparse.ArgumentParser:
    """Flags of the benchmark (defaults = the documented run)."""
    p = argparse.ArgumentParser(description="Quality benchmark on real photos (apple2orange).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataroot", default=None,
                   help=f"photos with trainA/trainB/testA/testB (default {DEFAULT_DATAROOT}; skipped when absent)")
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "quality"), help="output folder")
    p.add_argument("--only", choices=BENCHMARKS + ("both",), default="both", help="which benchmark to run")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 is fastest on a busy 2-core machine: no oversubscription)")
    p.add_argument("--gpu_ids", default="-1", help="passed to train.py (-1 = CPU)")
    p.add_argument("--seed", type=int, default=0, help="train.py --seed")
    p.add_argument("--eval_num", type=int, default=200, help="images of the fixed test subset per domain")
    # cycle_gan
    p.add_argument("--size", type=int, default=64, help="cycle_gan crop size (load size = size * 286 / 256)")
    p.add_argument("--ngf", type=int, default=32, help="generator width (cycle_gan and pix2pix)")
    p.add_argument("--ndf", type=int, default=32, help="discriminator width (cycle_gan and pix2pix)")
    p.add_argument("--netG", default="resnet_6blocks", help="cycle_gan generator")
    p.add_argument("--iters_per_epoch", type=int, default=1000, help="--max_dataset_size: training images per epoch")
    p.add_argument("--epochs", type=int, default=3, help="cycle_gan epochs in all")
    p.add_argument("--decay_epochs", type=int, default=1, help="of which with linearly decaying LR")
    p.add_argument("--eval_every", type=int, default=500, help="--eval_freq of the cycle_gan run")
    # pix2pix
    p.add_argument("--paired_mode", default="gray", help="how the pix2pix input is derived (gray | edges)")
    p.add_argument("--paired_size", type=int, default=128, help="pix2pix crop size")
    p.add_argument("--paired_netG", default="unet_128", help="pix2pix generator")
    p.add_argument("--paired_epochs", type=int, default=2, help="pix2pix epochs in all")
    p.add_argument("--paired_decay_epochs", type=int, default=1, help="of which with linearly decaying LR")
    p.add_argument("--paired_eval_every", type=int, default=500, help="--eval_freq of the pix2pix run")
    return p


def check_args(args: argparse.Namespace) -> None:
    """One-line errors for flag values that cannot give a complete table."""
    for flag in ("threads", "eval_num", "size", "ngf", "ndf", "iters_per_epoch", "epochs", "eval_every",
                 "paired_size", "paired_epochs", "paired_eval_every"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    for total, decay, every, prefix in ((args.epochs, args.decay_epochs, args.eval_every, ""),
                                        (args.paired_epochs, args.paired_decay_epochs, args.paired_eval_every,
                                         "paired_")):
        if not 0 <= decay < total:
            raise ValueError(f"--{prefix}decay_epochs must be in [0, --{prefix}epochs), got {decay}")
        if (total * args.iters_per_epoch) % every:
            raise ValueError(f"--{prefix}eval_every {every} must divide the {total * args.iters_per_epoch} "
                             f"training iterations (--{prefix}epochs x --iters_per_epoch), so the final model "
                             f"is evaluated")


def resolve_dataroot(args: argparse.Namespace) -> Optional[Path]:
    """The photo folder; None (skip) when the default is absent; an error when an explicit one is."""
    if args.dataroot is None:
        if not DEFAULT_DATAROOT.is_dir():
            return None
        return DEFAULT_DATAROOT
    root = Path(args.dataroot)
    if not root.is_dir():
        raise FileNotFoundError(f"--dataroot {root} not found")
    return root


# ---------------------------------------------------------------------------------------------------- runs
def common_flags(args: argparse.Namespace, name: str, checkpoints: Path) -> List[str]:
    """train.py flags shared by both runs."""
    return ["--name", name, "--checkpoints_dir", str(checkpoints), "--ngf", str(args.ngf), "--ndf", str(args.ndf),
            "--num_threads", "0", "--gpu_ids", args.gpu_ids, "--seed", str(args.seed), "--display_id", "0",
            "--max_dataset_size", str(args.iters_per_epoch), "--eval_num", str(args.eval_num),
            "--print_freq", "100", "--save_epoch_freq", "1", "--save_latest_freq", "1000000"]


def cycle_argv(args: argparse.Namespace, dataroot: Path, checkpoints: Path) -> List[str]:
    """train.py command line of the cycle_gan run."""
    return common_flags(args, "quality_cycle_gan", checkpoints) + [
        "--dataroot", str(dataroot), "--model", "cycle_gan", "--netG", args.netG,
        "--load_size", str(round(args.size * 286 / 256)), "--crop_size", str(args.size),
        "--n_epochs", str(args.epochs - args.decay_epochs), "--n_epochs_decay", str(args.decay_epochs),
        "--eval_freq", str(args.eval_every), "--eval_metrics", ",".join(UNPAIRED_METRICS), "--eval_best", "swd"]


def paired_argv(args: argparse.Namespace, dataroot: Path, checkpoints: Path) -> List[str]:
    """train.py command line of the pix2pix run."""
    return common_flags(args, f"quality_pix2pix_{args.paired_mode}", checkpoints) + [
        "--dataroot", str(dataroot), "--model", "pix2pix", "--netG", args.paired_netG,
        "--load_size", str(round(args.paired_size * 286 / 256)), "--crop_size", str(args.paired_size),
        "--n_epochs", str(args.paired_epochs - args.paired_decay_epochs),
        "--n_epochs_decay", str(args.paired_decay_epochs), "--eval_freq", str(args.paired_eval_every),
        "--eval_metrics", ",".join(PAIRED_METRICS), "--eval_best", "l1"]


def train(argv: List[str], exp_dir: Path) -> float:
    """Run train.py in this process on a fresh experiment folder; return the wall time in seconds."""
    import importlib.util

    if exp_dir.exists():
        shutil.rmtree(exp_dir)  # a previous benchmark run of the same name: its JSON log would mix in
    spec = importlib.util.spec_from_file_location("img2img_train_script", ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log.info("python train.py %s", " ".join(argv))
    start = time.time()
    module.main(argv)
    return time.time() - start


def metric_records(exp_dir: Path) -> List[Dict[str, Any]]:
    """The evaluation records (``"metrics"`` key) of ``loss_log.jsonl``, in order."""
    rows = []
    with open(exp_dir / "loss_log.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if "metrics" in record:
                rows.append({"epoch": record["epoch"], "total_iters": record["total_iters"], **record["metrics"]})
    return rows


def parsed_options(argv: List[str]) -> argparse.Namespace:
    """train.py's options for ``argv`` (not printed or saved)."""
    from options.train_options import TrainOptions

    return TrainOptions().parse(argv, save=False)


# ---------------------------------------------------------------------------------------------------- baselines
def unpaired_baselines(opt: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    """Identity (untranslated test images) and floor (real training images of the target domain), same protocol."""
    from training.evaluator import UnpairedSuite, eval_options, load_folder

    suite = UnpairedSuite(opt, UNPAIRED_METRICS, torch.device("cpu"))
    train_opt = eval_options(opt, opt.phase)
    train_real = {d: load_folder(os.path.join(opt.dataroot, opt.phase + d), train_opt, opt.eval_num, False)[1]
                  for d in "AB"}
    return {"identity": suite.score(suite.real["A"], suite.real["B"]),
            "floor": suite.score(train_real["B"], train_real["A"])}


def paired_baselines(opt: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    """The input itself and the mean training photo, scored against the test photos like the model."""
    from data import find_dataset_using_name
    from training.evaluator import PairedSuite, eval_options
    from util.metrics.images import from_model_range

    suite = PairedSuite(opt, PAIRED_METRICS, torch.device("cpu"))
    inputs = from_model_range(torch.stack([item["A"] for item in suite.items]))
    real = from_model_range(torch.stack([item["B"] for item in suite.items]))
    train_set = find_dataset_using_name(opt.dataset_mode)(eval_options(opt, opt.phase))
    n = min(len(train_set), opt.max_dataset_size)
    mean = torch.stack([train_set[i]["B"] for i in range(int(n))]).mean(dim=0, keepdim=True)
    mean_photo = from_model_range(mean).expand(real.shape[0], -1, -1, -1).contiguous()
    return {"input": suite.score(inputs, real), "mean_train_photo": suite.score(mean_photo, real)}


# ---------------------------------------------------------------------------------------------------- tables
def _cell(value: Any) -> str:
    """A table cell."""
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    return str(value)


def markdown_table(columns: Sequence[str], rows: Sequence[Dict[str, Any]], first: str = "row") -> str:
    """A markdown table with a label column ``first`` then ``columns`` (missing cells left empty)."""
    lines = ["| " + " | ".join([first, *columns]) + " |", "|" + "---|" * (len(columns) + 1)]
    for row in rows:
        lines.append("| " + " | ".join([_cell(row.get(first, ""))] + [_cell(row.get(c, "")) for c in columns]) + " |")
    return "\n".join(lines)


def with_mean(row: Dict[str, Any], key: str) -> Dict[str, Any]:
    """``row`` plus ``<key>_mean`` of its AtoB/BtoA values."""
    out = dict(row)
    if f"{key}_AtoB" in row and f"{key}_BtoA" in row:
        out[f"{key}_mean"] = (row[f"{key}_AtoB"] + row[f"{key}_BtoA"]) / 2.0
    return out


# ---------------------------------------------------------------------------------------------------- benchmarks
def run_cycle(args: argparse.Namespace, dataroot: Path, out: Path) -> Dict[str, Any]:
    """Train cycle_gan with evaluations, add the baselines, return the results and the table."""
    checkpoints = out / "checkpoints"
    argv = cycle_argv(args, dataroot, checkpoints)
    exp = checkpoints / "quality_cycle_gan"
    wall = train(argv, exp)
    opt = parsed_options(argv)
    rows = [with_mean({"row": f"iter {r['total_iters']} (epoch {r['epoch']})", **r}, "swd")
            for r in metric_records(exp)]
    best = json.loads((exp / "best.json").read_text())
    base = unpaired_baselines(opt)
    rows.append(with_mean({"row": "identity (untranslated test images)", **base["identity"]}, "swd"))
    rows.append(with_mean({"row": "floor (real train images of the target domain)", **base["floor"]}, "swd"))
    columns = ["swd_AtoB", "swd_BtoA", "swd_mean", "domain_score_AtoB", "domain_score_BtoA"]
    table = markdown_table(columns, rows)
    acc = base["identity"].get("domain_acc_real")
    note = (f"domain classifier accuracy on the real test subset: {acc:.4f}; best checkpoint (swd mean): "
            f"{best['value']:.4f} at iter {best['total_iters']}; training wall time {wall / 60:.1f} min")
    return {"argv": argv, "wall_s": wall, "rows": rows, "best": best, "baselines": base, "table": table,
            "note": note}


def run_paired(args: argparse.Namespace, dataroot: Path, out: Path) -> Dict[str, Any]:
    """Derive the pairs, train pix2pix with evaluations, add the baselines, return the results and the table."""
    from bench.make_paired_from_photos import make_paired_from_photos

    pairs = out / f"apple2orange_{args.paired_mode}2photo_{args.paired_size}"
    counts = make_paired_from_photos(dataroot, pairs, args.paired_mode, args.paired_size)
    checkpoints = out / "checkpoints"
    argv = paired_argv(args, pairs, checkpoints)
    exp = checkpoints / f"quality_pix2pix_{args.paired_mode}"
    wall = train(argv, exp)
    opt = parsed_options(argv)
    rows = [{"row": f"iter {r['total_iters']} (epoch {r['epoch']})", **r} for r in metric_records(exp)]
    best = json.loads((exp / "best.json").read_text())
    base = paired_baselines(opt)
    rows.append({"row": f"baseline: the input itself ({args.paired_mode})", **base["input"]})
    rows.append({"row": "baseline: mean training photo", **base["mean_train_photo"]})
    table = markdown_table(PAIRED_METRICS, rows)
    note = (f"{counts} pairs; best checkpoint (l1): {best['value']:.4f} at iter {best['total_iters']}; "
            f"training wall time {wall / 60:.1f} min")
    return {"argv": argv, "wall_s": wall, "rows": rows, "best": best, "baselines": base, "table": table,
            "note": note, "pairs": counts}


def _json_safe(value: Any) -> Any:
    """Non-finite floats as strings, recursively (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def main(argv: Optional[Sequence[str]] = None) -> Optional[Dict[str, Any]]:
    """Run the benchmark(s); None when skipped because the photos are absent."""
    args = build_parser().parse_args(argv)
    setup_logging()
    check_args(args)
    dataroot = resolve_dataroot(args)
    if dataroot is None:
        log.warning("bench/quality.py skipped: the photos %s are not available (only project machines have "
                    "../shared/datasets); pass --dataroot with trainA/trainB/testA/testB to run it", DEFAULT_DATAROOT)
        return None
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python bench/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results: Dict[str, Any] = {"command": command.strip(), "dataroot": str(dataroot), "threads": args.threads,
                               "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    start = time.time()
    report = [f"# Quality benchmark\n\n`{results['command']}`\n"]
    todo = BENCHMARKS if args.only == "both" else (args.only,)
    for name in todo:
        res = run_cycle(args, dataroot, out) if name == "cycle_gan" else run_paired(args, dataroot, out)
        results[name] = res
        report.append(f"## {name}\n\n{res['table']}\n\n{res['note']}\n")
        log.info("%s\n%s\n%s", name, res["table"], res["note"])
    results["wall_s"] = time.time() - start
    report.append(f"total wall time {results['wall_s'] / 60:.1f} min\n")
    (out / "quality.json").write_text(json.dumps(_json_safe(results), indent=2) + "\n")
    (out / "quality.md").write_text("\n".join(report))
    log.info("results written to %s and %s (total %.1f min)", out / "quality.json", out / "quality.md",
             results["wall_s"] / 60)
    return results


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"bench/quality.py: error: {exc}") from exc
