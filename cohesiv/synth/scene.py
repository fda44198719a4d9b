"""Synthetic egocentric scenes with exact ground truth: sampling, rendering, exact flow.

A scene is a stack of layers, back to front: a textured background plane (with static
distractor objects painted on it) seen by a camera that may move (a smooth homography per
frame), then the held objects, then the hands (with forearms). Every hand or object layer
belongs to a *motion*: ``"camera"`` for the background, ``"hand_left"`` / ``"hand_right"`` for a
hand and the object it holds, or ``"hands_both"`` when both hands hold one object (they then
move together, rigidly with it). A motion is a ``(3, 3)`` homography per frame from its frame
to image pixels, so the flow of the front-most layer at any pixel, between any two frames, is
exact: ``x -> M_s M_t^{-1} x``.

Everything here is pure (arrays in, arrays out); :mod:`cohesiv.synth.writer` writes the files.

Convention:
    Pixels with the origin at the centre of the top-left pixel (as OpenCV's warps), images
    ``(H, W, 3)`` uint8 RGB, labels ``(H, W)`` uint8 EgoHOS (0 background and distractors,
    1 left hand incl. forearm, 2 right hand, 3 object of the left hand, 4 of the right hand,
    5 of both), flow ``(2, H, W)`` float32 (dx, dy) in pixels from frame t to frame s.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from cohesiv.config import CAMERA_MODES as CAMERA_MODES  # camera motion of a clip
from cohesiv.io.hands import Hand, HandTracks
from cohesiv.synth.shapes import (
    OBJECT_SHAPES,
    HandShape,
    Sprite,
    make_hand,
    object_sprite,
    paint_distractor,
    rotation,
    translation,
)
from cohesiv.synth.textures import SKIN_TONES, background_texture

#: Version of the generator; stored in scene.json (a change of version changes the pixels).
GENERATOR_VERSION = 1
HAND_LABELS = {"left": 1, "right": 2}
OBJECT_LABELS = {"left": 3, "right": 4, "both": 5}
MIN_SIZE = (48, 48)
#: A held object keeps at least this fraction of its area in view (not under a hand) in every frame.
MIN_OBJECT_VISIBLE = 0.35
#: Interpolation used to render layers (the flow is exact whatever it is; it sets image quality).
RENDER_INTERP = cv2.INTER_LINEAR
MAX_SIZE = (4096, 4096)
# Motion channels: translation x, y (pixels), angle (radians), relative scale, perspective px, py.
_CHANNELS = ("x", "y", "angle", "scale", "px", "py")


def motion_matrix(params: dict, t: float) -> np.ndarray:
    """Return the ``(3, 3)`` homography of a motion at frame ``t``: motion frame -> image pixels.

    ``params`` holds ``anchor`` (x, y), ``angle0``, ``frame_centre`` (the point of the motion
    frame placed at the anchor) and, for each channel in x, y, angle, scale, px, py, a list
    ``[velocity, amplitude, period, phase]``: the channel's value at frame t is
    ``velocity * t + amplitude * (sin(2 pi t / period + phase) - sin(phase))`` (0 at t = 0).
    The matrix is ``T(anchor + (x, y)) R(angle0 + angle) S(1 + scale) P(px, py) T(-frame_centre)``,
    with ``P`` the projective tilt ``[[1, 0, 0], [0, 1, 0], [px, py, 1]]``.
    """
    v = {}
    for c in _CHANNELS:
        vel, amp, period, phase = params[c]
        v[c] = vel * t + amp * (np.sin(2 * np.pi * t / period + phase) - np.sin(phase))
    ax, ay = params["anchor"]
    cx, cy = params.get("frame_centre", (0.0, 0.0))
    persp = np.array([[1.0, 0, 0], [0, 1.0, 0], [v["px"], v["py"], 1.0]])
    scale = np.diag([1.0 + v["scale"], 1.0 + v["scale"], 1.0])
    return (
        translation(ax + v["x"], ay + v["y"])
        @ rotation(params["angle0"] + v["angle"])
        @ scale
        @ persp
        @ translation(-cx, -cy)
    )


def apply_homography(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply ``(3, 3)`` homography ``m`` to ``(N, 2)`` points; return ``(N, 2)`` float64."""
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    q = pts @ m[:, :2].T + m[:, 2]
    return q[:, :2] / q[:, 2:3]


