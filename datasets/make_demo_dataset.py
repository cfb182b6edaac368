"""Generate the embedded demo dataset: procedural "day" and "night" renderings of simple scenes.

Each scene is a sky/ground background with a few coloured circles, rectangles and triangles. Style A ("day") uses a
bright palette; style B ("night") renders the *same* scene with a darker, hue-shifted palette and glowing outlines,
a fixed mapping that a translation network can learn. Written layouts::

    <out>/trainA/*.png  <out>/trainB/*.png    unpaired: trainA and trainB show different scenes
    <out>/testA/*.png   <out>/testB/*.png     paired: testA/k.png and testB/k.png are the same scene (ground truth)
    <out>_pix2pix/train/*.png, test/*.png     aligned A|B pairs (width 2*size) for pix2pix

The output is byte-deterministic for given parameters. A complete set with the same parameters (recorded in
``<out>/demo.json``) is not generated again.

    python datasets/make_demo_dataset.py --out datasets/demo --size 64 --n_train 200 --n_test 20 --seed 0
"""
from __future__ import annotations

import argparse
import colorsys
import json
import re
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from util.errors import InvalidInputError, add_debug_flag, cli_main  # noqa: E402
from util.logger import get_logger, setup_logging  # noqa: E402

log = get_logger(__name__)

VERSION = 1
SUPERSAMPLE = 4
PALETTE_HUES = (0.0, 0.08, 0.15, 0.55, 0.72, 0.88)
NIGHT_HUE_SHIFT = 0.1
SPLIT_SEEDS = {"trainA": 0, "trainB": 1, "test": 2}
_NAME_RE = re.compile(r"^\d{4,}\.png$")


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    """HSV in [0, 1] to an 8-bit RGB tuple."""
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


DAY_FILL = [_rgb(h, 0.85, 0.95) for h in PALETTE_HUES]
NIGHT_FILL = [_rgb(h + NIGHT_HUE_SHIFT, 0.7, 0.4) for h in PALETTE_HUES]
NIGHT_GLOW = [_rgb(h + NIGHT_HUE_SHIFT, 0.4, 1.0) for h in PALETTE_HUES]
STYLES: dict[str, dict[str, Any]] = {
    "day": {"sky": ((135, 190, 235), (215, 235, 250)), "ground": ((110, 170, 90), (70, 130, 60)), "fill": DAY_FILL},
    "night": {"sky": ((8, 12, 40), (40, 45, 90)), "ground": ((25, 40, 35), (8, 16, 12)), "fill": NIGHT_FILL},
}


def random_scene(rng: np.random.Generator) -> dict[str, Any]:
    """Draw a scene description (horizon height and 2-4 shapes, in [0, 1] coordinates)."""
    shapes = []
    for _ in range(int(rng.integers(2, 5))):
        shapes.append({
            "kind": ("circle", "rect", "triangle")[int(rng.integers(0, 3))],
            "colour": int(rng.integers(0, len(PALETTE_HUES))),
            "cx": float(rng.uniform(0.15, 0.85)),
            "cy": float(rng.uniform(0.15, 0.85)),
            "r": float(rng.uniform(0.1, 0.22)),
            "aspect": float(rng.uniform(0.6, 1.4)),
            "angle": float(rng.uniform(0.0, 2.0 * np.pi)),
        })
    return {"horizon": float(rng.uniform(0.5, 0.8)), "shapes": shapes}


def _background(size: int, horizon: float, style: dict[str, Any]) -> np.ndarray:
    """Vertical sky and ground gradients as a float32 H×W×3 array."""
    ys = (np.arange(size, dtype=np.float32) + 0.5) / size
    hy = horizon
    sky0, sky1 = (np.array(c, np.float32) for c in style["sky"])
    gr0, gr1 = (np.array(c, np.float32) for c in style["ground"])
    t_sky = np.clip(ys / hy, 0, 1)[:, None]
    t_gr = np.clip((ys - hy) / max(1e-6, 1 - hy), 0, 1)[:, None]
    rows = np.where((ys < hy)[:, None], sky0 + (sky1 - sky0) * t_sky, gr0 + (gr1 - gr0) * t_gr)
    return np.repeat(rows[:, None, :], size, axis=1)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: dict[str, Any], canvas: int, fill: Optional[tuple],
                outline: Optional[tuple] = None, width: int = 0) -> None:
    """Draw one shape in canvas pixels with the given fill and/or outline."""
    cx, cy, r = shape["cx"] * canvas, shape["cy"] * canvas, shape["r"] * canvas
    kwargs: dict[str, Any] = {"fill": fill, "outline": outline}
    if outline is not None:
        kwargs["width"] = width
    if shape["kind"] == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], **kwargs)
    elif shape["kind"] == "rect":
        hw, hh = r * shape["aspect"], r / shape["aspect"]
        draw.rectangle([cx - hw, cy - hh, cx + hw, cy + hh], **kwargs)
    else:
        a = shape["angle"]
        pts = [(cx + r * np.cos(a + k * 2 * np.pi / 3), cy + r * np.sin(a + k * 2 * np.pi / 3)) for k in range(3)]
        draw.polygon([(float(x), float(y)) for x, y in pts], **kwargs)


