"""Instance norm's kernels on the CPU: forward + backward time of each way to compute it, in both memory layouts.

The official ``nn.InstanceNorm2d`` (``instance_norm``), ``group_norm`` with one group per channel, and
``batch_norm`` with batch statistics on each sample (what ``FastInstanceNorm2d`` runs for channels-last inputs),
on the activation shapes of CycleGAN's ResNet generator, in fp32 and bf16, NCHW and channels-last. One table of
medians (min–max) in milliseconds; the kernels alternate within each round. docs/performance.md quotes it.

Example:
    python bench/norm_kernels.py
    python bench/norm_kernels.py --shape 1,256,64,64 --dtype bf16 --repeats 21
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
# the generator's norms at 128² (its 256² shapes are these with twice the side)
DEFAULT_SHAPES = ("1,64,128,128", "1,128,64,64", "1,256,32,32")
Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
KERNELS: Dict[str, Kernel] = {
    "instance_norm": lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-5),
    "group_norm": lambda x, w, b: F.group_norm(x, x.shape[1], w, b, 1e-5),
    "batch_norm per sample": lambda x, w, b: torch.cat(
        [F.batch_norm(s, None, None, w, b, True, 0.0, 1e-5) for s in x.split(1)]),
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--shape", action="append", help="N,C,H,W (repeatable; default: the generator's at 128²)")
    p.add_argument("--dtype", action="append", choices=sorted(DTYPES), help="repeatable (default: both)")
    p.add_argument("--repeats", type=int, default=11, help="timed calls per kernel and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds, the kernels alternating")
    return p.parse_args(argv)


def shape_of(text: str) -> Tuple[int, ...]:
    """'1,64,128,128' -> (1, 64, 128, 128)."""
    shape = tuple(int(v) for v in text.split(","))
    if len(shape) != 4:
        raise ValueError(f"--shape {text}: give N,C,H,W")
    return shape


def one_call(kernel: Kernel, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, grad: torch.Tensor) -> float:
    """Seconds of one forward + backward of ``kernel``."""
    start = time.perf_counter()
    kernel(x, w, b).backward(grad)
    return time.perf_counter() - start


def measure(shape: Tuple[int, ...], dtype: torch.dtype, layout: torch.memory_format, repeats: int,
            rounds: int) -> Dict[str, List[float]]:
    """Forward + backward seconds of every kernel on one input, alternating kernels within each round."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(dtype).contiguous(memory_format=layout).requires_grad_()
    grad = torch.randn(shape, generator=gen).to(dtype).contiguous(memory_format=layout)
    w, b = torch.rand(shape[1], requires_grad=True), torch.randn(shape[1], requires_grad=True)
    times: Dict[str, List[float]] = {name: [] for name in KERNELS}
    for _ in range(rounds):
        for name, kernel in KERNELS.items():
            one_call(kernel, x, w, b, grad)  # warm-up
            times[name] += [one_call(kernel, x, w, b, grad) for _ in range(repeats)]
    return times


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, object]]:
    """Measure and print the table; return its rows."""
    args = parse_args(argv)
    rows = []
    names = list(KERNELS)
    print("| shape | dtype | layout | " + " | ".join(f"{n} ms" for n in names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for text in args.shape or DEFAULT_SHAPES:
        for dtype_name in args.dtype or ["fp32", "bf16"]:
            for layout_name, layout in LAYOUTS.items():
                times = measure(shape_of(text), DTYPES[dtype_name], layout, args.repeats, args.rounds)
                cells = [f"{1e3 * statistics.median(t):.2f} ({1e3 * min(t):.2f}–{1e3 * max(t):.2f})"
                         for t in times.values()]
                print(f"| {text} | {dtype_name} | {layout_name} | " + " | ".join(cells) + " |")
                rows.append({"shape": text, "dtype": dtype_name, "layout": layout_name,
                             **{n: statistics.median(t) for n, t in times.items()}})
    return rows


if __name__ == "__main__":
    main()
