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


class TinyNet:
    """Build a small network with CohesivNet's forward (conv + BN embedding, query/key heads): fast loop tests."""

    norm = "batch"

    def __new__(cls, cfg=None):
        import torch
        from torch import nn

        from cohesiv.model.net import NetOutput, query_scores

        f = 8 if cfg is None else cfg.embed_dim

        class _Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(
                    nn.Conv2d(3, 16, 3, padding=1),
                    nn.BatchNorm2d(16) if cls.norm == "batch" else nn.GroupNorm(4, 16),
                    nn.ReLU(),
                    nn.Conv2d(16, f, 3, padding=1),
                )
                self.q = nn.Conv2d(f, f, 1)
                self.k = nn.Conv2d(f, f, 1)

            def forward(self, images, points=None, point_valid=None):
                z = self.body(images)
                if points is None:
                    return NetOutput(z, None)
                pts = torch.where(point_valid[..., None], points, torch.zeros_like(points))
                return NetOutput(z, query_scores(self.q(z), self.k(z), pts, point_valid))

        return _Net()


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TinyNetGN(TinyNet):
    """:class:`TinyNet` with GroupNorm: its output does not depend on how the batch is split over processes."""

    norm = "group"


def ddp_worker(rank: int, world: int, port: int, cfg_dict: dict, tiny) -> None:
    """Entry point of one process of a CPU DDP test run (torch.multiprocessing.spawn)."""
    import os

    import torch

    from cohesiv.train import TrainConfig, train

    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    build = {"batch": TinyNet, "group": TinyNetGN, None: None}[tiny]
    train(TrainConfig.from_dict(cfg_dict), progress=False, build_model=build)


def run_ddp(cfg, world: int = 2, tiny: str | None = "group") -> None:
    """Train ``cfg`` with ``world`` CPU processes (gloo on 127.0.0.1); ``tiny``: "batch", "group" or None (real model)."""
    import torch.multiprocessing as mp

    mp.spawn(ddp_worker, args=(world, free_port(), cfg.to_dict(), tiny), nprocs=world, join=True)
