"""Run one benchmark config in this process and print its measurements as one JSON line.

Started by bench/run.py as ``python bench/worker.py '<json request>'`` (one fresh process per config and round,
so the peak-memory figure belongs to that config alone). The request names the workload, the extra flags, the
device, the data folder and the iteration counts; the reply line starts with ``RESULT_MARKER``.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from util.threads import limit_torch_threads  # noqa: E402

PLAIN_FLAG = "--plain"  # bench-only: the official step, written plainly (bench/plain_steps.py)
# bench-only: our step with the official runtime settings (4 data-loader workers, torch's default thread count, no
# thread governor); --plain implies them
OFFICIAL_RUNTIME_FLAG = "--official_runtime"

import torch  # noqa: E402

from bench.workloads import Config, Workload  # noqa: E402
from util.governor import ENV_VAR as GOVERNOR_ENV, start_governor  # noqa: E402

RESULT_MARKER = "BENCH_RESULT "
ITER_MARKER = "BENCH_ITER "  # with "progress" in the request: one line per finished training iteration (bench/busy.py)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``VmHWM`` in /proc/self/status; getrusage elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its live data-loader workers, from /proc (Linux)."""
    total = time.process_time()
    try:
        children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    except OSError:
        return total
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    return total


def data_root(base: Path, workload: Workload, n_images: int, dataroot: str = "") -> Path:
    """The workload's dataroot: ``dataroot`` when given (checked: a folder of at least ``n_images`` images for a
    test workload, the train folders otherwise), else the demo images, generated once and cached by parameters."""
    if dataroot:
        return checked_dataroot(Path(dataroot), workload, n_images)
    sys.path.insert(0, str(ROOT / "datasets"))
    from make_demo_dataset import make_demo_dataset

    out = base / f"demo{workload.image_size}_{n_images}"
    make_demo_dataset(out, size=workload.image_size, n_train=n_images, n_test=n_images, seed=0)
    if workload.kind == "test":
        return out / "testA"
    return Path(str(out) + "_pix2pix") if workload.data == "aligned" else out


def checked_dataroot(root: Path, workload: Workload, n_images: int) -> Path:
    """``root`` if it holds what ``workload`` reads (ValueError naming what is missing otherwise)."""
    from util.image_io import list_image_files

    folders = ["."] if workload.kind == "test" else ["train"] if workload.data == "aligned" else ["trainA", "trainB"]
    for name in folders:
        folder = root / name
        count = len(list_image_files(str(folder))[0]) if folder.is_dir() else 0
        if count < n_images:
            raise ValueError(f"--dataroot {root}: {workload.kind} workloads read {n_images} images from "
                             f"{folder.resolve()}, found {count}")
    return root


