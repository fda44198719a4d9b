"""Shapes of synthetic scenes: hands with forearms (and 21 keypoints), held objects, distractors.

Each shape is drawn once, on its own canvas, as a texture with an anti-aliased alpha mask
(:class:`Sprite`); the renderer warps sprites into every frame with exact homographies.
Coordinates are pixels with the origin at the centre of the top-left pixel (OpenCV's convention).
A hand is built in its *hand frame*: origin at the palm centre, fingers towards -y (up), forearm
towards +y (down), unit = pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cohesiv.synth.textures import object_texture, skin_texture

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT

#: Keypoint names, in MediaPipe's order (0 wrist, then thumb, index, middle, ring, pinky; 4 each).
KEYPOINT_NAMES = ("wrist",) + tuple(
    f"{f}_{j}"
    for f, joints in (
        ("thumb", ("cmc", "mcp", "ip", "tip")),
        ("index", ("mcp", "pip", "dip", "tip")),
        ("middle", ("mcp", "pip", "dip", "tip")),
        ("ring", ("mcp", "pip", "dip", "tip")),
        ("pinky", ("mcp", "pip", "dip", "tip")),
    )
    for j in joints
)


@dataclass
class Sprite:
    """A textured shape on its own canvas.

    Attributes:
        rgba: ``(h, w, 4)`` float32; RGB in 0..255 (defined on the whole canvas), alpha in 0..1.
        placement: ``(3, 3)`` float64 homography from canvas pixels to the shape's parent frame
            (hand frame for hands and objects held by one hand, group frame for shared objects).
    """

    rgba: np.ndarray
    placement: np.ndarray


def translation(tx: float, ty: float) -> np.ndarray:
    """Return the ``(3, 3)`` homography of a translation by ``(tx, ty)``."""
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def rotation(angle: float) -> np.ndarray:
    """Return the ``(3, 3)`` rotation by ``angle`` radians (clockwise on screen, since y points down)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _fix(p) -> np.ndarray:
    return np.round(np.asarray(p, np.float64) * _ONE).astype(np.int32)


def _capsule(img: np.ndarray, a, b, width: float, value) -> None:
    """Draw a thick anti-aliased segment with round ends (a finger) from ``a`` to ``b``."""
    cv2.line(img, tuple(_fix(a)), tuple(_fix(b)), value, max(1, int(round(width))), cv2.LINE_AA, _SHIFT)


def _poly(img: np.ndarray, pts, value) -> None:
    cv2.fillPoly(img, [_fix(pts).reshape(-1, 1, 2)], value, cv2.LINE_AA, _SHIFT)