def flow_between(
    motion_map: np.ndarray, homs_t: Sequence[np.ndarray], homs_s: Sequence[np.ndarray]
) -> np.ndarray:
    """Exact flow from frame t to frame s of a layered scene.

    Args:
        motion_map: ``(H, W)`` int, index of the motion of the front-most layer at each pixel of
            frame t.
        homs_t: per motion, its ``(3, 3)`` homography (motion frame -> image) at frame t.
        homs_s: the same at frame s.

    Returns:
        Flow ``(2, H, W)`` float32 in pixels, channel 0 = dx (right), 1 = dy (down): pixel x of
        frame t goes to ``x + flow[:, y, x]`` in frame s (possibly outside the image).

    Convention:
        Pixel centres at integer coordinates, origin at the centre of the top-left pixel.
    """
    h, w = motion_map.shape
    xs, ys = _grid(h, w)
    flow = np.zeros((2, h, w), np.float32)
    for g in np.unique(motion_map):
        m = np.asarray(homs_s[g], np.float64) @ np.linalg.inv(np.asarray(homs_t[g], np.float64))
        sel = motion_map == g
        den = m[2, 0] * xs + m[2, 1] * ys + m[2, 2]
        np.copyto(flow[0], (m[0, 0] * xs + m[0, 1] * ys + m[0, 2]) / den - xs, where=sel, casting="same_kind")
        np.copyto(flow[1], (m[1, 0] * xs + m[1, 1] * ys + m[1, 2]) / den - ys, where=sel, casting="same_kind")
    return flow


@functools.lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys


@dataclass
class Layer:
    """One hand or object layer: a sprite attached to a motion.

    Attributes:
        name: e.g. "hand_left", "object_right", "object_both".
        label: EgoHOS label of its pixels.
        motion: name of its motion.
        sprite: texture/alpha; ``sprite.placement`` maps canvas pixels to the motion frame.
        info: JSON-able description.
    """

    name: str
    label: int
    motion: str
    sprite: Sprite
    info: dict = field(default_factory=dict)


