"""Composited training samples: real hands and held objects pasted onto other real frames.

After EgoHOS's CCDA (Zhang et al., ECCV 2022), without its labels: the cut-out is a hand of one
pseudo-label sample (its hand-and-object region: responsibility above a threshold, plus the person
mask near the hand's points), moved by a random similarity (scale, flip, translation) and pasted,
with a feathered edge, onto the frame of another sample. The new sample keeps the background frame's
own pseudo-labels, except under the paste, where the pasted hand has responsibility 1, its person
pixels are person and every pixel is valid: the paste's labels are exact by construction, and both
its appearance and its background are real. Real unlabeled video is scarce; this multiplies the
backgrounds that each real hand is seen against. Hands keep their ``stop_at_wrist`` mark (the pasted one
its source hand's), so training cuts a pasted forearm at the wrist as it would the original.

With ``skin > 0`` some hands are pasted over a *skin patch* (:func:`skin_patch`): an oval in the
colours of the pasted hand's own skin, with smooth shading, that the hand overlaps, labelled
background. It is a hard negative: skin that is not a hand, as a face or a bare arm the hand touches
in real photos. Egocentric clips show no faces, and a network that learned "hand" from them takes
every skin-coloured region for one (the hand-over-face photos of ``real-hand-masks-hof``).

The output is an ordinary pseudo-label dataset (``manifest.jsonl``, ``images/``, ``samples/``, a
sidecar per sample, ``dataset.json``), so ``cohesiv train --data`` takes it beside the others. Sample
``i`` depends only on ``(seed, i)``; a re-run skips finished samples (also after ``kill -9``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from cohesiv.config import COMPOSITE_SKIN
from cohesiv.errors import CohesivError
from cohesiv.io import atomic_write_text, read_image, write_image
from cohesiv.io.dataset import read_manifest, read_sample, rebuild_manifest, write_sample
from cohesiv.responsibility.masks import hull_mask


@dataclass(frozen=True)
class CompositeConfig:
    """How cut-outs are chosen and pasted.

    Attributes:
        threshold: a pixel belongs to a hand's cut-out when its responsibility exceeds this.
        near_hand: the person pixels within this dilation (fraction of the hand's size) of the hand's
            points join its cut-out (the hand itself, even where it did not move).
        min_area, max_area: cut-outs outside this range of the source image's area are not used.
        scale: range of the random scale factor (relative to matching the two images' diagonals).
        flip: probability of mirroring the cut-out (a left hand becomes a right one).
        outside: largest fraction of the cut-out's box allowed outside the target image.
        feather: standard deviation of the paste's soft edge, pixels.
        tries: cut-outs tried per sample before giving up on it.
        skin: probability that the hand is pasted over a skin patch (:func:`skin_patch`, a hard
            negative labelled background); 0 = never (the composites before this option).
        skin_size: range of the patch's size relative to the pasted cut-out's box.
    """

    threshold: float = 0.5
    near_hand: float = 0.3
    min_area: float = 0.005
    max_area: float = 0.35
    scale: tuple[float, float] = (0.7, 1.3)
    flip: float = 0.5
    outside: float = 0.25
    feather: float = 1.0
    tries: int = 20
    skin: float = COMPOSITE_SKIN
    skin_size: tuple[float, float] = (0.8, 1.6)


#: Config fields added after the first composites, with the value that folders without them were made
#: with (no patch; its size then never mattered, so it reads as the default).
_OLD_FIELDS = {"skin": 0.0, "skin_size": list(CompositeConfig.skin_size)}


@dataclass
class _Source:
    root: Path
    entry: dict


def cutout(
    responsibility: np.ndarray, person: np.ndarray, points: np.ndarray, k: int, cfg: CompositeConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The cut-out of hand ``k`` of a sample: its region and the person pixels in it.

    Args:
        responsibility: ``(N+1, H, W)``, channel 0 background.
        person: ``(H, W)`` {0, 1}.
        points: ``(P, 2)`` ``(x, y)`` points of hand ``k``.
        k: hand index (channel ``k + 1``).
        cfg: thresholds.

    Returns:
        ``(region, person_part)``, each ``(H, W)`` bool: region = the connected parts, touching the
        hand, of (responsibility of hand k above ``cfg.threshold``, or person near the hand's points);
        person_part = region & person.
    """
    h, w = person.shape
    near = hull_mask([points], (w, h), dilation=cfg.near_hand).astype(bool)
    region = (responsibility[k + 1] > cfg.threshold) | (near & (person > 0))
    # keep the connected parts that touch the hand: stray specks of responsibility are not pasted
    n, comp = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    touching = np.unique(comp[near & region])
    region = np.isin(comp, touching[touching > 0])
    return region, region & (person > 0)


def _similarity(
    rng: np.random.Generator, box: tuple[int, int, int, int], src_size, dst_size, cfg: CompositeConfig
) -> tuple[np.ndarray, bool] | None:
    """A random 2x3 similarity (scale, optional mirror, translation) placing ``box`` inside the target."""
    x0, y0, x1, y1 = box
    (sw, sh), (dw, dh) = src_size, dst_size
    s = float(rng.uniform(*cfg.scale)) * float(np.hypot(dw, dh) / np.hypot(sw, sh))
    flip = bool(rng.random() < cfg.flip)
    bw, bh = (x1 - x0) * s, (y1 - y0) * s
    if bw > dw or bh > dh:
        return None
    m = 1 - 2 * cfg.outside  # the box centre may go this far out, as a fraction of its size
    cx = float(rng.uniform(bw * m / 2 - bw * cfg.outside, dw - bw * m / 2 + bw * cfg.outside))
    cy = float(rng.uniform(bh * m / 2 - bh * cfg.outside, dh - bh * m / 2 + bh * cfg.outside))
    sx = -s if flip else s
    ocx, ocy = (x0 + x1) / 2, (y0 + y1) / 2
    a = np.array([[sx, 0.0, cx - sx * ocx], [0.0, s, cy - s * ocy]], np.float64)
    return a, flip


def skin_patch(
    rng: np.random.Generator,
    fg_image: np.ndarray,
    fg_person: np.ndarray,
    box: tuple[float, float, float, float],
    size: tuple[int, int],
    scale: tuple[float, float] = CompositeConfig.skin_size,
) -> tuple[np.ndarray, np.ndarray] | None:
    """A skin-coloured oval under part of a pasted hand: a hard negative (skin that is not a hand).

    The colour is the median of the hand's own skin (its person pixels, eroded away from the edge);
    the shading is a random linear gradient plus a smooth random field, and the texture is noise with
    a third of the skin's own per-channel spread (at most 4 grey levels). The oval's centre is a random
    point of ``box`` (so the hand overlaps it), its axes ``scale`` times the box's half sides (default
    :attr:`CompositeConfig.skin_size`), its angle random.

    Args:
        rng: random generator.
        fg_image: ``(h, w, 3)`` uint8 source image of the cut-out.
        fg_person: ``(h, w)`` bool person pixels of the cut-out.
        box: ``(x0, y0, x1, y1)`` of the pasted cut-out in the target image.
        size: ``(W, H)`` of the target image.
        scale: range of the axes relative to the box's half sides.

    Returns:
        ``(rgb (H, W, 3) float32, alpha (H, W) float32 in [0, 1])``, or None when the hand has fewer
        than 20 person pixels (no colour to take).
    """
    person = np.asarray(fg_person, bool)
    inner = cv2.erode(person.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    skin = fg_image[inner if inner.sum() >= 20 else person].astype(np.float32)
    if len(skin) < 20:
        return None
    w, h = size
    x0, y0, x1, y1 = box
    centre = (float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)))
    axes = (
        max(2, int(round((x1 - x0) / 2 * rng.uniform(*scale)))),
        max(2, int(round((y1 - y0) / 2 * rng.uniform(*scale)))),
    )
    oval = np.zeros((h, w), np.float32)
    cv2.ellipse(
        oval,
        (int(round(centre[0])), int(round(centre[1]))),
        axes,
        float(rng.uniform(0, 180)),
        0,
        360,
        1.0,
        -1,
    )
    if not oval.any():
        return None
    alpha = np.minimum(oval, cv2.GaussianBlur(oval, (0, 0), 1.5) * 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    reach = max(axes)
    ramp = ((xx - centre[0]) * np.cos(angle) + (yy - centre[1]) * np.sin(angle)) / reach
    coarse = rng.normal(0.0, 0.12, (4, 4)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    shade = np.clip(1.0 + float(rng.uniform(0, 0.3)) * ramp + field, 0.4, 1.6)
    texture = rng.normal(0.0, 1.0, (h, w, 3)).astype(np.float32) * (np.minimum(skin.std(0), 12.0) / 3)
    rgb = np.clip(np.median(skin, 0) * shade[..., None] + texture, 0, 255)
    return rgb.astype(np.float32), alpha


def composite(
    fg_image: np.ndarray,
    fg_region: np.ndarray,
    fg_person: np.ndarray,
    fg_points: np.ndarray,
    fg_query: np.ndarray,
    bg_image: np.ndarray,
    bg_responsibility: np.ndarray,
    bg_person: np.ndarray,
    bg_valid: np.ndarray,
    affine: np.ndarray,
    feather: float = 1.0,
    skin: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict | None:
    """Paste a cut-out onto a background sample with a known 2x3 affine map.

    Args:
        fg_image: ``(h, w, 3)`` uint8 source image.
        fg_region: ``(h, w)`` bool cut-out (:func:`cutout`).
        fg_person: ``(h, w)`` bool, its person pixels.
        fg_points: ``(P, 2)`` the hand's points.
        fg_query: ``(2,)`` its query point.
        bg_image: ``(H, W, 3)`` uint8 target image.
        bg_responsibility: ``(N+1, H, W)`` its responsibilities.
        bg_person: ``(H, W)`` {0, 1} its person mask.
        bg_valid: ``(H, W)`` {0, 1} its valid mask.
        affine: ``(2, 3)`` source pixel -> target pixel (origin at pixel centres).
        feather: soft-edge standard deviation of the paste, pixels (0: hard edge).
        skin: ``(rgb, alpha)`` of a skin patch (:func:`skin_patch`) drawn onto the background before
            the paste: under it (where alpha > 0.5) every pixel is valid background, neither person
            nor moving with any hand.

    Returns:
        ``{"image", "responsibility" (N+2, H, W), "person", "valid", "points", "query"}`` with the pasted
        hand as the last channel, or None when the query point leaves the image or the paste.
    """
    hh, ww = bg_image.shape[:2]
    q = affine[:, :2] @ np.asarray(fg_query, np.float64) + affine[:, 2]
    if not (0 <= q[0] <= ww - 1 and 0 <= q[1] <= hh - 1):
        return None
    warp = lambda a, interp: cv2.warpAffine(  # noqa: E731
        a, affine, (ww, hh), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    region = warp(fg_region.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
    if not region[int(round(q[1])), int(round(q[0]))]:
        return None
    person = warp(fg_person.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
    alpha = region.astype(np.float32)
    if feather > 0:
        alpha = np.minimum(alpha, cv2.GaussianBlur(alpha, (0, 0), feather) * 2)  # soft only inside the edge
    fg = warp(fg_image, cv2.INTER_LINEAR).astype(np.float32)
    bg = bg_image.astype(np.float32)
    bg_person = np.asarray(bg_person).astype(bool)
    bg_valid = np.asarray(bg_valid).astype(bool)
    keep = (~region).astype(np.float32)
    if skin is not None:
        rgb, a = skin
        bg = rgb * a[..., None] + bg * (1 - a[..., None])
        patch = a > 0.5
        bg_person = bg_person & ~patch
        bg_valid = bg_valid | patch
        keep = keep * (~patch)
    image = fg * alpha[..., None] + bg * (1 - alpha[..., None])
    hands = bg_responsibility[1:] * keep
    r = np.concatenate([hands, region[None].astype(np.float32)])
    r = np.concatenate([np.clip(1 - r.sum(0, keepdims=True), 0, 1), r])
    pts = np.asarray(fg_points, np.float64) @ affine[:, :2].T + affine[:, 2]
    return {
        "image": np.clip(np.round(image), 0, 255).astype(np.uint8),
        "responsibility": r.astype(np.float32),
        "person": ((bg_person & ~region) | person).astype(np.uint8),
        "valid": (bg_valid | region).astype(np.uint8),
        "points": pts.astype(np.float32),
        "query": q.astype(np.float32),
    }


def _load(src: _Source) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    image = read_image(src.root / src.entry["image"])
    return (image, *read_sample(src.root / src.entry["sample"]))


def _make_one(sources: Sequence[_Source], rng: np.random.Generator, cfg: CompositeConfig):
    """One composite from random sources (None when every try failed)."""
    for _ in range(cfg.tries):
        fg_src = sources[int(rng.integers(len(sources)))]
        bg_src = sources[int(rng.integers(len(sources)))]
        hands = fg_src.entry["hands"]
        if not hands or fg_src is bg_src:
            continue
        k = int(rng.integers(len(hands)))
        points = np.asarray(hands[k].get("points") or [hands[k]["query"]], np.float64).reshape(-1, 2)
        fg_image, fg_r, fg_person, _ = _load(fg_src)
        region, person = cutout(fg_r, fg_person, points, k, cfg)
        area = region.mean()
        if not cfg.min_area <= area <= cfg.max_area:
            continue
        ys, xs = np.nonzero(region)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        bg_image, bg_r, bg_person, bg_valid = _load(bg_src)
        placed = _similarity(rng, box, fg_image.shape[1::-1], bg_image.shape[1::-1], cfg)
        if placed is None:
            continue
        affine, flipped = placed
        skin = None
        if cfg.skin > 0 and rng.random() < cfg.skin:  # no draw when off: earlier composites stay the same
            corners = (
                np.array([[box[0], box[1]], [box[2], box[3]]], np.float64) @ affine[:, :2].T + affine[:, 2]
            )
            dst_box = (*corners.min(0), *corners.max(0))
            skin = skin_patch(rng, fg_image, person, dst_box, bg_image.shape[1::-1], cfg.skin_size)
        out = composite(
            fg_image,
            region,
            person,
            points,
            np.asarray(hands[k]["query"]),
            bg_image,
            bg_r,
            bg_person,
            bg_valid,
            affine,
            cfg.feather,
            skin,
        )
        if out is None:
            continue
        side = hands[k].get("side")
        if flipped and side in ("left", "right"):
            side = "right" if side == "left" else "left"
        return out, fg_src, bg_src, side, bool(hands[k].get("stop_at_wrist"))
    return None


def write_composites(
    datasets: Sequence[str | Path],
    out: str | Path,
    samples: int,
    *,
    seed: int = 0,
    config: CompositeConfig | None = None,
    progress: bool = True,
) -> int:
    """Write ``samples`` composited samples from pseudo-label datasets into a new dataset folder.

    Args:
        datasets: pseudo-label dataset folders (``cohesiv pseudolabel`` outputs) to take cut-outs and
            backgrounds from (any two samples may be combined).
        out: the dataset folder to write (resumed: finished samples are skipped).
        samples: number of composites.
        seed: sample ``i`` is a function of ``(seed, i)``.
        config: :class:`CompositeConfig`.
        progress: tqdm bar on stderr.

    Returns:
        The number of samples in the dataset's manifest.

    Raises:
        InputError: a dataset folder or sample that cannot be read.
        CohesivError: no sample with a hand, or another composite config in ``out``.
    """
    cfg = config or CompositeConfig()
    sources = [_Source(Path(d), e) for d in datasets for e in read_manifest(d)]
    if not any(s.entry["hands"] for s in sources):
        raise CohesivError(f"no sample with a hand in {', '.join(map(str, datasets))}: nothing to cut out")
    root = Path(out)
    (root / "samples").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    meta = {
        "version": 1,
        "composite": asdict(cfg),
        "seed": seed,
        "sources": [str(Path(d).resolve()) for d in datasets],
    }
    meta_path = root / "dataset.json"
    if meta_path.is_file():
        have = json.loads(meta_path.read_text(encoding="utf-8"))
        made = {**_OLD_FIELDS, **(have.get("composite") or {})}  # fields added later: their old value
        if {"composite": made, "seed": have.get("seed")} != {
            "composite": json.loads(json.dumps(meta["composite"])),
            "seed": seed,
        }:
            raise CohesivError(
                f"{meta_path}: composites made with another config or seed; write to a new --out"
            )
    else:
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    for i in tqdm(range(samples), desc="composite", disable=None if progress else True, leave=False):
        sid = f"composite_{seed:04d}_{i:06d}"
        side_path = root / "samples" / f"{sid}.json"
        if side_path.is_file():
            continue
        made = _make_one(sources, np.random.default_rng([seed, i, 0xC0C]), cfg)
        if made is None:
            atomic_write_text(side_path, json.dumps({"skipped": "no cut-out fitted"}))
            continue
        arrays, fg_src, bg_src, side, wrist = made
        h, w = arrays["person"].shape
        bg_hands = bg_src.entry["hands"]
        entry = {
            "id": sid,
            "clip": f"composite of {fg_src.entry['id']} onto {bg_src.entry['id']}",
            "frame": i,
            "image": f"images/{sid}.png",
            "sample": f"samples/{sid}.npz",
            "size": [w, h],
            "hands": [
                *bg_hands,
                {
                    "id": "pasted",
                    "side": side,
                    "query": [float(v) for v in arrays["query"]],
                    "points": [[round(float(x), 3), round(float(y), 3)] for x, y in arrays["points"]],
                    **({"stop_at_wrist": True} if wrist else {}),
                },
            ],
        }
        write_image(root / entry["image"], arrays["image"], compress_level=1)
        write_sample(root / entry["sample"], arrays["responsibility"], arrays["person"], arrays["valid"])
        atomic_write_text(side_path, json.dumps({"entry": entry}))
    return rebuild_manifest(root)
