"""Draw loss (or metric) curves into a PNG with Pillow only: one line per series, x = epoch + fraction."""
from __future__ import annotations

import io
import math
import os
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from PIL import Image, ImageDraw, ImageFont

from util.util import atomic_write_bytes

PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]
MAX_POINTS = 4000  # per series; longer series are thinned evenly (the plot is only ~800 px wide)

Series = Dict[str, List[Tuple[float, float]]]


def record_x(record: Mapping) -> float:
    """Return the x position of a log record: ``x`` if present, else epoch + counter_ratio."""
    if "x" in record:
        return float(record["x"])
    return float(record.get("epoch", 0)) + float(record.get("counter_ratio", 0.0))


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


def nice_ticks(lo: float, hi: float, count: int = 6) -> List[float]:
    """Return round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        if value >= lo - step * 1e-9:
            ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    """Format a tick label compactly."""
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


def _thin(points: Sequence[Tuple[float, float]]) -> Sequence[Tuple[float, float]]:
    """Keep at most MAX_POINTS evenly spaced points (first and last always kept)."""
    if len(points) <= MAX_POINTS:
        return points
    stride = len(points) / MAX_POINTS
    kept = [points[int(i * stride)] for i in range(MAX_POINTS)]
    kept[-1] = points[-1]
    return kept


def _font(size: int) -> ImageFont.ImageFont:
    """Return Pillow's built-in font at ``size`` (bitmap fallback without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # very old Pillow
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> Tuple[int, int]:
    """Return (width, height) of rendered text."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def draw_plot(series: Series, title: str, xlabel: str, ylabel: str, size: Tuple[int, int] = (900, 500)) -> Image.Image:
    """Draw the series onto a new RGB image and return it."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font, small, big = _font(13), _font(11), _font(16)
    left, right, top, bottom = 78, 20, 40, 58
    x0, y0, x1, y1 = left, top, width - right, height - bottom

    tw, _ = _text_size(draw, title, big)
    draw.text(((width - tw) / 2, 10), title, fill="black", font=big)
    lw, lh = _text_size(draw, xlabel, font)
    draw.text(((x0 + x1 - lw) / 2, height - lh - 12), xlabel, fill="black", font=font)
    if ylabel:
        label = Image.new("RGBA", (_text_size(draw, ylabel, font)[0] + 4, 18), (255, 255, 255, 0))
        ImageDraw.Draw(label).text((2, 0), ylabel, fill="black", font=font)
        rotated = label.rotate(90, expand=True)
        image.paste(rotated, (8, int((y0 + y1 - rotated.height) / 2)), rotated)

    points = [pt for values in series.values() for pt in values]
    if not points:
        draw.rectangle([x0, y0, x1, y1], outline="black")
        msg = "no data yet"
        mw, mh = _text_size(draw, msg, font)
        draw.text(((x0 + x1 - mw) / 2, (y0 + y1 - mh) / 2), msg, fill=(120, 120, 120), font=font)
        return image

    xmin, xmax = min(p[0] for p in points), max(p[0] for p in points)
    ymin, ymax = min(p[1] for p in points), max(p[1] for p in points)
    if xmax - xmin < 1e-12:
        xmin, xmax = xmin - 0.5, xmax + 0.5
    if ymax - ymin < 1e-12:
        pad = abs(ymin) * 0.1 or 1.0
        ymin, ymax = ymin - pad, ymax + pad
    else:
        pad = (ymax - ymin) * 0.05
        ymin, ymax = ymin - pad, ymax + pad

    def to_px(x: float, y: float) -> Tuple[float, float]:
        """Map data coordinates to pixels."""
        return (x0 + (x - xmin) / (xmax - xmin) * (x1 - x0), y1 - (y - ymin) / (ymax - ymin) * (y1 - y0))

    for tick in nice_ticks(ymin, ymax, count=8):
        _, py = to_px(xmin, tick)
        draw.line([(x0, py), (x1, py)], fill=(230, 230, 230))
        draw.line([(x0 - 5, py), (x0, py)], fill="black")
        text = _fmt(tick)
        tw, th = _text_size(draw, text, small)
        draw.text((x0 - 8 - tw, py - th / 2 - 2), text, fill="black", font=small)
    for tick in nice_ticks(xmin, xmax, count=8):
        px, _ = to_px(tick, ymin)
        draw.line([(px, y0), (px, y1)], fill=(230, 230, 230))
        draw.line([(px, y1), (px, y1 + 5)], fill="black")
        text = _fmt(tick)
        tw, _ = _text_size(draw, text, small)
        draw.text((px - tw / 2, y1 + 8), text, fill="black", font=small)
    draw.rectangle([x0, y0, x1, y1], outline="black")

    for index, (name, values) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        pixels = [to_px(x, y) for x, y in _thin(values)]
        if len(pixels) == 1:
            px, py = pixels[0]
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)
        else:
            draw.line(pixels, fill=color, width=2, joint="curve")

    names = list(series)
    row_h = 16
    legend_w = max(_text_size(draw, n, small)[0] for n in names) + 36
    lx1, ly0 = x1 - 8, y0 + 8
    lx0, ly1 = lx1 - legend_w, ly0 + row_h * len(names) + 8
    draw.rectangle([lx0, ly0, lx1, ly1], fill="white", outline=(160, 160, 160))
    for index, name in enumerate(names):
        color = PALETTE[index % len(PALETTE)]
        cy = ly0 + 4 + row_h * index + row_h / 2
        draw.line([(lx0 + 6, cy), (lx0 + 26, cy)], fill=color, width=3)
        draw.text((lx0 + 30, cy - 8), name, fill="black", font=small)
    return image


def render_loss_plot(records: Iterable[Mapping], path: os.PathLike | str, key: str = "losses",
                     title: str = "loss over time", xlabel: str = "epoch", ylabel: str = "loss",
                     size: Tuple[int, int] = (900, 500)) -> None:
    """Render one curve per name found under ``record[key]`` into a PNG at ``path`` (written atomically)."""
    image = draw_plot(collect_series(records, key), title, xlabel, ylabel, size)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
