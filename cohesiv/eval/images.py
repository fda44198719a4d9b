"""Scoring on single labeled images (real photos), with the hull of the hand points as the floor.

An **image set** is a folder with ``images/`` and either

* ``labels/``: EgoHOS label PNGs (0 background, 1/2 left/right hand, 3/4/5 held objects), scored on
  the Hand / Obj / Pair / All tasks as labeled clips are (:mod:`cohesiv.eval.metrics`); or
* ``masks/``: binary hand masks (any non-zero pixel is hand), scored on **All-hands**: the IoU of
  the union of the predicted hand masks with the mask.

A label or mask is matched to its image by file stem. The hands of each image come from the hand
detector (MediaPipe, one image at a time) or from a hands file (:func:`hands_for_images`); every
method is queried with the same hands, and the report always gives, beside the model, the
**hull floor**: each hand's mask taken as the dilated convex hull of its points
(:func:`cohesiv.responsibility.masks.hull_mask`, the rule of the pseudo-labels' person mask) and no
object. A model that does not beat the hull has learned nothing beyond its input. A second
points-only baseline, **grabcut**, cuts each hand out of the image by GrabCut seeded by its points
(:func:`cohesiv.responsibility.masks.grabcut_hand_mask`, the pseudo-labels' ``--person-rule
grabcut``): what colour alone adds to the points, with no learning. With a run, the
model is scored as the network reads it out (``"model"``) and, by default, with each hand mask kept
inside the hand's support (``"model+support"``, :mod:`cohesiv.model.support`: the same dilated hull,
cut at the wrist for 21 keypoints), since real-image hand labels stop at the wrist while the motion
the network learned from does not, and, with ``support="grabcut"`` (the default), with that mask
refined by GrabCut on the image (``"model+grabcut"``, :func:`cohesiv.model.support.refine_with_grabcut`):
compare it with the points-only ``"grabcut"`` row to see what the network adds to the colours.

A queried hand is scored against the ground-truth hand under (or nearest to) its query point: the
detector's side is not trusted for scoring. Detections are also counted against the ground-truth
hand regions (connected components of each hand label, or of the binary mask, of at least
:data:`MIN_REGION_FRACTION` of the image): a region is *found* when a detection's hull overlaps it
more than any other region, a detection that overlaps no region is *false*, a region no detection
overlaps is *missed*. Two touching hands form one region in a binary mask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from cohesiv.config import EVAL_IMAGE_SUPPORT, SUPPORTS
from cohesiv.errors import InputError
from cohesiv.eval.driver import HOSPrediction, PredictionLike
from cohesiv.eval.metrics import HOSMeter, instance_scores, mask_stats, reduce_stats
from cohesiv.io import Hand, HandTracks, read_image, read_label, task_labels
from cohesiv.io.images import IMAGE_SUFFIXES, open_image
from cohesiv.io.labels import HAND_LABEL
from cohesiv.responsibility.masks import HULL_DILATION, hull_mask

#: Ground-truth hand regions smaller than this fraction of the image are not counted as hands
#: (specks of a mask), but their pixels are still scored.
MIN_REGION_FRACTION = 0.0005

#: A predict function: ``(image (H, W, 3) uint8, hands) -> prediction`` with per-hand
#: ``hand_masks`` / ``object_masks`` ``(K, H, W)`` {0, 1}.
ImagePredictFn = Callable[[np.ndarray, list[Hand]], PredictionLike]


@dataclass(frozen=True)
class LabeledImage:
    """One image of an image set and its ground truth.

    Attributes:
        image: the image file.
        truth: the EgoHOS label PNG or the binary mask.
    """

    image: Path
    truth: Path

    @property
    def name(self) -> str:
        """The file stem that pairs the image with its ground truth."""
        return self.image.stem


@dataclass(frozen=True)
class ImageSet:
    """A folder of real images with EgoHOS labels or binary hand masks.

    Attributes:
        path: the folder.
        kind: ``"egohos"`` (``labels/``) or ``"binary"`` (``masks/``).
        items: the labeled images, sorted by name.
    """

    path: Path
    kind: str
    items: tuple[LabeledImage, ...]

    def read_truth(self, item: LabeledImage, size: tuple[int, int]) -> np.ndarray:
        """Ground truth ``(H, W)`` uint8: EgoHOS labels (6-8 as background), or a {0, 1} hand mask.

        Raises:
            InputError: unreadable file, or its size differs from the image's ``(W, H)``.
        """
        if self.kind == "egohos":
            truth = task_labels(read_label(item.truth))
        else:
            truth = (np.asarray(open_image(item.truth).convert("L")) > 0).astype(np.uint8)
        if truth.shape[::-1] != tuple(size):
            raise InputError(
                item.truth, f"is {truth.shape[1]}x{truth.shape[0]} but its image is {size[0]}x{size[1]}"
            )
        return truth


def open_image_set(path: str | Path) -> ImageSet:
    """Open an image set folder (``images/`` plus ``labels/`` or ``masks/``).

    Raises:
        InputError: not a folder, neither ``labels/`` nor ``masks/`` (or both), or an image without
            ground truth or the reverse.
    """
    path = Path(path)
    images_dir = path / "images"
    if not path.is_dir() or not images_dir.is_dir():
        raise InputError(path, "not an image set (expected images/ plus labels/ or masks/)")
    kinds = [(k, path / d) for k, d in (("egohos", "labels"), ("binary", "masks")) if (path / d).is_dir()]
    if len(kinds) != 1:
        what = "both labels/ and masks/" if kinds else "neither labels/ (EgoHOS) nor masks/ (binary)"
        raise InputError(path, f"image set has {what}; give exactly one")
    kind, truth_dir = kinds[0]

    def files(folder: Path) -> dict[str, Path]:
        return {
            p.stem: p
            for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        }

    images, truths = files(images_dir), files(truth_dir)
    if not images:
        raise InputError(images_dir, "no images")
    missing = sorted(set(images) - set(truths))
    if missing:
        raise InputError(truth_dir, f"no ground truth for {len(missing)} image(s), e.g. {missing[:3]}")
    extra = sorted(set(truths) - set(images))
    if extra:
        raise InputError(truth_dir, f"ground truth without an image: {extra[:3]}")
    items = tuple(LabeledImage(images[s], truths[s]) for s in sorted(images))
    return ImageSet(path=path, kind=kind, items=items)


def hands_for_images(
    tracks: HandTracks, image_set: ImageSet, source: str | Path = "hands file"
) -> list[list[Hand]]:
    """The hands of each image of a set from a hands file whose frame ``t`` is the t-th image by name.

    Raises:
        InputError: the file lists a frame beyond the images.
    """
    n = len(image_set.items)
    beyond = [t for t in tracks.frames if not 0 <= int(t) < n]
    if beyond:
        raise InputError(source, f"hands file has frame {beyond[0]} but the image set has {n} images")
    return [list(tracks.hands_at(t)) for t in range(n)]


def hull_prediction(
    hands: Sequence[Hand], size: tuple[int, int], dilation: float = HULL_DILATION
) -> HOSPrediction:
    """The floor: each hand's mask is the dilated convex hull of its points; no object.

    Args:
        hands: the queried hands (a hand without points gets an empty mask).
        size: ``(W, H)``.
        dilation: see :func:`cohesiv.responsibility.masks.hull_mask` (default: the pseudo-labels' own).
    """
    w, h = size
    hm = (
        np.stack([hull_mask([hd.points], size, dilation=dilation) for hd in hands])
        if hands
        else np.zeros((0, h, w), np.uint8)
    )
    return HOSPrediction(hm, np.zeros_like(hm))


def grabcut_prediction(image: np.ndarray, hands: Sequence[Hand]) -> HOSPrediction:
    """Points-only baseline: each hand cut out of the image by GrabCut seeded by its points; no object.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        hands: the queried hands (a hand without points gets an empty mask).
    """
    from cohesiv.responsibility.masks import grabcut_hand_mask

    h, w = image.shape[:2]
    hm = np.zeros((len(hands), h, w), np.uint8)
    for k, hd in enumerate(hands):
        hm[k] = grabcut_hand_mask(image, hd.points)
    return HOSPrediction(hm, np.zeros_like(hm))


def hand_regions(truth: np.ndarray, kind: str) -> list[np.ndarray]:
    """Ground-truth hand regions: connected components of each hand label (or of the binary mask).

    Args:
        truth: ``(H, W)`` EgoHOS labels or {0, 1} mask.
        kind: ``"egohos"`` or ``"binary"``.

    Returns:
        ``(H, W)`` bool masks of the regions of at least :data:`MIN_REGION_FRACTION` of the image.
    """
    layers = [truth == v for v in HAND_LABEL.values()] if kind == "egohos" else [truth != 0]
    min_area = MIN_REGION_FRACTION * truth.size
    out = []
    for layer in layers:
        n, comp, stats, _ = cv2.connectedComponentsWithStats(layer.astype(np.uint8), connectivity=8)
        out.extend(comp == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area)
    return out


def match_detections(hull_masks: np.ndarray, regions: Sequence[np.ndarray]) -> dict[str, int]:
    """Count found / missed ground-truth hand regions and false detections.

    Args:
        hull_masks: ``(K, H, W)`` {0, 1}, each detection's dilated hull.
        regions: ground-truth hand regions (:func:`hand_regions`).

    Returns:
        ``{"gt_hands", "detected", "found", "missed", "false"}``.
    """
    found = np.zeros(len(regions), bool)
    false = 0
    for hm in np.asarray(hull_masks, bool):
        overlaps = [int((hm & r).sum()) for r in regions]
        if not overlaps or max(overlaps) == 0:
            false += 1
        else:
            found[int(np.argmax(overlaps))] = True
    return {
        "gt_hands": len(regions),
        "detected": len(hull_masks),
        "found": int(found.sum()),
        "missed": int((~found).sum()),
        "false": false,
    }


def _iou_percent(stats: np.ndarray) -> float:
    """IoU in percent of one ``(tp, fp, fn)`` row (:func:`cohesiv.eval.metrics.instance_scores`)."""
    return 100.0 * float(instance_scores(stats)["IoU"][0])


@dataclass
class _BinaryMeter:
    """All-hands IoU on binary hand masks: union of the predicted hand masks vs the mask."""

    rows: list

    def add(self, truth: np.ndarray, prediction: PredictionLike) -> float:
        hm = np.asarray(prediction.hand_masks, bool)
        union = hm.any(0) if len(hm) else np.zeros(truth.shape, bool)
        stats = mask_stats(union, truth != 0)
        self.rows.append(stats)
        return _iou_percent(stats)

    def result(self) -> dict:
        return {
            "All-hands": reduce_stats(np.stack(self.rows)) if self.rows else {},
            "n_images": len(self.rows),
        }


@dataclass
class ImageResult:
    """What :func:`iter_image_predictions` yields per image (for pictures and per-image tables)."""

    item: LabeledImage
    kind: str
    image: np.ndarray
    truth: np.ndarray
    hands: list[Hand]
    predictions: dict[str, PredictionLike]
    scores: dict[str, float]


def iter_image_predictions(
    image_set: ImageSet,
    methods: Mapping[str, ImagePredictFn],
    hands: Callable[[int, np.ndarray], list[Hand]],
    meters: dict[str, Any],
    counts: dict[str, int],
    *,
    progress: bool = True,
) -> Iterator[ImageResult]:
    """Predict every image with every method, add the results to ``meters`` and ``counts``.

    Args:
        image_set: the labeled images.
        methods: name -> predict function (all get the same hands).
        hands: ``(index, image) -> hands`` of each image.
        meters: filled with one meter per method (HOSMeter for EgoHOS labels, else All-hands IoU).
        counts: filled with the detection counts summed over images (:func:`match_detections`).
        progress: tqdm bar on stderr.
    """
    for name in methods:
        meters[name] = HOSMeter() if image_set.kind == "egohos" else _BinaryMeter([])
    for key in ("gt_hands", "detected", "found", "missed", "false"):
        counts.setdefault(key, 0)
    items = image_set.items
    for i, item in enumerate(
        tqdm(items, desc="eval images", disable=None if progress else True, leave=False)
    ):
        image = read_image(item.image)
        size = (image.shape[1], image.shape[0])
        truth = image_set.read_truth(item, size)
        hs = hands(i, image)
        hull = hull_prediction(hs, size)
        for key, v in match_detections(hull.hand_masks, hand_regions(truth, image_set.kind)).items():
            counts[key] += v
        preds: dict[str, PredictionLike] = {}
        scores: dict[str, float] = {}
        for name, fn in methods.items():
            pred = hull if fn is hull_prediction else fn(image, hs)
            preds[name] = pred
            if image_set.kind == "egohos":
                st = meters[name].add(
                    truth,
                    [None] * len(hs),  # scored as the GT hand under the query, not the detector's side
                    [hd.query for hd in hs],
                    np.asarray(pred.hand_masks),
                    np.asarray(pred.object_masks),
                    getattr(pred, "all_mask", None),
                )
                scores[name] = _iou_percent(st.all)
            else:
                scores[name] = meters[name].add(truth, pred)
        yield ImageResult(item, image_set.kind, image, truth, hs, preds, scores)


def evaluate_image_set(
    path: str | Path,
    methods: Mapping[str, ImagePredictFn],
    hands: Callable[[int, np.ndarray], list[Hand]],
    *,
    progress: bool = True,
    on_image: Callable[[ImageResult], None] | None = None,
) -> dict:
    """Score each method on an image set; the hull floor (``"hull"``) and ``"grabcut"`` are always added.

    Args:
        path: the image set folder (see the module docstring).
        methods: name -> ``(image, hands) -> prediction``.
        hands: ``(index, image) -> hands`` of each image (detector or hands file).
        progress: tqdm bar on stderr.
        on_image: called with every :class:`ImageResult` (e.g. to write overlays).

    Returns:
        ``{"kind", "n_images", "detection": counts, "methods": {name: metrics}, "per_image": [...]}``;
        EgoHOS sets give each method the ``metrics.json`` dictionary (All/Pair/Hand/Obj), binary sets
        ``{"All-hands": {"mIoU", "IoU", ...}}``, in percent.
    """
    image_set = open_image_set(path)
    methods = {**methods, "hull": hull_prediction, "grabcut": grabcut_prediction}
    meters: dict[str, Any] = {}
    counts: dict[str, int] = {}
    per_image = []
    for res in iter_image_predictions(image_set, methods, hands, meters, counts, progress=progress):
        per_image.append({"image": res.item.name, "hands": len(res.hands), **res.scores})
        if on_image is not None:
            on_image(res)
    return {
        "kind": image_set.kind,
        "n_images": len(image_set.items),
        "detection": counts,
        "methods": {name: m.result() for name, m in meters.items()},
        "per_image": per_image,
    }


def format_image_table(result: dict, title: str | None = None) -> str:
    """A plain-text table of :func:`evaluate_image_set`'s result (mIoU %, one row per method)."""
    lines = [title] if title else []
    d = result["detection"]
    lines.append(
        f"{result['n_images']} images ({result['kind']}): {d['gt_hands']} ground-truth hands, "
        f"{d['detected']} detected: {d['found']} found, {d['missed']} missed, {d['false']} false"
    )
    tasks = ["All", "Pair", "Hand", "Obj"] if result["kind"] == "egohos" else ["All-hands"]
    lines.append(f"{'method':<14}" + "".join(f"{t:>11}" for t in tasks))
    for name, m in result["methods"].items():
        cells = "".join(f"{m.get(t, {}).get('mIoU', float('nan')):>11.1f}" for t in tasks)
        lines.append(f"{name:<14}{cells}")
    lines.append(
        "mIoU %, mean over " + ("queried hands (images for All)" if result["kind"] == "egohos" else "images")
    )
    return "\n".join(lines)


#: Longest side of the pictures written by :func:`image_panel`.
PANEL_SIDE = 480


def image_panel(res: ImageResult) -> np.ndarray:
    """One picture per image: ground truth, then each method's prediction, with the hand points.

    Ground truth and predictions are drawn in the EgoHOS colours (:func:`cohesiv.viz.label_overlay`);
    a binary mask is drawn as hands. Each tile is captioned with the method's score on the image.

    Returns:
        ``(H', W', 3)`` uint8 RGB, tiles scaled so that their longest side is :data:`PANEL_SIDE`.
    """
    from cohesiv.io.labels import RIGHT_HAND, compose_label
    from cohesiv.viz import caption, draw_points, label_overlay, tile

    h, w = res.image.shape[:2]
    scale = min(1.0, PANEL_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))

    def small(img: np.ndarray) -> np.ndarray:
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA) if scale < 1 else img

    truth = res.truth if res.kind == "egohos" else (res.truth != 0).astype(np.uint8) * RIGHT_HAND
    gt = label_overlay(res.image, truth)
    for hd in res.hands:
        gt = draw_points(gt, hd.points, radius=max(2, round(2 / max(scale, 1e-6) ** 0.5)))
    tiles = [caption(small(gt), f"{res.item.name}: ground truth, hands: {len(res.hands)}")]
    sides = [hd.side or "right" for hd in res.hands]
    queries = [hd.query for hd in res.hands]
    for name, pred in res.predictions.items():
        hm, om = np.asarray(pred.hand_masks), np.asarray(pred.object_masks)
        label = compose_label(hm, om, sides) if len(hm) else np.zeros((h, w), np.uint8)
        tiles.append(
            caption(small(label_overlay(res.image, label, queries, sides)), f"{name}: {res.scores[name]:.1f}")
        )
    return tile(tiles, cols=len(tiles))