@dataclass
class Scene:
    """A sampled scene: everything needed to render any frame and its exact flow.

    Attributes:
        size: ``(W, H)``.
        frames: number of frames.
        background: ``(Hc, Wc, 3)`` float32 background canvas (distractors painted on it).
        layers: hand and object layers, back to front.
        motions: motion name -> parameters (see :func:`motion_matrix`).
        hands: per hand: ``id``, ``side``, ``motion``, ``keypoints`` ``(21, 2)`` in the motion frame.
        info: JSON-able description (seed, camera mode, styles, ...).
    """

    size: tuple[int, int]
    frames: int
    background: np.ndarray
    layers: list[Layer]
    motions: dict[str, dict]
    hands: list[dict]
    info: dict
    _bg_cache: tuple | None = field(default=None, repr=False)

    @property
    def motion_names(self) -> list[str]:
        """Motion names, in the order used by motion maps (``"camera"`` first)."""
        return list(self.motions)

    def matrices(self, t: float) -> list[np.ndarray]:
        """Per motion (in :attr:`motion_names` order), its ``(3, 3)`` homography at frame ``t``."""
        return [motion_matrix(self.motions[n], t) for n in self.motion_names]

    def label_motion(self) -> dict[int, str]:
        """EgoHOS label -> name of the motion of the pixels with that label."""
        out = {0: "camera"}
        for layer in self.layers:
            out[layer.label] = layer.motion
        return out

    def motion_map(self, label: np.ndarray) -> np.ndarray:
        """Map an ``(H, W)`` label image of this scene to motion indices ``(H, W)`` int."""
        return motion_map_from_labels(label, self.label_motion(), self.motion_names)

    def keypoints(self, t: int) -> dict[str, np.ndarray]:
        """Hand id -> ``(21, 2)`` keypoints in image pixels at frame ``t``."""
        return {
            h["id"]: apply_homography(motion_matrix(self.motions[h["motion"]], t), h["keypoints"])
            for h in self.hands
        }

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Render frame ``t``; return the image ``(H, W, 3)`` uint8 RGB and labels ``(H, W)`` uint8."""
        w, h = self.size
        cam = motion_matrix(self.motions["camera"], t)
        key = cam.tobytes()
        if self._bg_cache is None or self._bg_cache[0] != key:  # a static camera renders it once
            bg = cv2.warpPerspective(
                self.background, cam, (w, h), flags=RENDER_INTERP, borderMode=cv2.BORDER_REFLECT_101
            )
            self._bg_cache = (key, bg)
        img = self._bg_cache[1].copy()
        lab = np.zeros((h, w), np.uint8)
        for layer in self.layers:
            hm = motion_matrix(self.motions[layer.motion], t) @ layer.sprite.placement
            ch, cw = layer.sprite.rgba.shape[:2]
            corners = apply_homography(
                hm, np.array([[0, 0], [cw - 1, 0], [cw - 1, ch - 1], [0, ch - 1]], float)
            )
            x0, y0 = (max(int(np.floor(v)) - 2, 0) for v in corners.min(0))
            x1, y1 = (
                min(int(np.ceil(corners[:, 0].max())) + 3, w),
                min(int(np.ceil(corners[:, 1].max())) + 3, h),
            )
            if x1 <= x0 or y1 <= y0:
                continue
            rgba = cv2.warpPerspective(
                layer.sprite.rgba, translation(-x0, -y0) @ hm, (x1 - x0, y1 - y0),
                flags=RENDER_INTERP, borderMode=cv2.BORDER_CONSTANT,
            )  # fmt: skip
            a = np.clip(rgba[..., 3:], 0.0, 1.0)
            roi = img[y0:y1, x0:x1]
            roi += (rgba[..., :3] - roi) * a
            lab[y0:y1, x0:x1][a[..., 0] >= 0.5] = layer.label
        return np.clip(np.rint(img), 0, 255).astype(np.uint8), lab

    def flow(self, label_t: np.ndarray, t: int, s: int) -> np.ndarray:
        """Exact flow ``(2, H, W)`` from frame t (whose labels are ``label_t``) to frame s."""
        return flow_between(self.motion_map(label_t), self.matrices(t), self.matrices(s))

    def hand_tracks(self) -> HandTracks:
        """Hand tracks of the whole clip (21 keypoints per hand per frame, box around them)."""
        w, h = self.size
        frames = {}
        for t in range(self.frames):
            kps = self.keypoints(t)
            out = []
            for hd in self.hands:
                k = kps[hd["id"]]
                pad = 0.15 * hd["palm"]
                box = (
                    max(float(k[:, 0].min() - pad), -0.5),
                    max(float(k[:, 1].min() - pad), -0.5),
                    min(float(k[:, 0].max() + pad), w - 0.5),
                    min(float(k[:, 1].max() + pad), h - 0.5),
                )
                out.append(Hand(id=hd["id"], side=hd["side"], points=k.astype(np.float32), box=box))
            frames[t] = out
        return HandTracks(image_size=(w, h), frames=frames)

    def to_json(self) -> dict:
        """Return scene.json's content: the recipe (seed, sizes) plus all motions and layers."""
        label_motion = self.label_motion()
        return {
            **self.info,
            "generator_version": GENERATOR_VERSION,
            "size": list(self.size),
            "frames": self.frames,
            "motion_names": self.motion_names,
            "motions": {
                n: {
                    "params": _jsonable(p),
                    "matrices": [motion_matrix(p, t).tolist() for t in range(self.frames)],
                }
                for n, p in self.motions.items()
            },
            "label_motion": {str(k): v for k, v in sorted(label_motion.items())},
            "layers": [
                {
                    "name": ly.name,
                    "label": ly.label,
                    "motion": ly.motion,
                    "placement": ly.sprite.placement.tolist(),
                    "canvas_size": [ly.sprite.rgba.shape[1], ly.sprite.rgba.shape[0]],
                    **_jsonable(ly.info),
                }
                for ly in self.layers
            ],
            "hands": [_jsonable(h) for h in self.hands],
        }


