"""Time one draw of web/loss_plot.png (matplotlib, one panel per loss) for the cycle_gan and pix2pix loss sets.

    python bench/plot_draw.py [--rounds 7] [--points 100,1000,10000]

Prints the median (min/max) seconds per draw for each loss set and history length, measured round-robin (the
configurations alternate within each round, so machine noise falls on all alike). The training page redraws a
plot at most every ``util.visualizer.PLOT_INTERVAL`` seconds; this is what one redraw costs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from util.loss_plot import render_loss_plot  # noqa: E402

LOSS_SETS = {
    "cycle_gan": ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"],
    "pix2pix": ["G_GAN", "G_L1", "D_real", "D_fake"],
}


def records(names, count: int):
    """``count`` loss records, 100 per epoch, with deterministic wavy values."""
    return [{"epoch": 1 + i // 100, "x": 1 + i / 100, "total_iters": i + 1,
             "losses": {n: (j + 1) * (1.5 + ((i * 7919 + j * 104729) % 1000) / 1000) for j, n in enumerate(names)}}
            for i in range(count)]


def main() -> None:
    """Parse the flags, draw round-robin, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--points", type=str, default="100,1000,10000")
    args = parser.parse_args()
    configs = [(name, int(n)) for name in LOSS_SETS for n in args.points.split(",")]
    data = {c: records(LOSS_SETS[c[0]], c[1]) for c in configs}
    times = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "loss_plot.png")
        render_loss_plot(data[configs[0]], path)  # warm-up: the matplotlib import and font cache
        for _ in range(args.rounds):
            for config in configs:
                start = time.perf_counter()
                render_loss_plot(data[config], path, title="bench")
                times[config].append(time.perf_counter() - start)
    print(f"{'losses':<10} {'points':>7}  seconds per draw: median (min/max) over {args.rounds} rounds")
    for (name, count), values in times.items():
        print(f"{name:<10} {count:>7}  {statistics.median(values):.3f} ({min(values):.3f}/{max(values):.3f})")


if __name__ == "__main__":
    main()
