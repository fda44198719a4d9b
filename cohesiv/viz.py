"""Pictures: responsibility heat maps, mask overlays, points, labelled tiles.

All functions take and return ``(H, W, 3)`` uint8 RGB images (NumPy); maps are ``(H, W)`` floats
in [0, 1]; masks ``(H, W)`` {0, 1}; points ``(N, 2)`` ``(x, y)`` pixels with the origin at the centre
of the top-left pixel. Pure functions: nothing is written to disk here.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

#: Distinct RGB colours for hands / masks, in order.
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
)
PERSON_COLOR = (255, 200, 0)
OBJECT_COLOR = (0, 200, 255)

_COLORMAPS = {"turbo": cv2.COLORMAP_TURBO, "jet": cv2.COLORMAP_JET, "viridis": cv2.COLORMAP_VIRIDIS}


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    return image


def heatmap(values: np.ndarray, colormap: str = "turbo", vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """Colour-code a map of values (e.g. one hand's responsibility).

    Args:
        values: ``(H, W)`` float; ``vmin`` maps to the colormap's low end, ``vmax`` to its high end
            (values outside are clipped; NaN is drawn as ``vmin``).
        colormap: ``"turbo"``, ``"jet"`` or ``"viridis"`` (OpenCV colormaps).
        vmin: value of the low end.
        vmax: value of the high end.

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: unknown colormap, not 2-D, or ``vmax <= vmin``.
    """
    if colormap not in _COLORMAPS:
        raise ValueError(f"colormap must be one of {sorted(_COLORMAPS)}, got {colormap!r}")
    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"values must be (H, W), got shape {v.shape}")
    if not vmax > vmin:
        raise ValueError(f"vmax must be > vmin, got {vmin}, {vmax}")
    u8 = np.round(np.clip(np.nan_to_num((v - vmin) / (vmax - vmin), nan=0.0), 0, 1) * 255).astype(np.uint8)
    return cv2.applyColorMap(u8, _COLORMAPS[colormap])[..., ::-1].copy()


def blend(image: np.ndarray, overlay: np.ndarray, alpha: float | np.ndarray = 0.5) -> np.ndarray:
    """``(1 - alpha) * image + alpha * overlay``; ``alpha`` a number or an ``(H, W)`` map in [0, 1]."""
    image = _check_image(image)
    a = np.asarray(alpha, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    out = image.astype(np.float32) * (1 - a) + np.asarray(overlay, np.float32) * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def responsibility_overlay(
    image: np.ndarray, responsibility: np.ndarray, alpha: float = 0.6, colormap: str = "turbo"
) -> np.ndarray:
    """Heat map of one hand's responsibility over the image.

    The colour is blended in proportion to the responsibility (``alpha * R``), so pixels the
    hand does not explain show the plain image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        responsibility: ``(H, W)`` float in [0, 1].
        alpha: opacity where the responsibility is 1.
        colormap: see :func:`heatmap`.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    r = np.clip(np.nan_to_num(np.asarray(responsibility, np.float32)), 0, 1)
    if r.shape != np.asarray(image).shape[:2]:
        raise ValueError(f"responsibility {r.shape} does not match image {np.asarray(image).shape[:2]}")
    return blend(image, heatmap(r, colormap), alpha * r)


def mask_overlay(
    image: np.ndarray,
    masks: Sequence[np.ndarray],
    colors: Sequence[tuple[int, int, int]] | None = None,
    alpha: float = 0.5,
    contours: bool = True,
) -> np.ndarray:
    """Draw masks in colour over the image (later masks on top), with their outlines.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        masks: ``(H, W)`` masks, non-zero = inside.
        colors: RGB colour per mask (default :data:`PALETTE`).
        alpha: fill opacity.
        contours: draw each mask's outline at full opacity.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    out = _check_image(image).copy()
    colors = list(colors) if colors is not None else [PALETTE[i % len(PALETTE)] for i in range(len(masks))]
    for m, c in zip(masks, colors):
        m = np.asarray(m) != 0
        if m.shape != out.shape[:2]:
            raise ValueError(f"mask {m.shape} does not match image {out.shape[:2]}")
        fill = np.empty_like(out)
        fill[:] = c
        out = np.where(m[..., None], blend(out, fill, alpha), out)
        if contours:
            cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, cs, -1, tuple(int(v) for v in c), 1)
    return out


def draw_points(
    image: np.ndarray, points: np.ndarray, color: tuple[int, int, int] = (255, 255, 255), radius: int = 2
) -> np.ndarray:
    """Draw ``(N, 2)`` ``(x, y)`` points as filled circles with a dark rim; returns a copy."""
    out = _check_image(image).copy()
    for x, y in np.asarray(points, np.float64).reshape(-1, 2):
        if np.isfinite(x) and np.isfinite(y):
            p = (int(round(x)), int(round(y)))
            cv2.circle(out, p, radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
            cv2.circle(out, p, radius, tuple(int(v) for v in color), -1, cv2.LINE_AA)
    return out


def caption(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner (white on a dark band); returns a copy."""
    out = _check_image(image).copy()
    scale = max(0.35, min(out.shape[1], 640) / 900)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (min(tw + 6, out.shape[1]), th + base + 4), (0, 0, 0), -1)
    cv2.putText(out, text, (3, th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def tile(images: Sequence[np.ndarray], cols: int = 3, pad: int = 2) -> np.ndarray:
    """Arrange equally sized ``(H, W, 3)`` uint8 images in a grid (row-major), black padding."""
    if not images:
        raise ValueError("tile needs at least one image")
    h, w = images[0].shape[:2]
    cols = max(1, min(cols, len(images)))
    rows = (len(images) + cols - 1) // cols
    out = np.zeros((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, 3), np.uint8)
    for i, im in enumerate(images):
        if im.shape[:2] != (h, w):
            raise ValueError(f"tile: image {i} is {im.shape[:2]}, the first is {(h, w)}")
        r, c = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = im
    return out


def pseudolabel_panel(
    image: np.ndarray,
    responsibility: np.ndarray,
    person: np.ndarray | None = None,
    obj: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    hand_points: Sequence[np.ndarray] | None = None,
    flow: np.ndarray | None = None,
) -> np.ndarray:
    """One picture of a pseudo-label: frame, flow, a heat map per hand, person/object masks.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame t.
        responsibility: ``(N+1, H, W)``, channel 0 background, channel k hand k.
        person: optional ``(H, W)`` {0, 1} person mask.
        obj: optional ``(H, W)`` {0, 1} object mask.
        valid: optional ``(H, W)`` {0, 1}; invalid pixels are hatched dark in the mask tile.
        hand_points: optional ``(N_k, 2)`` points per hand, drawn on the heat maps.
        flow: optional ``(2, H, W)`` flow, drawn with ``cohesiv.flow.flow_to_color`` when available.

    Returns:
        ``(H', W', 3)`` uint8 RGB grid of captioned tiles.
    """
    image = _check_image(image)
    r = np.asarray(responsibility, np.float32)
    tiles = [caption(image, "frame")]
    if flow is not None:
        try:
            from cohesiv.flow import flow_to_color

            tiles.append(caption(np.ascontiguousarray(flow_to_color(flow)), "flow"))
        except ImportError:
            pass
    for k in range(1, r.shape[0]):
        t = responsibility_overlay(image, r[k])
        if hand_points is not None and k - 1 < len(hand_points):
            t = draw_points(t, hand_points[k - 1], PALETTE[(k - 1) % len(PALETTE)])
        tiles.append(caption(t, f"hand {k}"))
    masks, colors, names = [], [], []
    if person is not None:
        masks.append(person)
        colors.append(PERSON_COLOR)
        names.append("person")
    if obj is not None:
        masks.append(obj)
        colors.append(OBJECT_COLOR)
        names.append("object")
    if masks:
        t = mask_overlay(image, masks, colors)
        if valid is not None:
            hatch = (np.add.outer(np.arange(image.shape[0]), np.arange(image.shape[1])) % 6) < 2
            t = np.where(((np.asarray(valid) == 0) & hatch)[..., None], t // 3, t).astype(np.uint8)
        tiles.append(caption(t, " + ".join(names) + (" (hatched: invalid)" if valid is not None else "")))
    return tile(tiles, cols=min(3, len(tiles)))


#: RGB colours of EgoHOS labels 1..5 in prediction overlays.
LABEL_COLORS = {
    1: (230, 25, 75),  # left hand: red
    2: (0, 130, 200),  # right hand: blue
    3: (255, 200, 0),  # object of the left hand: yellow
    4: (60, 220, 75),  # object of the right hand: green
    5: (245, 130, 48),  # object of both hands: orange
}


def label_overlay(
    image: np.ndarray,
    label: np.ndarray,
    queries: Sequence[Sequence[float]] = (),
    sides: Sequence[str | None] = (),
) -> np.ndarray:
    """EgoHOS labels in colour over the image (:data:`LABEL_COLORS`), with the query points.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        label: ``(H, W)`` EgoHOS labels (0 background, 1/2 left/right hand, 3/4/5 objects).
        queries: ``(x, y)`` query points, drawn in their hand's colour.
        sides: side per query ("left" draws in the left-hand colour, anything else right).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    values = sorted(LABEL_COLORS)
    out = mask_overlay(image, [np.asarray(label) == v for v in values], [LABEL_COLORS[v] for v in values])
    for q, side in zip(queries, sides):
        out = draw_points(
            out, np.asarray(q, np.float32)[None], LABEL_COLORS[1 if side == "left" else 2], radius=3
        )
    return out