def run_image_eval(
    images: str | Path,
    *,
    run: str | Path | None = None,
    hands_file: str | Path | None = None,
    device: str | None = None,
    viz: str | Path | None = None,
    window: float | None = None,
    support: str = EVAL_IMAGE_SUPPORT,
    progress: bool = True,
) -> dict:
    """Score a trained run (if given) and the hull floor on an image set.

    Args:
        images: the image set folder (``images/`` plus ``labels/`` or ``masks/``).
        run: a trained run folder (:meth:`cohesiv.model.Predictor.from_run`), or None for the floor only.
        hands_file: a hands file whose frame t holds the hands of the t-th image (by name); None runs
            MediaPipe's hand landmarker on each image (IMAGE mode).
        device: torch device of the model.
        viz: folder for one picture per image (:func:`image_panel`), or None.
        window: predict each hand in a window of this many times its size around its points
            (:func:`cohesiv.model.windows.predict_in_hand_windows`); 0 for the whole image; None for
            :data:`cohesiv.model.windows.DEFAULT_WINDOW_FACTOR`.
        support: ``"points"`` also scores ``"model+support"``: the model's hand masks kept inside
            each hand's support (:func:`cohesiv.model.support.restrict_to_support`: the dilated hull,
            and the fingers' side of the wrist); ``"grabcut"`` scores that and ``"model+grabcut"``,
            the supported masks refined by GrabCut (:func:`cohesiv.model.support.refine_with_grabcut`);
            ``"none"`` scores the network's read-out alone.
        progress: tqdm bar on stderr.

    Returns:
        :func:`evaluate_image_set`'s dictionary, with ``"hands"`` saying where the hands came from,
        ``"window"`` the window factor (0: whole image) and ``"support"``.
    """
    from contextlib import ExitStack

    from cohesiv.io import read_hands, write_image

    image_set = open_image_set(images)
    methods: dict[str, ImagePredictFn] = {}
    if run is not None:
        from cohesiv.eval.runner import model_predict_fn
        from cohesiv.model import Predictor
        from cohesiv.model.windows import DEFAULT_WINDOW_FACTOR, predict_in_hand_windows

        window = DEFAULT_WINDOW_FACTOR if window is None else float(window)
        predictor = Predictor.from_run(run, device=device)
        if window > 0:
            methods["model"] = lambda image, hands: predict_in_hand_windows(predictor, image, hands, window)
        else:
            model_fn = model_predict_fn(predictor)
            methods["model"] = lambda image, hands: model_fn(image, hands, None)
        if support not in SUPPORTS:
            raise ValueError(f"support must be one of {', '.join(SUPPORTS)}, got {support!r}")
        if support != "none":
            plain, supported, refined = _model_and_support(methods["model"])
            methods.update(model=plain, **{"model+support": supported})
            if support == "grabcut":
                methods["model+grabcut"] = refined
    with ExitStack() as stack:
        if hands_file is not None:
            per_image = hands_for_images(read_hands(hands_file), image_set, hands_file)
            source = str(hands_file)

            def hands(i: int, image: np.ndarray) -> list[Hand]:
                return per_image[i]
        else:
            from cohesiv.hands import HandDetector

            detector = stack.enter_context(HandDetector(video=False))
            source = "MediaPipe hand landmarker (IMAGE mode)"

            def hands(i: int, image: np.ndarray) -> list[Hand]:
                return detector.detect(image)

        def write_panel(res: ImageResult) -> None:
            if viz is not None:
                write_image(Path(viz) / f"{res.item.name}.png", image_panel(res))

        out = evaluate_image_set(image_set.path, methods, hands, progress=progress, on_image=write_panel)
    out["hands"] = source
    out["window"] = window if run is not None else None
    out["support"] = support if run is not None else None
    return out