def device_flags(device: str) -> List[str]:
    """``--gpu_ids`` for the requested device."""
    return ["--gpu_ids", "0" if device == "cuda" else "-1"]


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so the clock measures finished iterations."""
    if device == "cuda":
        torch.cuda.synchronize()


def endless(dataset: Any) -> Iterator[Any]:
    """Batches from the loader, epoch after epoch."""
    epoch = 1
    while True:
        dataset.set_epoch(epoch)
        yield from dataset
        epoch += 1


def split_plain(extra: Tuple[str, ...]) -> Tuple[List[str], bool]:
    """The extra flags without the bench-only ones, and whether ``--plain`` was there."""
    return [a for a in extra if a not in (PLAIN_FLAG, OFFICIAL_RUNTIME_FLAG)], PLAIN_FLAG in extra


def run_train(config: Config, dataroot: Path, work: Path, device: str, warmup: int, iters: int,
              progress: bool = False) -> Dict[str, Any]:
    """Time ``warmup + iters`` training iterations (data loading included); return per-iteration figures."""
    from data import create_dataset
    from models import create_model
    from options.train_options import TrainOptions

    extra, plain = split_plain(config.extra)
    official_runtime = plain or OFFICIAL_RUNTIME_FLAG in config.extra
    official = ["--num_threads", "4"] if official_runtime else []  # the official 4 data workers, whatever the cores
    argv = ["--dataroot", str(dataroot), "--name", "bench", "--checkpoints_dir", str(work / "checkpoints"),
            "--display_id", "0", *device_flags(device), *official, *config.spec.flags, *extra]
    opt = TrainOptions().parse(argv, save=False)
    if not official_runtime:
        limit_torch_threads()  # as train.py does
    # as the training loop does: fewer intra-op threads while other processes compete (util/governor.py)
    governor = start_governor(on_cpu=device == "cpu", deterministic=opt.deterministic)
    dataset = create_dataset(opt)
    model = create_model(opt)
    if model.needs_first_batch:  # as the training loop does (CUT's F is built from the first batch)
        model.data_dependent_initialize(next(iter(dataset)))
    model.setup(opt)
    if plain:
        from bench.plain_steps import make_plain

        make_plain(model)
    else:
        model.allocate_optimizer_state()  # as train.py does
    batches = endless(dataset)
    step_s: List[float] = []
    wait_s: List[float] = []
    cpu_s: List[float] = []
    threads: List[int] = []
    for index in range(warmup + iters):
        cpu = cpu_seconds()
        start = time.perf_counter()
        ran_with = torch.get_num_threads()  # the governor may change it at this iteration's end
        data = next(batches)
        loaded = time.perf_counter()
        model.set_input(data)
        model.optimize_parameters()
        synchronize(device)
        governor.tick()
        step_s.append(time.perf_counter() - start)
        wait_s.append(loaded - start)
        cpu_s.append(cpu_seconds() - cpu)
        threads.append(ran_with)
        if progress:
            print(f"{ITER_MARKER}{index + 1}", flush=True)
    losses = model.get_current_losses()
    return {"s_per_iter": step_s[warmup:], "data_wait_s": wait_s[warmup:], "warmup_s": step_s[:warmup],
            "cpu_s_per_iter": cpu_s[warmup:], "threads_per_iter": threads[warmup:], "images_per_iter": opt.batch_size, "final_losses": dict(losses)}


def load_test_script() -> Any:
    """test.py as a module (the name ``test`` belongs to the standard library)."""
    spec = importlib.util.spec_from_file_location("img2img_test_script", ROOT / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_random_checkpoint(argv: List[str]) -> None:
    """Write the test config's ``latest_net_G.pth`` with random weights (the speed does not depend on them).

    In a child process, so that the measured process's peak memory is test.py's own, as for a real checkpoint.
    """
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from models import create_model; "
            "from options.test_options import TestOptions; "
            "create_model(TestOptions().parse(sys.argv[2:], save=False)).save_networks('latest')")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT), *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"could not write the benchmark checkpoint:\n{proc.stderr[-3000:]}")


def run_test(config: Config, dataroot: Path, work: Path, device: str, warmup: int, iters: int) -> Dict[str, Any]:
    """Time test.py's inference loop (image saving included) over ``warmup + iters`` batches; s per image."""
    from options.test_options import TestOptions

    batch = int(config.flag_value("--batch_size", "1"))
    extra, plain = split_plain(config.extra)
    argv = ["--dataroot", str(dataroot), "--name", "bench", "--checkpoints_dir", str(work / "checkpoints"),
            "--results_dir", str(work / "results"), "--num_test", str((warmup + iters) * batch),
            *device_flags(device), *config.spec.flags, *extra]
    opt = TestOptions().parse(argv, save=False)
    save_random_checkpoint(argv)
    script = load_test_script()
    marks: List[float] = []
    counts: List[int] = []

    def on_batch(n: int) -> None:
        synchronize(device)
        marks.append(time.perf_counter())
        counts.append(n)

    start = time.perf_counter()
    original = script.translate_all

    def timed(run_opt: Any, model: Any, *args: Any, **kwargs: Any) -> int:
        if plain:
            from bench.plain_steps import make_plain

            make_plain(model)
        marks.append(time.perf_counter())  # the loop starts: model built and loaded
        counts.append(0)
        return original(run_opt, model, *args, **kwargs)

    script.translate_all = timed
    script.run_test(opt, on_batch=on_batch)
    per_image = [(marks[i + 1] - marks[i]) / counts[i + 1] for i in range(len(marks) - 1) if counts[i + 1]]
    return {"s_per_iter": per_image[warmup:], "warmup_s": per_image[:warmup], "data_wait_s": [],
            "images_per_iter": 1, "setup_s": marks[0] - start if marks else None}


RUNNERS: Dict[str, Callable[..., Dict[str, Any]]] = {"train": run_train, "test": run_test}


def run(request: Dict[str, Any]) -> Dict[str, Any]:
    """Execute one request (see module docstring) and return the measurements."""
    config = Config(request["workload"], tuple(request["extra"]))
    if {PLAIN_FLAG, OFFICIAL_RUNTIME_FLAG} & set(config.extra):
        os.environ[GOVERNOR_ENV] = "0"  # the official runtime: a fixed thread count
    device = request["device"]
    iters, warmup = int(request["iters"]), int(request["warmup"])
    batch = int(config.flag_value("--batch_size", "1"))
    n_images = max(32, -(-(warmup + iters) * batch // 32) * 32)
    dataroot = data_root(Path(request["data_dir"]), config.spec, n_images, request.get("dataroot", ""))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="img2img_bench_") as work:
        extra = {"progress": True} if request.get("progress") and config.spec.kind == "train" else {}
        result = RUNNERS[config.spec.kind](config, dataroot, Path(work), device, warmup, iters, **extra)
    result.update(label=config.label, device=device, dataroot=request.get("dataroot", ""), peak_rss_mb=peak_rss_mb(), torch_threads=torch.get_num_threads(),
                  peak_cuda_mb=torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None)
    return result


def main() -> None:
    """Parse the JSON request from argv[1], run it, print the result line."""
    logging.getLogger("img2img").setLevel(logging.WARNING)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    result = run(json.loads(sys.argv[1]))
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
