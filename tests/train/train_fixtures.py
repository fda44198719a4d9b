"""Tiny pseudo-label datasets and labeled clips with known contents, written for the tests of cohesiv.train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

HAND_RGB = (220, 170, 140)
OBJECT_RGB = (40, 90, 220)


def scene(size: int, hands: list[tuple[int, int, str]], s: int | None = None, bg: int = 60):
    """Draw a frame with square hands (skin colour) each holding a square object (blue) on its right.

    Args:
        size: image side.
        hands: ``(x, y, side)`` top-left corner of each hand square.
        s: square side (default size // 6).
        bg: background grey level.

    Returns:
        image (H, W, 3) uint8, hand masks (N, H, W) bool, object masks (N, H, W) bool, queries (N, 2).
    """
    s = s or max(4, size // 6)
    img = np.full((size, size, 3), bg, np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    hm, om, qs = [], [], []
    for x, y, _ in hands:
        h = (xx >= x) & (xx < x + s) & (yy >= y) & (yy < y + s)
        o = (xx >= x + s) & (xx < x + 2 * s) & (yy >= y) & (yy < y + s)
        img[h] = HAND_RGB
        img[o] = OBJECT_RGB
        hm.append(h)
        om.append(o)
        qs.append((x + (s - 1) / 2, y + (s - 1) / 2))
    return img, np.array(hm), np.array(om), np.array(qs, np.float32)


def write_dataset(root: Path, n: int = 8, size: int = 64, seed: int = 0, two_hands_every: int = 3) -> Path:
    """Write a pseudo-label dataset of ``n`` frames; every ``two_hands_every``-th frame has two hands.

    The responsibility of hand k is 1 on its hand and object squares, background elsewhere; person
    is the union of the hand squares; valid is 1 except a 2-pixel border.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "samples").mkdir(parents=True, exist_ok=True)
    lines = []
    s = size // 6
    for i in range(n):
        nh = 2 if two_hands_every and i % two_hands_every == 0 else 1
        hands = []
        for k in range(nh):
            x = int(rng.integers(1, size // 2 - 2 * s)) + k * (size // 2)
            y = int(rng.integers(1, size - s - 1))
            hands.append((x, y, "left" if k == 0 else "right"))
        img, hm, om, qs = scene(size, hands, s)
        resp = np.zeros((nh + 1, size, size), np.float32)
        for k in range(nh):
            resp[k + 1] = hm[k] | om[k]
        resp[0] = 1 - resp[1:].sum(0)
        person = hm.any(0).astype(np.uint8)
        valid = np.zeros((size, size), np.uint8)
        valid[2:-2, 2:-2] = 1
        sid = f"clip_{i:06d}"
        Image.fromarray(img).save(root / "images" / f"{sid}.png")
        np.savez_compressed(
            root / "samples" / f"{sid}.npz",
            responsibility=resp.astype(np.float16),
            person=person,
            valid=valid,
        )
        lines.append(
            {
                "id": sid,
                "clip": "clip",
                "frame": i,
                "image": f"images/{sid}.png",
                "sample": f"samples/{sid}.npz",
                "size": [size, size],
                "hands": [
                    {"id": side, "side": side, "query": [float(q[0]), float(q[1])], "points": []}
                    for (_, _, side), q in zip(hands, qs)
                ],
            }
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    (root / "dataset.json").write_text(json.dumps({"version": 1}))
    return root


def write_labeled_clip(root: Path, n: int = 4, size: int = 64, seed: int = 1) -> Path:
    """Write a clip folder (frames/, labels/ EgoHOS, hands.json) with one left hand holding an object."""
    from cohesiv.io.labels import LEFT_HAND, LEFT_OBJECT

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    frames = {}
    s = size // 6
    for t in range(n):
        x = int(rng.integers(1, size - 2 * s - 1))
        y = int(rng.integers(1, size - s - 1))
        img, hm, om, qs = scene(size, [(x, y, "left")], s)
        lab = np.zeros((size, size), np.uint8)
        lab[hm[0]] = LEFT_HAND
        lab[om[0]] = LEFT_OBJECT
        Image.fromarray(img).save(root / "frames" / f"{t:06d}.png")
        Image.fromarray(lab).save(root / "labels" / f"{t:06d}.png")
        pts = [[x, y], [x + s - 1, y], [x, y + s - 1], [x + s - 1, y + s - 1]]
        frames[str(t)] = [
            {
                "id": "left",
                "side": "left",
                "points": pts,
                "box": None,
                "query": [float(qs[0][0]), float(qs[0][1])],
            }
        ]
    (root / "hands.json").write_text(json.dumps({"version": 1, "image_size": [size, size], "frames": frames}))
    return root
