"""How close a generator's forward pass runs to what this machine's kernels can do (fp32 and ``--amp bf16``).

test.py's time per image is one generator forward pass plus reading and writing the images; the forward pass is
almost all convolutions. This measures, in one run: the forward pass's FLOPs (``torch.utils.flop_counter``), its
time (median of ``--repeats``) and rate, the share of that time spent in convolutions (``torch.profiler``), and
references run the same way: the generator's most frequent convolution alone (its residual blocks' 3x3 conv), a
ResNet's last convolution alone (7x7 to 3 channels, slow for its few outputs: as ``nn.Conv2d`` and as the network
runs it, ``FewOutputsConv2d``) and a large matrix product. Tensors are laid out as test.py lays them out on the CPU
(channels-last; ``--layout nchw`` for the official layout). The gap
between the forward pass's rate and the references bounds what any change outside the convolution kernels can
still gain (docs/performance.md).

Example:
    python bench/roofline.py                                  # resnet_9blocks, 256 px, fp32 and bf16
    python bench/roofline.py --netG unet_256 --size 256 --dtype fp32
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from models import layers, networks  # noqa: E402
from util.threads import limit_torch_threads  # noqa: E402

DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--netG", default="resnet_9blocks", choices=sorted(networks.GENERATORS))
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--size", type=int, default=256, help="image side (test.py's --load_size/--crop_size)")
    p.add_argument("--layout", choices=("channels_last", "nchw"), default="channels_last",
                   help="memory layout of weights and inputs (test.py on the CPU: channels_last)")
    p.add_argument("--dtype", action="append", choices=sorted(DTYPES), help="repeatable (default: fp32 and bf16)")
    p.add_argument("--repeats", type=int, default=7, help="timed calls per measurement (after one warm-up)")
    p.add_argument("--rounds", type=int, default=2, help="repetitions of every measurement, alternating")
    p.add_argument("--json", default="", help="also write the results here")
    return p.parse_args(argv)


def timed(fn: Callable[[], object], repeats: int) -> List[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after one untimed call."""
    fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call of ``fn`` (multiply-add = 2)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def conv_share(fn: Callable[[], object]) -> float:
    """The share of one call's CPU time spent in convolution kernels (profiler, self time)."""
    with torch.profiler.profile() as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if "convolution" in e.key)
    return conv / total if total else float("nan")


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
    """Measure and print one markdown table; return the figures by dtype."""
    args = parse_args(argv)
    limit_torch_threads()
    torch.manual_seed(0)
    fmt = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    net = layers.use_fast_kernels(networks.define_G(3, 3, args.ngf, args.netG, "instance", False)).eval()
    net = net.to(memory_format=fmt)
    x = torch.randn(1, 3, args.size, args.size).contiguous(memory_format=fmt)
    # the generator's residual-block convolution and a matrix product with about as many FLOPs per call
    width = args.ngf * 4
    side = args.size // 4
    conv = torch.nn.Conv2d(width, width, 3).eval().to(memory_format=fmt)
    conv_x = torch.randn(1, width, side + 2, side + 2).contiguous(memory_format=fmt)
    # the ResNet's last convolution (7x7 to 3 channels): few output channels fill few vector lanes
    last = torch.nn.Conv2d(args.ngf, 3, 7).eval().to(memory_format=fmt)
    last_rows = layers.use_fast_kernels(copy.deepcopy(last))
    last_x = torch.randn(1, args.ngf, args.size + 6, args.size + 6).contiguous(memory_format=fmt)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    results: Dict[str, Dict[str, float]] = {}
    samples: Dict[str, Dict[str, List[float]]] = {}
    for name in (args.dtype or ["fp32", "bf16"]):
        dtype = DTYPES[name]
        if dtype is not None:
            layers.keep_dtype_in_padding(net)

        def under(fn: Callable[[], object], dtype=dtype) -> Callable[[], object]:
            def call() -> object:
                with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16,
                                                            enabled=dtype is not None):
                    return fn()
            return call
        calls = {"forward": under(lambda: net(x)), "conv": under(lambda: conv(conv_x)),
                 "last_conv": under(lambda: last(last_x)), "last_conv_fast": under(lambda: last_rows(last_x)),
                 "matmul": under(lambda: a @ b)}
        results[name] = {f"{k}_gflop": flops(c) / 1e9 for k, c in calls.items()}
        results[name]["conv_share"] = conv_share(calls["forward"])
        samples[name] = {k: [] for k in calls}
        for _ in range(args.rounds):
            for key, call in calls.items():
                samples[name][key].extend(timed(call, args.repeats))
    print(f"{args.netG}, ngf {args.ngf}, {args.size}x{args.size}, batch 1, {args.layout}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print("| dtype | forward s (min-max) | GFLOP | GFLOP/s | conv share of time | residual conv alone GFLOP/s "
          "| last conv alone ms (GFLOP/s) | last conv as the network runs it ms | 2048² matmul GFLOP/s "
          "| forward rate / conv alone | forward rate / matmul |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        for key in ("forward", "conv", "last_conv", "last_conv_fast", "matmul"):
            r[f"{key}_s"] = statistics.median(samples[name][key])
            r[f"{key}_gflops"] = r[f"{key}_gflop"] / r[f"{key}_s"]
        s = samples[name]["forward"]
        print(f"| {name} | {r['forward_s']:.3f} ({min(s):.3f}-{max(s):.3f}) | {r['forward_gflop']:.1f} | "
              f"{r['forward_gflops']:.0f} | {r['conv_share']:.0%} | {r['conv_gflops']:.0f} | "
              f"{1e3 * r['last_conv_s']:.1f} ({r['last_conv_gflops']:.0f}) | {1e3 * r['last_conv_fast_s']:.1f} | "
              f"{r['matmul_gflops']:.0f} | "
              f"{r['forward_gflops'] / r['conv_gflops']:.2f} | "
              f"{r['forward_gflops'] / r['matmul_gflops']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