def _superellipse(cx: float, cy: float, a: float, b: float, n: float = 2.8, k: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = a * np.sign(c) * np.abs(c) ** (2 / n)
    y = b * np.sign(s) * np.abs(s) ** (2 / n)
    return np.stack([cx + x, cy + y], 1)


def _shade_parts(masks: list[np.ndarray], radii: list[float]) -> np.ndarray:
    """Shading ``(h, w)`` in ~0.7..1: darker near each part's border; later parts lie on top."""
    shade = np.ones(masks[0].shape, np.float32)
    for m, r in zip(masks, radii):
        inside = (m > 127).astype(np.uint8)
        if not inside.any():
            continue
        d = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
        s = 0.7 + 0.3 * np.clip(d / max(r, 1.0), 0, 1) ** 0.7
        shade = np.where(inside > 0, s, shade)
    return cv2.GaussianBlur(shade, (0, 0), 0.6)


@dataclass
class HandShape:
    """A hand with its forearm, drawn in its hand frame.

    Attributes:
        sprite: the hand's texture and alpha (placement: canvas -> hand frame).
        keypoints: ``(21, 2)`` float64 keypoints in the hand frame (MediaPipe order, on palm and
            fingers, never on the forearm).
        palm: palm width in pixels.
        forearm: forearm length in pixels (from the palm centre).
        tone: skin colour ``(3,)`` RGB.
    """

    sprite: Sprite
    keypoints: np.ndarray
    palm: float
    forearm: float
    tone: np.ndarray


def make_hand(
    rng: np.random.Generator, side: str, palm: float, forearm: float, tone: np.ndarray
) -> HandShape:
    """Draw a hand (back of the hand, as seen from the eyes) with its forearm and 21 keypoints.

    Args:
        rng: random generator (finger lengths, spread, thumb angle, skin texture).
        side: "right" (thumb on the left of the image, as the back of one's right hand is seen)
            or "left" (mirrored).
        palm: palm width in pixels.
        forearm: forearm length in pixels from the palm centre (long enough to leave the image).
        tone: skin colour ``(3,)`` RGB 0..255.

    Returns:
        The :class:`HandShape`; its sprite placement maps canvas pixels to the hand frame.
    """
    p = float(palm)
    mirror = -1.0 if side == "left" else 1.0
    spread = rng.uniform(0.4, 1.3)
    base_u = np.array([-0.34, -0.115, 0.115, 0.33]) * p
    lengths = np.array([0.84, 0.94, 0.87, 0.68]) * p * rng.uniform(0.9, 1.1) * rng.uniform(0.95, 1.05, 4)
    widths = np.maximum(np.array([0.23, 0.24, 0.23, 0.2]) * p, 2.6)
    angles = np.deg2rad(np.array([-9.0, -3.0, 3.0, 10.0]) * spread + rng.uniform(-3, 3, 4))
    base_v = -0.40 * p
    thumb_w = max(0.27 * p, 2.8)
    thumb_a = np.deg2rad(rng.uniform(40, 65))  # from "up" towards the thumb side
    thumb_bend = np.deg2rad(rng.uniform(5, 20))

    kp = np.zeros((21, 2))
    kp[0] = (0.0, 0.40 * p)
    cmc = np.array([-0.26 * p, 0.26 * p])
    seg = np.array([0.36, 0.30, 0.26]) * p
    pts = [cmc]
    a = thumb_a
    for i, length in enumerate(seg):
        d = np.array([-np.sin(a), -np.cos(a)])
        pts.append(pts[-1] + length * d)
        if i == 0:
            a = thumb_a - thumb_bend  # the thumb bends a little towards the fingers
    thumb_end = pts[-1] - 0.5 * thumb_w * d  # where the round cap ends at the thumb tip
    kp[1:4] = pts[:3]
    kp[4] = pts[-1] - 0.6 * thumb_w * d
    finger_segs = []
    for f in range(4):
        d = np.array([np.sin(angles[f]), -np.cos(angles[f])])
        b = np.array([base_u[f], base_v])
        tip_end = b + (lengths[f] - 0.5 * widths[f]) * d  # the round cap reaches b + length * d
        finger_segs.append((b - 0.15 * p * d, tip_end, widths[f], d))
        k0 = 5 + 4 * f
        kp[k0] = b
        kp[k0 + 1] = b + 0.45 * lengths[f] * d
        kp[k0 + 2] = b + 0.72 * lengths[f] * d
        kp[k0 + 3] = b + (lengths[f] - 0.6 * widths[f]) * d
    thumb_poly = np.stack(pts)

    # canvas: hand frame x in [-1.4p, 1.4p], y in [-1.8p, forearm + pad]
    pad = 4.0
    ox, oy = 1.4 * p + pad, 1.8 * p + pad
    w, h = int(np.ceil(2 * ox)), int(np.ceil(oy + forearm + pad))
    o = np.array([ox, oy])

    def m(x):  # hand frame -> canvas, mirrored for the left hand
        x = np.asarray(x, np.float64).copy()
        x[..., 0] *= mirror
        return x + o

    parts: list[np.ndarray] = []
    radii: list[float] = []
    fore = np.array([[-0.40 * p, 0.2 * p], [0.40 * p, 0.2 * p], [0.56 * p, forearm], [-0.56 * p, forearm]])
    mk = np.zeros((h, w), np.uint8)
    _poly(mk, m(fore), 255)
    parts.append(mk)
    radii.append(0.35 * p)
    mk = np.zeros((h, w), np.uint8)
    _poly(mk, m(_superellipse(0.0, 0.0, 0.5 * p, 0.5 * p)), 255)
    parts.append(mk)
    radii.append(0.3 * p)
    mk = np.zeros((h, w), np.uint8)
    cv2.polylines(
        mk, [_fix(m(np.vstack([thumb_poly[:-1], [thumb_end]]))).reshape(-1, 1, 2)],
        False, 255, max(1, int(round(thumb_w))), cv2.LINE_AA, _SHIFT,
    )  # fmt: skip
    parts.append(mk)
    radii.append(0.5 * thumb_w)
    for a_, b_, wd, _ in finger_segs:
        mk = np.zeros((h, w), np.uint8)
        _capsule(mk, m(a_), m(b_), wd, 255)
        parts.append(mk)
        radii.append(0.5 * wd)
    alpha = np.max(np.stack(parts), 0).astype(np.float32) / 255.0

    tex = skin_texture(rng, h, w, tone) * _shade_parts(parts, radii)[..., None]
    # knuckle creases (dark) and nails (light) give the fingers texture for optical flow
    crease = np.zeros((h, w), np.uint8)
    nails = np.zeros((h, w), np.uint8)
    for f, (_, _, wd, d) in enumerate(finger_segs):
        n = np.array([-d[1], d[0]])
        for j in (1, 2):
            c = kp[5 + 4 * f + j]
            _capsule(crease, m(c - 0.3 * wd * n), m(c + 0.3 * wd * n), 1, 255)
        tip = kp[5 + 4 * f + 3]
        _capsule(nails, m(tip - 0.05 * wd * d), m(tip + 0.25 * wd * d), 0.45 * wd, 255)
    cr = cv2.GaussianBlur(crease, (0, 0), 0.5).astype(np.float32)[..., None] / 255.0
    nl = cv2.GaussianBlur(nails, (0, 0), 0.5).astype(np.float32)[..., None] / 255.0
    tex = tex * (1 - 0.3 * cr)
    tex = tex * (1 - 0.5 * nl) + 0.5 * nl * np.minimum(np.asarray(tone) * 1.15 + 20, 255)
    kp_mirrored = kp.copy()
    kp_mirrored[:, 0] *= mirror
    rgba = np.dstack([np.clip(tex, 0, 255), alpha]).astype(np.float32)
    return HandShape(
        sprite=Sprite(rgba, translation(-ox, -oy)),
        keypoints=kp_mirrored,
        palm=p,
        forearm=float(forearm),
        tone=np.asarray(tone, np.float32),
    )


OBJECT_SHAPES = ("box", "ellipse", "polygon", "bottle", "rounded")


def object_sprite(
    rng: np.random.Generator, width: float, height: float, shape: str
) -> tuple[Sprite, np.ndarray]:
    """Draw a textured object of about ``width x height`` pixels, centred on its canvas.

    Args:
        rng: random generator.
        width: object width in pixels.
        height: object height in pixels.
        shape: one of :data:`OBJECT_SHAPES`.

    Returns:
        The sprite (placement: canvas -> object frame centred on the object) and its main colour.
    """
    pad = 4.0
    w, h = int(np.ceil(width + 2 * pad)), int(np.ceil(height + 2 * pad))
    cx, cy = (w - 1) / 2, (h - 1) / 2
    mk = np.zeros((h, w), np.uint8)
    if shape == "ellipse":
        _poly(mk, _superellipse(cx, cy, width / 2, height / 2, n=2.0, k=64), 255)
    elif shape == "rounded":
        _poly(mk, _superellipse(cx, cy, width / 2, height / 2, n=5.0, k=64), 255)
    elif shape == "polygon":
        k = int(rng.integers(5, 9))
        t = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(0.75, 1.0, k)
        pts = np.stack([cx + r * np.cos(t) * width / 2, cy + r * np.sin(t) * height / 2], 1)
        _poly(mk, cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2), 255)
    elif shape == "bottle":
        neck = rng.uniform(0.3, 0.5) * width
        body_top = cy - height / 2 + rng.uniform(0.25, 0.4) * height
        _poly(
            mk,
            _superellipse(
                cx, (body_top + cy + height / 2) / 2, width / 2, (cy + height / 2 - body_top) / 2, 6
            ),
            255,
        )
        _poly(mk, [[cx - neck / 2, cy - height / 2], [cx + neck / 2, cy - height / 2], [cx + neck / 2, body_top + 2], [cx - neck / 2, body_top + 2]], 255)  # fmt: skip
    else:  # box
        _poly(mk, [[cx - width / 2, cy - height / 2], [cx + width / 2, cy - height / 2], [cx + width / 2, cy + height / 2], [cx - width / 2, cy + height / 2]], 255)  # fmt: skip
    tex, colour = object_texture(rng, h, w)
    xx = (np.arange(w, dtype=np.float32) - cx) / max(width / 2, 1)
    if shape in ("ellipse", "bottle", "rounded"):  # cylindrical/rounded shading across the object
        tex = tex * (0.78 + 0.3 * np.sqrt(np.clip(1 - xx**2, 0, 1)))[None, :, None]
    tex = tex * _shade_parts([mk], [0.12 * min(width, height) + 1])[..., None]
    rgba = np.dstack([np.clip(tex, 0, 255), mk.astype(np.float32) / 255.0]).astype(np.float32)
    return Sprite(rgba, translation(-cx, -cy)), colour