def motion_map_from_labels(label: np.ndarray, label_motion: dict, motion_names: Sequence[str]) -> np.ndarray:
    """Map EgoHOS labels ``(H, W)`` to motion indices ``(H, W)`` int with a label -> motion table.

    Raises:
        ValueError: a label value present in the image has no motion in the table.
    """
    lut = np.full(256, -1, np.int64)
    for k, name in label_motion.items():
        lut[int(k)] = list(motion_names).index(name)
    out = lut[np.asarray(label, np.uint8)]
    if (out < 0).any():
        bad = sorted(set(np.unique(np.asarray(label)[out < 0]).tolist()))
        raise ValueError(f"label values {bad} have no motion in this scene")
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def _still(anchor, angle0: float = 0.0, centre=(0.0, 0.0)) -> dict:
    p = {c: [0.0, 0.0, 1.0, 0.0] for c in _CHANNELS}
    p.update(anchor=[float(anchor[0]), float(anchor[1])], angle0=float(angle0), frame_centre=list(centre))
    return p


def _random_motion(rng, anchor, angle0, centre, ranges: dict, k: float) -> dict:
    """Smooth random motion: per channel a drift and a sinusoid, amplitudes scaled by ``k``."""
    p = _still(anchor, angle0, centre)
    for c in _CHANNELS:
        vmax, amin, amax, tmin, tmax = ranges[c]
        p[c] = [
            float(rng.uniform(-vmax, vmax) * k),
            float(rng.uniform(amin, amax) * k * rng.choice([-1, 1])),
            float(rng.uniform(tmin, tmax)),
            float(rng.uniform(0, 2 * np.pi)),
        ]
    return p


