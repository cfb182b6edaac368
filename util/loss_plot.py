"""Draw loss (or metric) curves into a PNG with matplotlib: one small panel per series, x = epochs, shared.

Each name found under ``record[key]`` gets its own panel with its own y scale (a G_L1 near 50 no longer flattens
the GAN losses near 1); all panels share the x axis in epochs trained, ``epoch - 1 + fraction of the epoch``
(``record_x``): epoch 1 spans 0-1, so an epoch ends where the axis says its number. With a
smoothing weight > 0 the raw points are drawn faintly behind an exponential moving average. matplotlib is
imported inside ``build_figure`` only (Agg canvas, no pyplot state), so a run that draws no plot never loads it.
"""
from __future__ import annotations

import io
import math
import os
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple

from util.util import atomic_write_bytes

DEFAULT_SMOOTHING = 0.6  # TensorBoard's default EMA weight: visibly smoother, still follows a trend within ~5 points
MAX_COLUMNS = 4
PANEL_INCHES = (3.0, 2.1)  # width, height of one panel
TITLE_INCHES = 0.4
DPI = 100
COLOR = "#1f77b4"

Series = Dict[str, List[Tuple[float, float]]]


def position(epoch: int, counter_ratio: float) -> float:
    """The x of a record, in epochs trained: ``epoch - 1`` + the fraction of that epoch done (``epoch_iter /
    dataset_size``), so epoch 1 spans 0-1 and the end of epoch 3 is at 3.0."""
    return float(epoch) - 1.0 + float(counter_ratio)


def record_x(record: Mapping) -> float:
    """Return the x position of a log record: from its epoch and counter_ratio (also for a record written when
    x was epoch + fraction), else its ``x``."""
    if "epoch" in record and "counter_ratio" in record:
        return position(record["epoch"], record["counter_ratio"])
    return float(record.get("x", 0.0))


def collect_series(records: Iterable[Mapping], key: str = "losses") -> Series:
    """Group the finite values under ``record[key]`` into one (x, y) list per name, in first-seen order."""
    series: Series = {}
    for record in records:
        values = record.get(key)
        if not isinstance(values, Mapping):
            continue
        x = record_x(record)
        for name, value in values.items():
            try:
                y = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(x) and math.isfinite(y):
                series.setdefault(str(name), []).append((x, y))
    return series


def smooth(values: Sequence[float], weight: float) -> List[float]:
    """Exponential moving average with weight ``weight`` in [0, 1), debiased so the first points are not pulled to 0."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out, last = [], 0.0
    for count, value in enumerate(values, start=1):
        last = weight * last + (1.0 - weight) * value
        out.append(last / (1.0 - weight ** count))
    return out


def grid_shape(count: int, max_columns: int = MAX_COLUMNS) -> Tuple[int, int]:
    """(rows, columns) of the panel grid for ``count`` panels (at least one panel)."""
    columns = max(1, min(count, max_columns))
    return max(1, math.ceil(count / columns)), columns


def build_figure(series: Series, title: str, xlabel: str = "epoch", smoothing: float = DEFAULT_SMOOTHING) -> Any:
    """Return a matplotlib Figure (Agg canvas) with one panel per series, all sharing the x axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - only when a plot is drawn
    from matplotlib.figure import Figure  # noqa: PLC0415

    rows, columns = grid_shape(len(series))
    width, height = PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows + TITLE_INCHES
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    # fixed margins in inches: tight_layout would double the drawing time, and the plot is redrawn during training
    figure.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.5 / height,
                           top=1 - (TITLE_INCHES + 0.3) / height, wspace=0.35, hspace=0.5)
    axes = figure.subplots(rows, columns, sharex=True, squeeze=False)
    figure.suptitle(title)
    if not series:
        axes[0][0].text(0.5, 0.5, "no data yet", ha="center", va="center", color="gray",
                        transform=axes[0][0].transAxes)
    for index, (name, points) in enumerate(series.items()):
        ax = axes[index // columns][index % columns]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        marker = "o" if len(points) == 1 else None
        if smoothing > 0:
            ax.plot(xs, ys, color=COLOR, alpha=0.25, linewidth=1, marker=marker)
            ax.plot(xs, smooth(ys, smoothing), color=COLOR, linewidth=1.6, marker=marker)
        else:
            ax.plot(xs, ys, color=COLOR, linewidth=1.4, marker=marker)
        ax.set_title(name, fontsize=10)
        ax.grid(True, color="#e6e6e6", linewidth=0.8)
        ax.tick_params(labelsize=8)
    for index in range(len(series), rows * columns):
        if index > 0:  # unused cells of the last row stay blank; their column's x labels go to the row above
            axes[index // columns][index % columns].set_visible(False)
            if index >= columns:
                axes[index // columns - 1][index % columns].xaxis.set_tick_params(labelbottom=True)
    for column in range(columns):
        last = max(r for r in range(rows) if axes[r][column].get_visible())
        axes[last][column].set_xlabel(xlabel, fontsize=9)
    return figure


def draw_png(series: Series, title: str, xlabel: str = "epoch", smoothing: float = DEFAULT_SMOOTHING) -> bytes:
    """Draw one panel per series (shared x axis) and return the PNG bytes."""
    buffer = io.BytesIO()
    build_figure(series, title, xlabel, smoothing).savefig(buffer, format="png")
    return buffer.getvalue()


def render_loss_plot(records: Iterable[Mapping], path: os.PathLike | str, key: str = "losses",
                     title: str = "loss over time", xlabel: str = "epoch",
                     smoothing: float = DEFAULT_SMOOTHING) -> Series:
    """Render one panel per name found under ``record[key]`` into a PNG at ``path`` (written atomically).

    Returns the series that were drawn (what the picture shows, as numbers).
    """
    series = collect_series(records, key)
    atomic_write_bytes(path, draw_png(series, title, xlabel, smoothing))
    return series