def paint_distractor(rng: np.random.Generator, canvas: np.ndarray, centre, size: float) -> dict:
    """Paint a textured shape lying on the background canvas (in place), with a soft contact shadow.

    Distractors are part of the background plane: they move only with the camera and are labelled 0.

    Args:
        rng: random generator.
        canvas: ``(H, W, 3)`` float32 background texture, modified in place.
        centre: ``(x, y)`` canvas pixels.
        size: approximate size in pixels.

    Returns:
        A JSON-able description (shape, centre, size, angle, colour).
    """
    shape = OBJECT_SHAPES[int(rng.integers(0, len(OBJECT_SHAPES)))]
    wd, ht = size * rng.uniform(0.6, 1.2), size * rng.uniform(0.5, 1.2)
    spr, colour = object_sprite(rng, wd, ht, shape)
    ang = rng.uniform(0, 2 * np.pi)
    H, W = canvas.shape[:2]
    r = int(np.ceil(0.8 * np.hypot(wd, ht) + 0.3 * size + 8))  # the shape and its shadow lie within r
    x0, y0 = max(int(centre[0]) - r, 0), max(int(centre[1]) - r, 0)
    x1, y1 = min(int(centre[0]) + r, W), min(int(centre[1]) + r, H)
    if x1 <= x0 or y1 <= y0:
        return {"shape": shape, "centre": [float(centre[0]), float(centre[1])], "size": [wd, ht], "angle": ang,
                "colour": [float(c) for c in colour]}  # fmt: skip
    hmat = translation(centre[0] - x0, centre[1] - y0) @ rotation(ang) @ spr.placement
    rgba = cv2.warpPerspective(spr.rgba, hmat, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    a = rgba[..., 3:]
    shadow = cv2.GaussianBlur(a[..., 0], (0, 0), 0.08 * size + 1)
    off = int(round(0.05 * size))
    shadow = np.roll(shadow, (off, off), (0, 1))
    roi = canvas[y0:y1, x0:x1]
    roi *= 1 - 0.35 * shadow[..., None]
    roi += (rgba[..., :3] - roi) * a
    return {"shape": shape, "centre": [float(centre[0]), float(centre[1])], "size": [wd, ht], "angle": ang,
            "colour": [float(c) for c in colour]}  # fmt: skip
