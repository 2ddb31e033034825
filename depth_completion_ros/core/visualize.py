"""Depth visualisation: colourised depth, error maps, labelled panels, colour bars, PNG output
(pillow + matplotlib colour maps)."""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ['colorize_depth', 'colour_bar', 'completion_preview', 'dilate_points', 'display_max_depth', 'error_map',
           'save_png', 'side_by_side', 'valid_depth_mask']

# The colour scale's top is this percentile of the shown depths: a few far returns (sky, windows) must not
# squeeze the scene into the first colours, as a fixed 0-80 m scale did with every indoor frame.
DISPLAY_PERCENTILE = 98.0


def valid_depth_mask(depth: np.ndarray) -> np.ndarray:
    depth = np.asarray(depth)
    with np.errstate(invalid='ignore'):
        return np.isfinite(depth) & (depth > 0)


@lru_cache(maxsize=16)
def _colormap_lut(cmap: str) -> np.ndarray:
    """256x3 uint8 lookup table of a matplotlib colormap (imported lazily: it is slow to import)."""
    import matplotlib

    colors = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3]
    return np.round(colors * 255.0).astype(np.uint8)


def _apply_colormap(values: np.ndarray, valid: np.ndarray, vmin: float, vmax: float, cmap: str) -> np.ndarray:
    span = max(vmax - vmin, 1e-12)
    with np.errstate(invalid='ignore'):
        normalised = np.clip((np.where(valid, values, vmin) - vmin) / span, 0.0, 1.0)
    image = _colormap_lut(cmap)[np.round(normalised * 255.0).astype(np.intp)]
    image[~valid] = 0  # invalid pixels are black
    return image


