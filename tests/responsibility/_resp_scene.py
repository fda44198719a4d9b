"""Synthetic scenes with exact flows: a square hand (and a held object) moving by a known homography."""

from __future__ import annotations

import numpy as np

W, H = 96, 72
HAND = (24, 20, 44, 40)  # x1, y1, x2, y2 (exclusive ends) of the hand square
OBJECT = (44, 24, 58, 36)  # a held object right of the hand


def homography(tx=8.0, ty=4.0, angle_deg=3.0, centre=(34.0, 30.0), scale=1.0) -> np.ndarray:
    """Rotation + scale about ``centre`` followed by a translation."""
    a = np.deg2rad(angle_deg)
    c, s = scale * np.cos(a), scale * np.sin(a)
    cx, cy = centre
    rot = np.array([[c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy], [0, 0, 1.0]])
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1.0]]) @ rot


def region_mask(box, w=W, h=H) -> np.ndarray:
    m = np.zeros((h, w), bool)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = True
    return m


def flow_of(m: np.ndarray, mask: np.ndarray, base: np.ndarray | None = None, w=W, h=H) -> np.ndarray:
    """(2, H, W) flow: pixels in ``mask`` move by ``m``; others by ``base`` (None = static)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    pts = np.stack([xs, ys, np.ones_like(xs)])

    def motion(mat):
        q = np.einsum("ij,jhw->ihw", mat, pts)
        return q[:2] / q[2:] - pts[:2]

    bg = np.zeros((2, h, w)) if base is None else motion(base)
    fg = motion(m)
    return np.where(mask[None], fg, bg).astype(np.float32)


def hand_points(box=HAND, n=5) -> np.ndarray:
    x1, y1, x2, y2 = box
    xs = np.linspace(x1 + 1, x2 - 2, n)
    ys = np.linspace(y1 + 1, y2 - 2, n)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)


def make_clip(
    folder, n=8, w=64, h=48, step=(3, 1), box=(16, 14, 32, 30), skip_hands=(), extra_hand=None, seed=0
):
    """A folder clip: a textured square translating by ``step`` px per frame over a static texture.

    Returns ``(folder, flow_fn)``: ``flow_fn(a_img, b_img, a, b)`` is the exact flow a -> b.
    Writes ``hands.json`` with a 5x5 grid of points on the square in every frame but ``skip_hands``;
    ``extra_hand`` (an (N, 2) array) is added as a second hand to every frame.
    """
    from pathlib import Path

    from cohesiv.io import Hand, HandTracks, write_hands, write_image

    folder = Path(folder)
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    import cv2

    def texture(hh, ww):  # smooth random texture (flow methods track it; pure noise aliases)
        t = cv2.GaussianBlur(rng.uniform(0, 255, (hh, ww, 3)).astype(np.float32), (0, 0), 1.5)
        return np.clip((t - t.mean()) * 4 + 128, 0, 255).astype(np.uint8)

    bg = texture(h, w)
    fg = texture(box[3] - box[1], box[2] - box[0])
    sx, sy = step

    def square(t):
        return (box[0] + sx * t, box[1] + sy * t, box[2] + sx * t, box[3] + sy * t)

    frames = {}
    for t in range(n):
        img = bg.copy()
        x1, y1, x2, y2 = square(t)
        img[y1:y2, x1:x2] = fg
        write_image(folder / "frames" / f"{t:06d}.png", img)
        if t not in skip_hands:
            hands = [Hand("right", "right", hand_points(square(t)))]
            if extra_hand is not None:
                hands.append(Hand("left", "left", np.asarray(extra_hand, np.float32)))
            frames[t] = hands
    write_hands(folder / "hands.json", HandTracks((w, h), frames))

    def flow_fn(a_img, b_img, a, b):
        m = region_mask(square(a), w, h)
        f = np.zeros((2, h, w), np.float32)
        f[0][m] = sx * (b - a)
        f[1][m] = sy * (b - a)
        return f

    return folder, flow_fn, square
