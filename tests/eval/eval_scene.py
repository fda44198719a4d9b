"""Fake labeled clips for the evaluation tests: a square "hand" holding a square "object".

Frame t: background texture (static), a left hand (label 1) at columns [x0, x0 + 8) and its
object (label 3) at columns [x0 + 8, x0 + 14), rows [10, 22), with x0 = 6 + 2 t: the pair moves
2 px to the right per frame; everything else is static. The exact flow from t to s is therefore
(2 (s - t), 0) on the pair's pixels in frame t and 0 elsewhere.
"""

import json

import numpy as np

from cohesiv.io import write_image, write_label

W, H = 40, 32
SPEED = 2


def scene_label(t: int) -> np.ndarray:
    lab = np.zeros((H, W), np.uint8)
    x0 = 6 + SPEED * t
    lab[10:22, x0 : x0 + 8] = 1
    lab[10:22, x0 + 8 : x0 + 14] = 3
    return lab


def scene_flow(t: int, s: int) -> np.ndarray:
    flow = np.zeros((2, H, W), np.float32)
    flow[0][scene_label(t) > 0] = SPEED * (s - t)
    return flow


def hand_points(t: int) -> list[list[float]]:
    x0 = 6 + SPEED * t
    return [[x0 + 1.0, 11.0], [x0 + 6.0, 11.0], [x0 + 6.0, 20.0], [x0 + 1.0, 20.0], [x0 + 3.5, 15.5]]


def write_clip(root, n_frames=6, labeled=(2, 4), side="left", with_hands=True):
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    (root / "frames").mkdir(parents=True)
    (root / "labels").mkdir()
    frames = {}
    for t in range(n_frames):
        img = bg.copy()
        lab = scene_label(t)
        img[lab == 1] = (200, 150, 120)
        img[lab == 3] = (20, 40, 200)
        write_image(root / "frames" / f"{t:06d}.png", img)
        if t in labeled:
            write_label(root / "labels" / f"{t:06d}.png", lab)
        frames[str(t)] = [{"id": "h0", "side": side, "points": hand_points(t), "box": None, "query": None}]
    if with_hands:
        (root / "hands.json").write_text(json.dumps({"version": 1, "image_size": [W, H], "frames": frames}))
    return root


class SceneFlow:
    """Exact flow of the fake scene, in the driver's flow-source form ``(context, s) -> flow``."""

    name = "scene"

    def __init__(self):
        self.calls = []

    def __call__(self, context, s, src=None):
        src = context.t if src is None else src
        self.calls.append((src, s))
        return scene_flow(src, s)
