"""The two baselines of COHESIV [C] section 4: Thresholded Responsibility and Flow.

**Thresholded Responsibility.** The pseudo-labels of the frame
(:func:`cohesiv.responsibility.labeler.label_frame`, the function ``cohesiv pseudolabel`` uses,
with the same options), thresholded: ``R_k > tau`` is the Pair mask of hand k. [C] reports only
All and Pair for it; we also split the Pair mask into Hand = Pair ∩ person and Obj = Pair −
person, with the pseudo-labels' person mask (dilated convex hulls of the hand points, optional
forearm band). :class:`PseudoLabelDataset` scores a written pseudo-label dataset the same way.

**Flow.** The flow magnitude ``||O(x)||`` (in pixels per frame, averaged over the offsets used)
thresholded at ``tau`` is the All mask. With ``background="homography"`` (for a moving camera)
the magnitude is taken relative to the camera motion: a homography fitted robustly to the flow
away from the hands (:func:`cohesiv.responsibility.fit_camera_homography`, the model used for
the responsibility background) and the residual ``||x + O(x) - proj(M_cam x~)||`` is thresholded
instead (falling back to the plain magnitude when the fit fails). The Pair mask of hand k is the
union of the connected components (8-connectivity) of the All mask that contain one of the hand's
points or its query point; Hand / Obj are split by the person mask as above.

Both baselines separate the expensive part (``maps``: flows, responsibilities, once per image)
from the cheap one (``masks``: thresholding), so that :func:`fit_threshold` can try a whole grid of
thresholds on the validation clips at the cost of one pass.

Conventions: flow ``(2, H, W)`` float32 pixels (dx, dy) from frame t to t+k; points ``(x, y)``
pixels, origin at the centre of the top-left pixel; responsibilities ``(N+1, H, W)``, channel 0
background; masks ``(H, W)`` or ``(K, H, W)`` uint8 {0, 1}.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cohesiv._checks import check_shape
from cohesiv.errors import InputError
from cohesiv.eval.driver import FrameContext, HOSPrediction, iter_scored_frames
from cohesiv.eval.metrics import HOSMeter, all_gt, mask_stats, reduce_stats
from cohesiv.io import Hand
from cohesiv.io.dataset import clip_name, read_manifest, read_sample, sample_id, sidecar_path, wrist_points
from cohesiv.responsibility.labeler import PseudoLabelConfig, label_frame, usable_offsets
from cohesiv.responsibility.masks import stop_at_wrist

#: Default frame offsets of [C] (±1, ±2, ±3) for the responsibility baseline.
RESPONSIBILITY_OFFSETS = (-3, -2, -1, 1, 2, 3)
#: Default offsets of the flow baseline: the next frame (the previous one at the end of a clip).
FLOW_OFFSETS = (1,)
#: Threshold grids searched on the validation clips.
RESPONSIBILITY_GRID = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2).tolist())
FLOW_GRID = tuple(np.round(np.geomspace(0.02, 24.0, 32), 3).tolist())

#: ``source(context, s, src=None) -> (2, H, W)``: flow from frame ``src`` (default ``context.t``) to ``s``.
FlowSource = Callable[..., np.ndarray]


# ----------------------------------------------------------------------------- pure cores


def split_by_person(pair: np.ndarray, person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split Pair masks into Hand = Pair ∩ person and Obj = Pair − person.

    Args:
        pair: ``(K, H, W)`` {0, 1}.
        person: ``(H, W)`` {0, 1}.

    Returns:
        ``(hand, obj)``, each ``(K, H, W)`` uint8 {0, 1}.
    """
    s = check_shape(pair, "K,H,W", "pair")
    check_shape(person, f"{s['H']},{s['W']}", "person")
    pair = np.asarray(pair) != 0
    p = np.asarray(person)[None] != 0
    return (pair & p).astype(np.uint8), (pair & ~p).astype(np.uint8)