def render(scene: dict[str, Any], size: int, style_name: str) -> Image.Image:
    """Render ``scene`` at ``size``×``size`` in the 'day' (A) or 'night' (B) style."""
    style = STYLES[style_name]
    canvas = size * SUPERSAMPLE
    img = Image.fromarray(_background(canvas, scene["horizon"], style).round().astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    glow = Image.new("RGB", (canvas, canvas)) if style_name == "night" else None
    glow_draw = ImageDraw.Draw(glow) if glow is not None else None
    width = max(1, SUPERSAMPLE)
    for shape in scene["shapes"]:
        _draw_shape(draw, shape, canvas, style["fill"][shape["colour"]])
        if glow_draw is not None:
            _draw_shape(glow_draw, shape, canvas, (0, 0, 0))
            _draw_shape(glow_draw, shape, canvas, None, NIGHT_GLOW[shape["colour"]], width)
    if glow is not None:
        sharp = np.asarray(glow, np.float32)
        halo = np.asarray(glow.filter(ImageFilter.GaussianBlur(2.0 * SUPERSAMPLE)), np.float32)
        out = np.asarray(img, np.float32) + 0.9 * sharp + 1.2 * halo
        img = Image.fromarray(np.clip(out, 0, 255).round().astype(np.uint8), "RGB")
    return img.resize((size, size), Image.Resampling.BOX)


def _scene(seed: int, split: str, index: int) -> dict[str, Any]:
    """The scene of one split and index: independent of every other scene and of the set sizes."""
    return random_scene(np.random.default_rng([seed, SPLIT_SEEDS[split], index]))


def _side_by_side(a: Image.Image, b: Image.Image) -> Image.Image:
    """Concatenate two equal-size images horizontally (A|B)."""
    ab = Image.new("RGB", (a.width + b.width, a.height))
    ab.paste(a, (0, 0))
    ab.paste(b, (a.width, 0))
    return ab


def _names(n: int) -> list[str]:
    """File names 0000.png … for ``n`` images."""
    digits = max(4, len(str(max(0, n - 1))))
    return [f"{i:0{digits}d}.png" for i in range(n)]


def _pix2pix_dir(out: Path) -> Path:
    """The aligned layout's folder, a sibling ``<out>_pix2pix``."""
    return out.parent / (out.name + "_pix2pix")


def _expected(out: Path, n_train: int, n_test: int) -> dict[Path, list[str]]:
    """Every folder this generator writes and the file names it holds."""
    p2p = _pix2pix_dir(out)
    return {out / "trainA": _names(n_train), out / "trainB": _names(n_train), out / "testA": _names(n_test),
            out / "testB": _names(n_test), p2p / "train": _names(n_train), p2p / "test": _names(n_test)}


def _is_complete(out: Path, params: dict[str, Any]) -> bool:
    """True when ``<out>/demo.json`` records ``params`` and every expected file exists."""
    meta = out / "demo.json"
    try:
        if json.loads(meta.read_text()) != params:
            return False
    except (OSError, ValueError):
        return False
    for folder, names in _expected(out, params["n_train"], params["n_test"]).items():
        if not folder.is_dir() or not set(names) <= set(p.name for p in folder.iterdir()):
            return False
    return True


def _save(img: Image.Image, path: Path) -> None:
    """Write a PNG (PIL's PNG output has no timestamp, so it is byte-deterministic)."""
    img.save(path, format="PNG")


def make_demo_dataset(out_dir: str | Path, size: int = 64, n_train: int = 200, n_test: int = 20,
                      seed: int = 0, force: bool = False) -> dict[str, Any]:
    """Write the demo dataset under ``out_dir`` (and ``<out_dir>_pix2pix``); return paths, counts and whether it ran."""
    if size < 8:
        raise InvalidInputError(f"--size must be at least 8, got {size}")
    if n_train < 1 or n_test < 1:
        raise InvalidInputError(f"--n_train and --n_test must be at least 1, got {n_train} and {n_test}")
    out = Path(out_dir)
    params = {"generator": "make_demo_dataset", "version": VERSION, "size": size, "n_train": n_train,
              "n_test": n_test, "seed": seed}
    expected = _expected(out, n_train, n_test)
    result = {"out_dir": str(out), "pix2pix_dir": str(_pix2pix_dir(out)), "params": params,
              "counts": {f"{folder.parent.name}/{folder.name}": len(names) for folder, names in expected.items()}}
    if not force and _is_complete(out, params):
        log.info(f"demo dataset {out} is complete, nothing to do")
        return {**result, "generated": False}
    (out / "demo.json").unlink(missing_ok=True)
    for folder, names in expected.items():
        folder.mkdir(parents=True, exist_ok=True)
        keep = set(names)
        for old in folder.iterdir():
            if _NAME_RE.match(old.name) and old.name not in keep:
                old.unlink()
    train_names, test_names = _names(n_train), _names(n_test)
    p2p = _pix2pix_dir(out)
    for i, name in enumerate(train_names):
        scene = _scene(seed, "trainA", i)
        day, night = render(scene, size, "day"), render(scene, size, "night")
        _save(day, out / "trainA" / name)
        _save(_side_by_side(day, night), p2p / "train" / name)
        _save(render(_scene(seed, "trainB", i), size, "night"), out / "trainB" / name)
    for i, name in enumerate(test_names):
        scene = _scene(seed, "test", i)
        day, night = render(scene, size, "day"), render(scene, size, "night")
        _save(day, out / "testA" / name)
        _save(night, out / "testB" / name)
        _save(_side_by_side(day, night), p2p / "test" / name)
    (out / "demo.json").write_text(json.dumps(params, indent=1, sort_keys=True))
    log.info(f"demo dataset written to {out} ({n_train} train, {n_test} test per domain) and {p2p}")
    return {**result, "generated": True}


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="datasets/demo", help="output folder (the pix2pix layout goes to <out>_pix2pix)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--n_train", type=int, default=200, help="training images per domain")
    parser.add_argument("--n_test", type=int, default=20, help="test images per domain (paired)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--force", action="store_true", help="regenerate even if a complete set exists")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    setup_logging()
    make_demo_dataset(args.out, args.size, args.n_train, args.n_test, args.seed, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))  # an error: one "<script>: error:" line, exit status 2