def _sample_alpha(sprite: Sprite, to_image: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Alpha of ``sprite`` (warped by ``to_image``) at image points ``(N, 2)``, as the renderer sees it."""
    q = apply_homography(np.linalg.inv(to_image @ sprite.placement), pts).astype(np.float32)
    a = cv2.remap(
        sprite.rgba[..., 3], q[:, 0].reshape(1, -1), q[:, 1].reshape(1, -1), cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip
    return a.reshape(-1)


def _placement_ok(
    scene: Scene, hand_layers: dict[str, Layer], object_layers: list[Layer], check_objects: bool = True
) -> bool:
    """Check that a sampled placement is valid in every frame.

    Every keypoint must be visible on its own hand (with a margin on alpha), every forearm must
    leave the image through the bottom edge and every held object must keep
    :data:`MIN_OBJECT_VISIBLE` of its area in the image and not under a hand.
    """
    w, h = scene.size
    order = [ly.name for ly in scene.layers]
    for t in range(scene.frames):
        kps = scene.keypoints(t)
        for hd in scene.hands:
            k = kps[hd["id"]]
            r = np.rint(k)
            if (
                (r[:, 0] < 1).any()
                or (r[:, 0] > w - 2).any()
                or (r[:, 1] < 1).any()
                or (r[:, 1] > h - 2).any()
            ):
                return False
            gm = motion_matrix(scene.motions[hd["motion"]], t)
            own = hand_layers[hd["id"]]
            if (_sample_alpha(own.sprite, gm, r) < 0.65).any():
                return False
            end = apply_homography(gm @ hd["attach"], np.array([[0.0, hd["forearm"] - 2]]))[0]
            if end[1] < h + 2:
                return False
            for other_id, other in hand_layers.items():
                if other_id != hd["id"] and order.index(other.name) > order.index(own.name):
                    om = motion_matrix(scene.motions[other.motion], t)
                    if (_sample_alpha(other.sprite, om, r) > 0.35).any():
                        return False
        for ob in object_layers if check_objects else []:
            om = motion_matrix(scene.motions[ob.motion], t)
            pts = apply_homography(om @ ob.sprite.placement, _object_points(ob.sprite))
            seen = (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
            for hl in hand_layers.values():
                seen &= _sample_alpha(hl.sprite, motion_matrix(scene.motions[hl.motion], t), pts) < 0.5
            if seen.mean() < MIN_OBJECT_VISIBLE:
                return False
    return True


def _object_points(sprite: Sprite, n: int = 80) -> np.ndarray:
    """Up to ``n`` canvas points spread over the inside of a sprite (alpha > 0.5), ``(n, 2)``."""
    ys, xs = np.nonzero(sprite.rgba[..., 3] > 0.5)
    idx = np.linspace(0, len(xs) - 1, min(n, len(xs))).astype(int)
    return np.stack([xs[idx], ys[idx]], 1).astype(np.float64)


def sample_scene(
    seed: int | Sequence[int], frames: int, size: tuple[int, int], camera: str = "mixed"
) -> Scene:
    """Sample a random egocentric scene; deterministic in ``seed``.

    Varies with the seed: one or two hands (left hand on the left, right on the right, entering
    from the bottom edge), palm size, skin tone, finger lengths and spread, whether each hand
    holds an object (sometimes one object held by both hands, label 5), object shapes, sizes,
    colours and textures, background style, 0-4 static distractors, hand motions (smooth
    translation + rotation + slight scale and projective tilt), camera motion and its amplitude.

    Args:
        seed: an integer or a sequence of integers (e.g. ``[dataset_seed, clip_index]``).
        frames: number of frames (>= 2).
        size: ``(W, H)`` in pixels.
        camera: "static" (the background never moves), "moving" (smooth homography drift) or
            "mixed" (each seed picks one, half of the time each).

    Returns:
        The :class:`Scene`.

    Raises:
        ValueError: bad arguments.
    """
    w, h = (int(v) for v in size)
    if not (MIN_SIZE[0] <= w <= MAX_SIZE[0] and MIN_SIZE[1] <= h <= MAX_SIZE[1]):
        raise ValueError(
            f"size must be between {MIN_SIZE[0]}x{MIN_SIZE[1]} and {MAX_SIZE[0]}x{MAX_SIZE[1]}, got {w}x{h}"
        )
    if frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, got {frames}")
    if camera not in CAMERA_MODES:
        raise ValueError(f"camera must be one of {', '.join(CAMERA_MODES)}, got {camera!r}")
    seed_list = [int(seed)] if np.isscalar(seed) else [int(s) for s in seed]
    rng = np.random.default_rng(seed_list)
    unit = min(w, 4 * h / 3)
    # translations scale with the image, but not below what a 240-pixel-wide image gets: tiny
    # images keep motions of a few pixels per frame (flow well above the interpolation noise)
    munit = max(unit, 240.0)
    mode = camera if camera != "mixed" else ("static", "moving")[int(rng.integers(0, 2))]

    # --- background plane with distractors
    margin = int(0.3 * unit) + 4
    bg, style = background_texture(rng, h + 2 * margin, w + 2 * margin)
    distractors = [
        paint_distractor(
            rng,
            bg,
            (margin + rng.uniform(0.05, 0.95) * w, margin + rng.uniform(0.05, 0.75) * h),
            rng.uniform(0.1, 0.25) * unit,
        )  # fmt: skip
        for _ in range(int(rng.integers(0, 5)))
    ]
    cam_amp = float(rng.uniform(0.4, 1.0)) if mode == "moving" else 0.0
    centre_img = ((w - 1) / 2, (h - 1) / 2)
    centre_canvas = (margin + (w - 1) / 2, margin + (h - 1) / 2)
    cam_ranges = {
        "x": (0.006 * munit, 0.015 * munit, 0.06 * munit, 14, 40),
        "y": (0.006 * munit, 0.015 * munit, 0.06 * munit, 14, 40),
        "angle": (np.deg2rad(0.2), 0.0, np.deg2rad(4.0), 14, 40),
        "scale": (0.002, 0.0, 0.03, 16, 48),
        "px": (0.0, 0.0, 0.04 / unit, 16, 48),
        "py": (0.0, 0.0, 0.04 / unit, 16, 48),
    }
    cam = _random_motion(rng, centre_img, 0.0, centre_canvas, cam_ranges, cam_amp)

    # --- hands and objects
    two = rng.uniform() < 0.6
    sides = ["left", "right"] if two else [("left", "right")[int(rng.integers(0, 2))]]
    shared = two and rng.uniform() < 0.2
    holds = {s: (not shared) and rng.uniform() < 0.7 for s in sides}
    palm0 = rng.uniform(0.11, 0.16) * unit
    tone = SKIN_TONES[int(rng.integers(0, len(SKIN_TONES)))] * rng.uniform(0.93, 1.07, 3)
    forearm = 1.3 * h + 2 * palm0
    shapes: dict[str, HandShape] = {
        s: make_hand(rng, s, palm0 * rng.uniform(0.95, 1.05), forearm, np.clip(tone, 0, 255)) for s in sides
    }
    hand_order = list(sides)
    rng.shuffle(hand_order)

    motion_of = {s: ("hands_both" if shared else f"hand_{s}") for s in sides}
    attach = {s: np.eye(3) for s in sides}
    tilt = {s: 0.0 for s in sides}
    if shared:
        gap = rng.uniform(1.9, 2.8) * palm0
        for s, sign in (("left", -1.0), ("right", 1.0)):
            tilt[s] = -sign * np.deg2rad(rng.uniform(8, 28))
            attach[s] = translation(sign * gap / 2, 0.0) @ rotation(tilt[s])

    hand_layers: dict[str, Layer] = {}
    for s in hand_order:
        spr = Sprite(shapes[s].sprite.rgba, attach[s] @ shapes[s].sprite.placement)  # canvas -> motion frame
        hand_layers[s] = Layer(f"hand_{s}", HAND_LABELS[s], motion_of[s], spr, {"palm": shapes[s].palm})

    def uncovered(obj: Sprite, placement: np.ndarray, by: list[str]) -> float:
        """Fraction of the object (placed in the motion frame) not under the hands ``by``."""
        pts = apply_homography(placement, _object_points(obj))
        free = np.ones(len(pts), bool)
        for b in by:
            free &= _sample_alpha(hand_layers[b].sprite, np.eye(3), pts) < 0.5
        return float(free.mean())

    object_layers: list[Layer] = []
    for s in sides if not shared else []:
        if not holds[s]:
            continue
        shape = OBJECT_SHAPES[int(rng.integers(0, len(OBJECT_SHAPES)))]
        ow, oh = rng.uniform(0.9, 1.7) * palm0, rng.uniform(0.7, 1.6) * palm0
        spr, colour = object_sprite(rng, ow, oh, shape)
        mirror = -1.0 if s == "left" else 1.0
        for i in range(20):  # partly under the fingers, but mostly visible (small ones slide to the tips)
            centre = np.array(
                [mirror * rng.uniform(-0.3, 0.3) * palm0, -(rng.uniform(1.0, 1.5) + 0.04 * i) * palm0]
            )
            placement = translation(*centre) @ rotation(rng.uniform(-0.5, 0.5)) @ spr.placement
            if uncovered(spr, placement, [s]) >= 0.5:
                break
        spr.placement = placement
        object_layers.append(
            Layer(f"object_{s}", OBJECT_LABELS[s], motion_of[s], spr,
                  {"shape": shape, "size": [ow, oh], "colour": colour, "centre_in_motion": centre})
        )  # fmt: skip
    if shared:
        tips = np.stack([apply_homography(attach[s], np.array([[0.0, -0.9 * palm0]]))[0] for s in sides])
        shape = ("box", "rounded", "ellipse")[int(rng.integers(0, 3))]
        ow = abs(tips[1, 0] - tips[0, 0]) + rng.uniform(0.4, 0.9) * palm0
        oh = rng.uniform(0.5, 1.1) * palm0
        spr, colour = object_sprite(rng, ow, oh, shape)
        for i in range(20):
            centre = tips.mean(0) + np.array([0.0, -(rng.uniform(0.0, 0.5) + 0.04 * i) * palm0])
            placement = translation(*centre) @ rotation(rng.uniform(-0.08, 0.08)) @ spr.placement
            if uncovered(spr, placement, sides) >= 0.5:
                break
        spr.placement = placement
        object_layers.append(
            Layer("object_both", OBJECT_LABELS["both"], "hands_both", spr,
                  {"shape": shape, "size": [ow, oh], "colour": colour, "centre_in_motion": centre})
        )  # fmt: skip
    rng.shuffle(object_layers)
    layers = object_layers + [hand_layers[s] for s in hand_order]
    hands = [
        {
            "id": s,
            "side": s,
            "motion": motion_of[s],
            "palm": shapes[s].palm,
            "forearm": forearm,
            "tone": shapes[s].tone,
            "attach": attach[s],
            "keypoints": apply_homography(attach[s], shapes[s].keypoints),
        }
        for s in sides
    ]

    hand_ranges = {
        "x": (0.005 * munit, 0.015 * munit, 0.08 * munit, 12, 36),
        "y": (0.005 * munit, 0.015 * munit, 0.08 * munit, 12, 36),
        "angle": (np.deg2rad(0.5), np.deg2rad(2.0), np.deg2rad(14.0), 12, 36),
        "scale": (0.0, 0.0, 0.06, 12, 36),
        "px": (0.0, 0.0, 0.25 / forearm, 14, 40),
        "py": (0.0, 0.0, 0.25 / forearm, 14, 40),
    }
    scene = None
    for attempt in range(40):
        if attempt % 10 == 0:  # (re)sample where the hands are
            anchors = {}
            if shared:
                anchors["hands_both"] = (
                    (rng.uniform(0.4, 0.6) * w, rng.uniform(0.5, 0.7) * h),
                    np.deg2rad(rng.uniform(-8, 8)),
                )
            for s in sides if not shared else []:
                lo, hi = (0.18, 0.42) if two else (0.25, 0.5)
                x = rng.uniform(lo, hi) * w
                anchors[f"hand_{s}"] = (
                    (x if s == "left" else w - 1 - x, rng.uniform(0.45, 0.7) * h),
                    np.deg2rad(rng.uniform(5, 35)) * (1 if s == "left" else -1),
                )
        k = 0.75 ** (attempt % 10) if attempt % 10 < 9 else 0.0
        motions = {"camera": cam}
        for name, (anchor, angle0) in anchors.items():
            motions[name] = _random_motion(rng, anchor, angle0, (0.0, 0.0), hand_ranges, k)
        scene = Scene(
            size=(w, h),
            frames=int(frames),
            background=bg,
            layers=layers,
            motions=motions,
            hands=hands,
            info={
                "seed": seed_list,
                "camera": mode,
                "camera_requested": camera,
                "camera_amplitude": cam_amp,
                "background_style": style,
                "distractors": distractors,
                "motion_amplitude": k,
                "placement_attempts": attempt + 1,
            },
        )
        if _placement_ok(scene, hand_layers, object_layers, check_objects=attempt < 30):
            return scene
    raise RuntimeError(
        f"could not place the hands of seed {seed_list} in a {w}x{h} image"
    )  # pragma: no cover


@dataclass
class SynthClip:
    """A rendered synthetic clip.

    Attributes:
        frames: ``(F, H, W, 3)`` uint8 RGB.
        labels: ``(F, H, W)`` uint8 EgoHOS labels.
        flows: ``(F-1, 2, H, W)`` float32 exact forward flow t -> t+1 of the front-most layer at t.
        hands: hand tracks (21 keypoints per hand per frame).
        scene: the JSON-able scene description (written as scene.json).
    """

    frames: np.ndarray
    labels: np.ndarray
    flows: np.ndarray
    hands: HandTracks
    scene: dict


def iter_clip(scene: Scene) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Yield ``(image, label, flow to the next frame or None for the last frame)`` per frame."""
    mats = [scene.matrices(t) for t in range(scene.frames)]
    for t in range(scene.frames):
        img, lab = scene.render(t)
        flow = None
        if t + 1 < scene.frames:
            flow = flow_between(scene.motion_map(lab), mats[t], mats[t + 1])
        yield img, lab, flow


def generate_clip(
    seed: int | Sequence[int], *, frames: int = 24, size: tuple[int, int] = (320, 240), camera: str = "mixed"
) -> SynthClip:
    """Render a synthetic clip with exact ground truth, in memory (see :func:`sample_scene`).

    Args:
        seed: an integer or a sequence of integers; the same seed gives the same clip.
        frames: number of frames (>= 2).
        size: ``(W, H)``.
        camera: "static", "moving" or "mixed".

    Returns:
        A :class:`SynthClip` (images, labels, forward flows, hand tracks, scene description).
    """
    scene = sample_scene(seed, frames, size, camera)
    imgs, labs, flows = [], [], []
    for img, lab, flow in iter_clip(scene):
        imgs.append(img)
        labs.append(lab)
        if flow is not None:
            flows.append(flow)
    return SynthClip(
        frames=np.stack(imgs),
        labels=np.stack(labs),
        flows=np.stack(flows),
        hands=scene.hand_tracks(),
        scene=scene.to_json(),
    )