def _model_and_support(
    predict: ImagePredictFn,
) -> tuple[ImagePredictFn, ImagePredictFn, ImagePredictFn]:
    """``predict``, the same with its hand masks kept inside the hands' supports, and refined by GrabCut.

    The second and third reuse the first's prediction of the same image and hands (held, so the
    identity test cannot match a new object), so the network runs once per image.
    """
    from cohesiv.model.support import apply_support

    last: dict[str, Any] = {}

    def plain(image: np.ndarray, hands: list[Hand]) -> PredictionLike:
        last.update(image=image, hands=hands, pred=predict(image, hands))
        return last["pred"]

    def under(support: str) -> ImagePredictFn:
        def fn(image: np.ndarray, hands: list[Hand]) -> PredictionLike:
            if last.get("image") is not image or last.get("hands") is not hands:
                plain(image, hands)
            return apply_support(last["pred"], hands, support, image)

        return fn

    return plain, under("points"), under("grabcut")


#: The real image sets with masks that the project's data folder holds (see its SOURCE.txt files).
KNOWN_IMAGE_SETS = ("real-hand-masks-hof", "hands23-demo-silver")


def find_image_sets(data: str | Path | None = None) -> list[Path]:
    """The known real image sets present in a data folder.

    Args:
        data: the folder; default ``$COHESIV_DATA``, else ``shared/data`` beside the source checkout.

    Returns:
        The folders of :data:`KNOWN_IMAGE_SETS` found there (possibly none).
    """
    import os

    if data is None:
        env = os.environ.get("COHESIV_DATA")
        data = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    return [Path(data) / name for name in KNOWN_IMAGE_SETS if (Path(data) / name / "images").is_dir()]