def colorize_depth(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None,
                   cmap: str = 'turbo') -> np.ndarray:
    """HxWx3 uint8 colour image of a depth map; 0/NaN/inf are black. Pass the same vmin/vmax to every
    panel of a comparison so equal colours mean equal depth (defaults: min/max of the valid pixels)."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f'depth must be HxW, got {depth.shape}')
    valid = valid_depth_mask(depth)
    if valid.any():
        vmin = float(depth[valid].min()) if vmin is None else float(vmin)
        vmax = float(depth[valid].max()) if vmax is None else float(vmax)
    else:
        vmin, vmax = (0.0 if vmin is None else float(vmin)), (1.0 if vmax is None else float(vmax))
    return _apply_colormap(depth, valid, vmin, vmax, cmap)


def display_max_depth(maps: Sequence[np.ndarray], limit: float | None = None) -> float:
    """The top of a depth colour scale that fits ``maps`` (metres, 0/NaN = none): their valid pixels'
    DISPLAY_PERCENTILE rounded up to a readable step (1 m below 10 m, 5 m below 50 m, then 10 m), at most
    ``limit`` (the preset's max_range: indoor presets stay within 0-10 m). 1 m when nothing is valid."""
    values = [np.asarray(m, dtype=np.float32)[valid_depth_mask(m)] for m in maps]
    valid = np.concatenate(values) if values else np.zeros(0, np.float32)
    top = float(np.percentile(valid, DISPLAY_PERCENTILE)) if valid.size else 1.0
    step = 1.0 if top < 10.0 else 5.0 if top < 50.0 else 10.0
    top = max(step * float(np.ceil(top / step)), 1.0)
    return min(top, float(limit)) if limit is not None and limit > 0 else top


def readable_ticks(vmax: float, most: int = 11) -> int:
    """How many ticks from 0 to ``vmax`` put them on round values (steps of 1, 2, 2.5 or 5 times a power of
    ten: 0-9 m gets 10 ticks 1 m apart, not 9 at 1.125 m); 9 when no count up to ``most`` does."""
    for count in range(most, 4, -1):
        step = vmax / (count - 1)
        mantissa = step / 10.0 ** np.floor(np.log10(step)) if step > 0 else 0.0
        if any(abs(mantissa - nice) < 1e-9 for nice in (1.0, 2.0, 2.5, 5.0)):
            return count
    return 9


def error_map(pred: np.ndarray, gt: np.ndarray, vmax: float | None = None, cmap: str = 'inferno') -> np.ndarray:
    """HxWx3 uint8 map of |pred - gt| (m) where gt is valid; black where there is no ground truth.
    ``vmax`` (default: 95th percentile of the errors) saturates the scale so a few outliers do not wash it out."""
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    if pred.shape != gt.shape:
        raise ValueError(f'pred {pred.shape} and gt {gt.shape} differ in shape')
    valid = valid_depth_mask(gt) & np.isfinite(pred)
    error = np.abs(np.where(valid, pred - gt, 0.0))
    if vmax is None:
        vmax = float(np.percentile(error[valid], 95)) if valid.any() else 1.0
    return _apply_colormap(error, valid, 0.0, max(vmax, 1e-6), cmap)


def dilate_points(depth: np.ndarray, size: int = 3) -> np.ndarray:
    """Sparse depth with every measured pixel grown to a ``size`` x ``size`` dot, nearest depth winning where dots
    meet (display only: single LiDAR pixels vanish when an image is scaled down)."""
    from scipy.ndimage import grey_dilation

    depth = np.asarray(depth, dtype=np.float32)
    valid = valid_depth_mask(depth)
    if size <= 1 or not valid.any():
        return np.where(valid, depth, np.float32(0.0))
    shown = -grey_dilation(np.where(valid, -depth, -np.inf), size=(size, size))  # max of -depth = nearest
    return np.where(np.isfinite(shown), shown, 0.0).astype(np.float32)


def _font(size: int):  # noqa: ANN202  (PIL font types differ by build)
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def colour_bar(width: int, vmin: float, vmax: float, cmap: str = 'turbo', label: str = 'depth (m)',
               ticks: int = 9, open_ended: bool = True, font_size: int = 14) -> np.ndarray:
    """A horizontal colour bar, HxWx3 uint8: a caption (``label``, the range, "black = no value"), the map's
    gradient from ``vmin`` to ``vmax`` and ``ticks`` labelled values under it. ``open_ended``: the last tick
    reads ``>=vmax`` (values beyond are drawn in the last colour)."""
    from PIL import Image, ImageDraw

    width = max(int(width), 64)
    margin, strip_h = 8, 12
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    text_h = probe.textbbox((0, 0), '0123456789m>', font=font)[3] + 2
    strip_top = 4 + text_h
    height = strip_top + strip_h + 4 + text_h + 2
    bar = np.zeros((height, width, 3), dtype=np.uint8)
    ramp = np.linspace(0.0, 1.0, width - 2 * margin)
    bar[strip_top:strip_top + strip_h, margin:width - margin] = _colormap_lut(cmap)[
        np.round(ramp * 255).astype(np.intp)][None]
    image = Image.fromarray(bar)
    draw = ImageDraw.Draw(image)
    draw.text((margin, 2), f'{label}: {vmin:g} to {vmax:g}{" and beyond" if open_ended else ""}; '
                           f'black = no value', fill=(230, 230, 230), font=font)
    for i in range(ticks):
        fraction = i / max(ticks - 1, 1)
        x = margin + fraction * (width - 2 * margin - 1)
        text = f'{vmin + fraction * (vmax - vmin):g}'
        if open_ended and i == ticks - 1:
            text = f'>={text}'
        draw.line((x, strip_top + strip_h, x, strip_top + strip_h + 3), fill=(255, 255, 255))
        left, _top, right, _bottom = draw.textbbox((0, 0), text, font=font)
        x_text = min(max(x - (right - left) / 2, 0), width - (right - left) - 1)
        draw.text((x_text, strip_top + strip_h + 4), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def completion_preview(rgb: np.ndarray, sparse: np.ndarray, prefill: np.ndarray, dense: np.ndarray,
                       confidence: np.ndarray | None = None, vmax: float | None = None, dense_label: str = 'dense',
                       sparse_label: str = 'sparse', point_size: int = 3, prefill_label: str = 'prefill') -> np.ndarray:
    """One frame top to bottom: RGB, sparse input (dilated dots), prefill, dense output, the confidence map when
    given (0..1), and a colour bar in metres shared by every depth panel. ``vmax``: the scale's top (default:
    :func:`display_max_depth` of the sparse and dense maps); ``prefill_label`` names the prefill that ran (the
    caller knows it; this function does not guess). Unknown is black in every panel, confidence included
    (its 0 where the depth is unknown would otherwise be the colour map's purple)."""
    if vmax is None:
        vmax = display_max_depth([sparse, dense])
    panels = [np.asarray(rgb, dtype=np.uint8), colorize_depth(dilate_points(sparse, point_size), 0.0, vmax),
              colorize_depth(prefill, 0.0, vmax), colorize_depth(dense, 0.0, vmax)]
    labels = ['RGB', f'{sparse_label} (dots enlarged to {point_size} px)', prefill_label, dense_label]
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float32)
        known = np.isfinite(confidence) & valid_depth_mask(dense)
        panels.append(_apply_colormap(confidence, known, 0.0, 1.0, 'viridis'))
        labels.append('confidence (0 = low, 1 = high)')
    stacked = side_by_side(panels, labels, vertical=True)
    bars = [colour_bar(stacked.shape[1], 0.0, vmax, ticks=readable_ticks(vmax))]
    if confidence is not None:
        bars.append(colour_bar(stacked.shape[1], 0.0, 1.0, cmap='viridis', label='confidence', ticks=5,
                               open_ended=False))
    return side_by_side([stacked, *bars], vertical=True)


def _as_rgb_panel(panel: np.ndarray) -> np.ndarray:
    panel = np.asarray(panel)
    if panel.dtype != np.uint8:
        raise ValueError(f'panels must be uint8 (colorize depth first), got {panel.dtype}')
    if panel.ndim == 2:
        return np.repeat(panel[..., None], 3, axis=2)
    if panel.ndim == 3 and panel.shape[2] in (3, 4):
        return panel[..., :3]
    raise ValueError(f'panels must be HxW or HxWx3/4, got {panel.shape}')


def side_by_side(panels: Sequence[np.ndarray], labels: Sequence[str] | None = None, vertical: bool = False,
                 gap: int = 4) -> np.ndarray:
    """Concatenate uint8 panels (HxW or HxWx3) left to right (or top to bottom), padding sizes with black,
    each with its label drawn in the top-left corner."""
    if not panels:
        raise ValueError('no panels to show')
    if labels is not None and len(labels) != len(panels):
        raise ValueError(f'{len(labels)} labels for {len(panels)} panels')
    rgb_panels = [_as_rgb_panel(p) for p in panels]
    if labels is not None:
        rgb_panels = [_draw_label(p, label) for p, label in zip(rgb_panels, labels, strict=True)]
    height = max(p.shape[0] for p in rgb_panels)
    width = max(p.shape[1] for p in rgb_panels)
    pieces = []
    for i, panel in enumerate(rgb_panels):
        target = (panel.shape[0], width) if vertical else (height, panel.shape[1])
        padded = np.zeros(target + (3,), dtype=np.uint8)
        padded[:panel.shape[0], :panel.shape[1]] = panel
        pieces.append(padded)
        if i + 1 < len(rgb_panels) and gap > 0:
            pieces.append(np.zeros(((gap, width) if vertical else (height, gap)) + (3,), dtype=np.uint8))
    return np.concatenate(pieces, axis=0 if vertical else 1)


def _draw_label(panel: np.ndarray, label: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.ascontiguousarray(panel))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((4, 2), label)
    draw.rectangle((left - 3, top - 2, right + 3, bottom + 2), fill=(0, 0, 0))  # readable on any colour
    draw.text((4, 2), label, fill=(255, 255, 255))
    return np.asarray(image)


def save_png(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 HxW / HxWx3 / HxWx4 or uint16 HxW array as PNG (parent folders created)."""
    from PIL import Image

    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype == np.uint16 and array.ndim == 2:
        image = Image.frombytes('I;16', (array.shape[1], array.shape[0]), array.astype('<u2').tobytes())
    elif array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        image = Image.fromarray(array)
    else:
        raise ValueError(f'save_png needs uint8 HxW/HxWx3/HxWx4 or uint16 HxW, got {array.dtype} {array.shape}')
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format='PNG')
    return path
