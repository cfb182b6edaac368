"""Convolutions to a few output channels on the CPU: ``nn.Conv2d`` against the row form ``FewOutputsConv2d`` runs.

The CPU's convolution kernels fill their vector lanes with output channels, so a convolution to 3 channels costs
about as much as one to 16. ``FewOutputsConv2d`` (models/layers.py) computes such a convolution as one (1, kw)
convolution with ``out * kh`` outputs plus kh shifted sums (``conv2d_by_rows``). This times both, NCHW and
channels-last, on the shapes where the generators and discriminators have such a convolution and on two shapes
past the ``out * kh`` threshold: at inference in fp32 (the default), or under bf16 autocast as ``--amp bf16`` runs
it (``--dtype bf16``), forward only or forward and backward as training runs it (``--grad``). One table of medians (min–max) in milliseconds;
the two alternate within each round. docs/performance.md quotes it.

Example:
    python bench/narrow_conv.py
    python bench/narrow_conv.py --dtype bf16 --grad
    python bench/narrow_conv.py --conv 64,3,7,0,262 --repeats 21
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

from models.layers import FEW_OUTPUTS_MIN_KERNEL_BF16, FEW_OUTPUTS_ROWS, conv2d_by_rows  # noqa: E402
from util.amp import has_amx_bf16  # noqa: E402
from util.threads import limit_torch_threads  # noqa: E402

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
# in, out, kernel, padding, input side: the ResNet's last 7x7 at 256², 128² and the demo's 64² (ngf 32, padded
# by 3 first), PatchGAN's last 4x4 to 1 channel at 256², a 3x3 to RGB, and 8 / 16 outputs (past the threshold)
DEFAULT_CONVS = ("64,3,7,0,262", "64,3,7,0,134", "32,3,7,0,70", "512,1,4,1,31", "128,3,3,1,128",
                 "64,8,7,0,262", "64,16,7,0,262")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--conv", action="append", help="in,out,kernel,padding,side (repeatable; default: see above)")
    p.add_argument("--repeats", type=int, default=9, help="timed calls per form and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds, the two forms alternating")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                   help="fp32, or bf16 autocast with fp32 weights (as --amp bf16 runs it)")
    p.add_argument("--grad", action="store_true",
                   help="time forward and backward (training), not the forward alone (inference)")
    return p.parse_args(argv)


def conv_of(text: str) -> Tuple[int, ...]:
    """'64,3,7,0,262' -> (64, 3, 7, 0, 262)."""
    values = tuple(int(v) for v in text.split(","))
    if len(values) != 5:
        raise ValueError(f"--conv {text}: give in,out,kernel,padding,side")
    return values


def measure(spec: Tuple[int, ...], layout: torch.memory_format, repeats: int, rounds: int,
            bf16: bool = False, grad: bool = False) -> Dict[str, List[float]]:
    """Seconds per call of both forms on one input, alternating within each round; checks they agree (the output,
    and with ``grad`` the gradients of input and weight)."""
    in_ch, out_ch, kernel, padding, side = spec
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, in_ch, side, side, generator=gen).contiguous(memory_format=layout)
    w = (torch.randn(out_ch, in_ch, kernel, kernel, generator=gen) / (in_ch * kernel * kernel) ** 0.5)
    w = w.contiguous(memory_format=layout).requires_grad_(grad)
    b = torch.randn(out_ch, generator=gen).requires_grad_(grad)
    x = x.bfloat16() if bf16 else x  # autocast's conv input: the bf16 output of the layers before
    x.requires_grad_(grad)
    convs: Dict[str, Callable[[], torch.Tensor]] = {
        "nn.Conv2d": lambda: F.conv2d(x, w, b, 1, padding),
        "by rows": lambda: conv2d_by_rows(x, w, b, (padding, padding))}
    out_grad = torch.randn(1, out_ch, side + 2 * padding - kernel + 1, side + 2 * padding - kernel + 1,
                           generator=gen)

    def run(conv: Callable[[], torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = conv()
        if not grad:
            return (y,)
        x.grad = w.grad = b.grad = None
        y.backward(out_grad.to(y.dtype))
        return y, x.grad, w.grad

    tol = 3e-2 if bf16 else 1e-4
    times: Dict[str, List[float]] = {name: [] for name in convs}
    with torch.inference_mode(not grad):
        for got, want in zip(run(convs["by rows"]), run(convs["nn.Conv2d"])):
            torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol)
        for _ in range(rounds):
            for name, conv in convs.items():
                run(conv)  # warm-up
                for _ in range(repeats):
                    start = time.perf_counter()
                    run(conv)
                    times[name].append(time.perf_counter() - start)
    return times


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, object]]:
    """Measure and print the table; return its rows."""
    args = parse_args(argv)
    limit_torch_threads()
    rows = []
    what = "bf16 autocast" if args.dtype == "bf16" else "fp32"
    print(f"{what}, batch 1, {'forward + backward' if args.grad else 'inference'}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"FewOutputsConv2d takes out x kernel <= {FEW_OUTPUTS_ROWS}, under bf16 autocast kernels of "
          f"{FEW_OUTPUTS_MIN_KERNEL_BF16} rows or more on CPUs without AMX (this CPU: "
          f"{'AMX' if has_amx_bf16() else 'no AMX'})\n")
    print("| in, out, kernel, padding, side | out x kernel | layout | nn.Conv2d ms | by rows ms | speed-up |")
    print("|---|---|---|---|---|---|")
    for text in args.conv or DEFAULT_CONVS:
        spec = conv_of(text)
        for layout_name, layout in LAYOUTS.items():
            times = measure(spec, layout, args.repeats, args.rounds, args.dtype == "bf16", args.grad)
            conv, rows_ = (statistics.median(times[k]) for k in ("nn.Conv2d", "by rows"))
            cells = [f"{1e3 * statistics.median(t):.2f} ({1e3 * min(t):.2f}–{1e3 * max(t):.2f})"
                     for t in times.values()]
            print(f"| {text} | {spec[1] * spec[2]} | {layout_name} | " + " | ".join(cells)
                  + f" | {conv / rows_:.2f}× |")
            rows.append({"conv": text, "layout": layout_name, "nn.Conv2d": conv, "by rows": rows_})
    return rows


if __name__ == "__main__":
    main()