def threshold_responsibility(
    responsibility: np.ndarray, person: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Thresholded Responsibility baseline [C]: ``R_k > threshold`` is the Pair mask of hand k.

    Args:
        responsibility: ``(N+1, H, W)``, channel 0 background, channel k hand k.
        person: ``(H, W)`` {0, 1} person mask (as the pseudo-labeller makes it).
        threshold: in [0, 1].

    Returns:
        ``(hand, obj)`` ``(N, H, W)`` uint8 {0, 1}: Pair ∩ person and Pair − person.
    """
    check_shape(responsibility, "C,H,W", "responsibility")
    pair = np.asarray(responsibility)[1:] > threshold
    return split_by_person(pair, person)


def motion_magnitude(
    flow: np.ndarray,
    camera: np.ndarray | None = None,
) -> np.ndarray:
    """Per-pixel motion ``||O(x)||``, or relative to a camera homography ``||x + O(x) - proj(M x~)||``.

    Args:
        flow: ``(2, H, W)`` float32 flow from frame t to t+k, pixels.
        camera: optional ``(3, 3)`` homography of the camera motion from frame t to t+k.

    Returns:
        ``(H, W)`` float32, pixels.
    """
    check_shape(flow, "2,H,W", "flow")
    flow = np.asarray(flow, np.float32)
    if camera is None:
        return np.sqrt(flow[0] ** 2 + flow[1] ** 2)
    from cohesiv.responsibility import homography_distances

    return np.asarray(homography_distances(flow, np.asarray(camera, np.float64)[None])[0], np.float32)


def components_under_points(mask: np.ndarray, points: Sequence[np.ndarray]) -> np.ndarray:
    """For each point set, the union of the connected components of ``mask`` that contain a point.

    Args:
        mask: ``(H, W)`` {0, 1}.
        points: K arrays ``(N_k, 2)`` of ``(x, y)`` pixels (rounded to the nearest pixel; points
            outside the image are ignored).

    Returns:
        ``(K, H, W)`` uint8 {0, 1}.
    """
    s = check_shape(mask, "H,W", "mask")
    h, w = s["H"], s["W"]
    out = np.zeros((len(points), h, w), np.uint8)
    if not len(points):
        return out
    _, comp = cv2.connectedComponents((np.asarray(mask) != 0).astype(np.uint8), connectivity=8)
    for k, pts in enumerate(points):
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        pts = pts[np.isfinite(pts).all(1)]
        xy = np.rint(pts).astype(np.int64)
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        ids = np.unique(comp[xy[inside, 1], xy[inside, 0]])
        ids = ids[ids > 0]
        if len(ids):
            out[k] = np.isin(comp, ids)
    return out


def flow_baseline_masks(
    motion: np.ndarray, hand_points: Sequence[np.ndarray], person: np.ndarray, threshold: float
) -> HOSPrediction:
    """Flow baseline [C]: ``motion > threshold`` is All; components under each hand's points are its Pair.

    Args:
        motion: ``(H, W)`` motion magnitude, pixels (see :func:`motion_magnitude`).
        hand_points: K arrays ``(N_k, 2)``: each hand's points and query point.
        person: ``(H, W)`` {0, 1} person mask splitting Pair into Hand and Obj.
        threshold: pixels.

    Returns:
        :class:`HOSPrediction` with ``all_mask`` set.
    """
    moving = (np.asarray(motion) > threshold).astype(np.uint8)
    pair = components_under_points(moving, hand_points)
    hand, obj = split_by_person(pair, person)
    return HOSPrediction(hand_masks=hand, object_masks=obj, all_mask=moving)


# ----------------------------------------------------------------------------- flow sources


def available_offsets(offsets: Sequence[int], t: int, n_frames: int) -> list[int]:
    """The offsets k with ``0 <= t + k < n_frames``; when none is, the nearest frame's offset."""
    ks = [k for k in offsets if k != 0 and 0 <= t + k < n_frames]
    if ks or n_frames < 2:
        return ks
    return [1] if t + 1 < n_frames else [-1]


class ExactFlow:
    """Ground-truth flow of a synthetic clip (``cohesiv.synth.exact_flow``)."""

    name = "gt"

    def __call__(self, context: FrameContext, s: int, src: int | None = None) -> np.ndarray:
        """Flow ``(2, H, W)`` from frame ``src`` (default ``context.t``) to frame ``s``."""
        from cohesiv.synth import exact_flow

        src = context.t if src is None else src
        return np.asarray(exact_flow(context.clip.path, src, s), np.float32)


class EstimatedFlow:
    """Flow estimated from the frames (DIS or RAFT), each pair at most once per clip (``FlowCache``)."""

    def __init__(self, estimator: Any, name: str = "dis") -> None:
        """Wrap a ``cohesiv.flow.FlowEstimator`` (or anything with ``est(a, b) -> (2, H, W)``)."""
        self.estimator = estimator
        self.name = name
        self._clip: Path | None = None
        self._cache = None

    def __call__(self, context: FrameContext, s: int, src: int | None = None) -> np.ndarray:
        """Flow ``(2, H, W)`` from frame ``src`` (default ``context.t``) to frame ``s``."""
        from cohesiv.flow import FlowCache

        if self._clip != context.clip.path:
            self._clip = context.clip.path
            self._cache = FlowCache(self.estimator, context.clip.reader.frame)
        src = context.t if src is None else src
        return np.array(self._cache.get(src, s), np.float32)  # a writable copy


def _hand_points(hands: Sequence[Hand]) -> list[np.ndarray]:
    return [np.asarray(h.points, np.float32).reshape(-1, 2) for h in hands]


def _person(hands: Sequence[Hand], size: tuple[int, int]) -> np.ndarray:
    from cohesiv.responsibility import person_mask

    pts = [p if len(p) else np.asarray([h.query], np.float32) for p, h in zip(_hand_points(hands), hands)]
    return person_mask(pts, size)


# ----------------------------------------------------------------------------- baselines


@dataclass
class ResponsibilityBaseline:
    """Thresholded Responsibility [C]: ``R_k > tau`` is hand k's Pair mask.

    The maps are the pseudo-labels themselves: :func:`cohesiv.responsibility.labeler.label_frame`
    with the same :class:`~cohesiv.responsibility.labeler.PseudoLabelConfig` as ``cohesiv
    pseudolabel`` (forward–backward weighting, forearm band, smoothing, ...), so the baseline and
    the dataset give the same maps for the same options.

    Attributes:
        flow: flow source ``(context, s, src=None) -> (2, H, W)`` (:class:`ExactFlow` or
            :class:`EstimatedFlow`); ``config.flow`` is not used to build it.
        config: the pseudo-label options (default: ``cohesiv pseudolabel``'s defaults).
        offsets: override of ``config.offsets`` (±1, ±2, ±3 in [C]).
        temperature: override of ``config.temperature``.
        background: override of ``config.background`` (``"static"`` [C] or ``"homography"``).
        fb_check: override of ``config.fb_check`` (False is [C]).
    """

    flow: FlowSource
    config: PseudoLabelConfig = field(default_factory=PseudoLabelConfig)
    offsets: Sequence[int] | None = None
    temperature: float | None = None
    background: str | None = None
    fb_check: bool | None = None
    name = "responsibility"
    grid = RESPONSIBILITY_GRID

    def __post_init__(self) -> None:
        """Fold the overrides into ``config``."""
        over = {
            k: getattr(self, k)
            for k in ("offsets", "temperature", "background", "fb_check")
            if getattr(self, k) is not None
        }
        self.config = dataclasses.replace(self.config, **over)

    def maps(self, image: np.ndarray, hands: Sequence[Hand], context: FrameContext) -> dict:
        """Averaged responsibility ``(N+1, H, W)`` (one channel per hand) and person mask ``(H, W)``."""
        h, w = image.shape[:2]
        t = context.t
        ks = usable_offsets(self.config.offsets, t, context.n_frames)
        labels = None
        if hands:
            labels = label_frame(
                lambda a, b: self.flow(context, b, src=a),
                t,
                ks,
                _hand_points(hands),
                (w, h),
                self.config,
                image=image,
            )
        if labels is None:
            r = np.zeros((len(hands) + 1, h, w), np.float32)
            r[0] = 1
            return {"responsibility": r, "person": _person(hands, (w, h))}
        return {"responsibility": labels.responsibility, "person": labels.person}

    def masks(self, maps: dict, threshold: float) -> HOSPrediction:
        """Threshold the maps (cheap)."""
        hand, obj = threshold_responsibility(maps["responsibility"], maps["person"], threshold)
        return HOSPrediction(hand_masks=hand, object_masks=obj)


class PseudoLabelDataset:
    """A written pseudo-label dataset (``cohesiv pseudolabel``) scored as Thresholded Responsibility.

    The maps of a scored frame are read from the dataset's sample of that clip and frame, so
    "the model vs its pseudo-labels" compares like with like: the very maps it was trained on.
    Samples are found by the clip's path recorded in the manifest (resolved), else by sample id
    (clip folder name and frame). A frame whose sample was skipped (no hand could be fitted)
    predicts nothing; a hand of the labeled clip with no channel in the sample (matched by id,
    else side) predicts nothing for that hand.

    Args:
        dataset: the dataset folder.

    Raises:
        InputError: not a dataset (no manifest.jsonl).
    """

    name = "pseudo-labels"
    grid = RESPONSIBILITY_GRID

    def __init__(self, dataset: str | Path) -> None:
        self.root = Path(dataset)
        self._by_clip = {}
        for e in read_manifest(self.root):
            self._by_clip[(str(Path(e["clip"]).resolve()), int(e["frame"]))] = e

    def _entry(self, clip: Path, t: int) -> dict | None:
        e = self._by_clip.get((str(Path(clip).resolve()), int(t)))
        if e is not None:
            return e
        side = sidecar_path(self.root, sample_id(clip_name(Path(clip)), t))
        if not side.is_file():
            raise InputError(
                self.root, f"no pseudo-label sample for {clip} frame {t} (looked for {side.name})"
            )
        data = json.loads(side.read_text(encoding="utf-8"))
        return data.get("entry")  # None: skipped (no hand could be fitted)

    def maps(self, image: np.ndarray, hands: Sequence[Hand], context: FrameContext) -> dict:
        """The sample's responsibility re-ordered to ``hands`` ``(K+1, H, W)`` and its person mask."""
        h, w = image.shape[:2]
        r = np.zeros((len(hands) + 1, h, w), np.float32)
        r[0] = 1
        entry = self._entry(context.clip.path, context.t)
        if entry is None:
            return {"responsibility": r, "person": np.zeros((h, w), np.uint8)}
        resp, person, _ = read_sample(self.root / entry["sample"])
        if resp.shape[1:] != (h, w):
            raise InputError(
                self.root / entry["sample"],
                f"sample is {resp.shape[2]}x{resp.shape[1]} but the labeled frame is {w}x{h}",
            )
        resp, person = stop_at_wrist(resp, person, wrist_points(entry["hands"]))  # as training reads it
        ids = [hd["id"] for hd in entry["hands"]]
        sides = [hd.get("side") for hd in entry["hands"]]
        r[0] = resp[0]
        for k, hd in enumerate(hands):
            j = ids.index(hd.id) if hd.id in ids else (sides.index(hd.side) if hd.side in sides else None)
            if j is not None:
                r[k + 1] = resp[j + 1]
        return {"responsibility": r, "person": person}

    masks = ResponsibilityBaseline.masks


@dataclass
class FlowBaseline:
    """Flow [C]: flow magnitude (relative to the camera for ``background="homography"``) > tau is All.

    Attributes:
        flow: flow source ``(context, s) -> (2, H, W)``.
        offsets: frame offsets whose per-frame motion (magnitude / |k|) is averaged.
        background: ``"static"`` (plain magnitude) or ``"homography"`` (residual to a camera homography).
    """

    flow: FlowSource
    offsets: Sequence[int] = FLOW_OFFSETS
    background: str = "static"
    name = "flow"
    grid = FLOW_GRID

    def maps(self, image: np.ndarray, hands: Sequence[Hand], context: FrameContext) -> dict:
        """Motion magnitude ``(H, W)``, the hands' points (+ queries) and the person mask."""
        h, w = image.shape[:2]
        ks = available_offsets(self.offsets, context.t, context.n_frames)
        pts = _hand_points(hands)
        motion = np.zeros((h, w), np.float32)
        for k in ks:
            flow = self.flow(context, context.t + k)
            camera = None
            if self.background == "homography":
                from cohesiv.responsibility import hull_mask
                from cohesiv.responsibility.maps import fit_camera_homography

                camera, _ = fit_camera_homography(flow, exclude=hull_mask(pts, (w, h)))
            motion += motion_magnitude(flow, camera) / abs(k)
        if ks:
            motion /= len(ks)
        seeds = [
            np.concatenate([p, np.asarray([hd.query], np.float32)]) if hd.query is not None else p
            for p, hd in zip(pts, hands)
        ]
        return {"motion": motion, "seeds": seeds, "person": _person(hands, (w, h))}

    def masks(self, maps: dict, threshold: float) -> HOSPrediction:
        """Threshold the maps (cheap)."""
        return flow_baseline_masks(maps["motion"], maps["seeds"], maps["person"], threshold)


# ----------------------------------------------------------------------------- fitting and evaluation


@dataclass
class ThresholdFit:
    """Result of :func:`fit_threshold`.

    Attributes:
        threshold: the threshold with the best All mIoU on the validation clips.
        grid: the thresholds tried.
        all_miou: All mIoU (percent) at each threshold of ``grid``.
        n_images: validation images scored.
    """

    threshold: float
    grid: list[float]
    all_miou: list[float]
    n_images: int


def fit_threshold(
    baseline: Any,
    clips: Sequence[str | Path],
    grid: Sequence[float] | None = None,
    *,
    progress: bool = True,
) -> ThresholdFit:
    """Grid-search the threshold that maximises All mIoU on validation clips.

    Each validation image's maps are computed once and thresholded at every grid value.

    Args:
        baseline: a :class:`ResponsibilityBaseline` or :class:`FlowBaseline`.
        clips: labeled validation clip folders.
        grid: thresholds to try (default: ``baseline.grid``).
        progress: progress bar on stderr.

    Returns:
        A :class:`ThresholdFit` (ties go to the smallest threshold).

    Raises:
        CohesivError: no labeled frame in ``clips``.
    """
    grid = sorted(float(v) for v in (baseline.grid if grid is None else grid))
    if not grid:
        raise ValueError("threshold grid is empty")
    stats: list[list[np.ndarray]] = [[] for _ in grid]
    n = 0
    for fr in iter_scored_frames(clips, progress=progress, desc=f"fit {baseline.name} threshold"):
        maps = baseline.maps(fr.image, fr.hands, fr.context)
        gt = all_gt(fr.label)
        for i, tau in enumerate(grid):
            pred = baseline.masks(maps, tau)
            am = pred.all_mask
            if am is None:
                am = (np.asarray(pred.hand_masks) | np.asarray(pred.object_masks)).any(0)
            stats[i].append(mask_stats(am, gt))
        n += 1
    miou = [reduce_stats(np.stack(s))["mIoU"] if s else float("nan") for s in stats]
    best = int(np.nanargmax(miou)) if n else 0
    return ThresholdFit(threshold=grid[best], grid=grid, all_miou=miou, n_images=n)


def evaluate_baseline(
    baseline: Any, clips: Sequence[str | Path], threshold: float, *, progress: bool = True
) -> dict:
    """Score a baseline at ``threshold`` on every labeled frame of ``clips``; return the metrics dict."""
    from cohesiv.eval.driver import score_frame

    meter = HOSMeter()
    for fr in iter_scored_frames(clips, progress=progress, desc=f"eval {baseline.name}"):
        score_frame(meter, fr, baseline.masks(baseline.maps(fr.image, fr.hands, fr.context), threshold))
    return meter.result()
