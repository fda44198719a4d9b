"""Calibration of a trained run: person/object prototypes and the read-out thresholds tau_h, tau_o, tau_r.

An evaluation-time fit (its old path ``cohesiv.train.calibrate`` still imports, for one release).

* **Prototypes** (COHESIV section 3.2): the mean of L2-normalised embeddings Z sampled at
  ``samples`` (500 in the paper) pixels drawn uniformly from all person pixels, and as many from all
  object pixels, of pseudo-label samples (object = some hand responsibility above the run's
  ``object_threshold``, minus person; only ``valid`` pixels).
* **Thresholds**: grid search on labeled validation clips (``frames/``, ``labels/``, ``hands.json``;
  only labeled frames) maximising the Pair (or All) mIoU (among triples within half a point of the
  best, the mean mIoU of the four tasks decides) of the read-out of
  :class:`cohesiv.model.readout.Readout` (the same ``apply`` that prediction calls):
  ``hand_k = S_k > tau_r AND cos(Z, z_person) > tau_h``,
  ``object_k = S_k > tau_r AND cos(Z, z_object) > tau_o AND NOT hand_k``.
  Z and S are computed once per image; every threshold triple is scored at once from 3-D histograms
  of the quantised maps (:func:`readout_counts`), so the search costs one pass over the pixels per image
  plus ``O(G_h G_o G_r)``.
* **Hand growing** (beyond [C]): with those thresholds fixed, ``tau_g`` of
  :func:`cohesiv.model.predictor.grow_hands` is chosen on the same frames (:func:`search_growth`) and
  kept only when it raises the objective by at least half a point.
* **Object opening** (beyond [C]): then ``open_o``, the radius (a fraction of the image's longer
  side) of :func:`cohesiv.model.predictor.open_objects`, is chosen the same way
  (:func:`search_opening`); it removes the thin object rims around hands that hold nothing.

* **Held objects** (beyond [C], ``held=True``): last, the logistic held-object model of
  :mod:`cohesiv.model.held` is fitted on the validation hands and its probability threshold chosen
  like the others (:func:`search_held`); hands below it hold nothing and lose their object mask.
  The report (``held_object_fit``) gives the false-object rate and Obj recall before and after.

* **Test-time flip** (beyond [C], ``flip=True``): every size is also calibrated with the mirrored
  image's maps averaged in (:class:`cohesiv.model.Predictor` ``flip``); kept when its objective beats
  the plain read-out's by at least :data:`FLIP_MIN_GAIN` points.

The result goes to ``RUN/calibration.json`` (through :func:`cohesiv.model.io.write_calibration`):
``{"prototypes": {"person", "object"}, "thresholds": {"tau_h", "tau_o", "tau_r"}, "val_metrics": ...,
"objective", "grid", "samples", ...}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cohesiv.config import CALIBRATION_OBJECTIVES as OBJECTIVES
from cohesiv.config import CALIBRATION_TOLERANCE as TOLERANCE
from cohesiv.config import CalibrationOptions
from cohesiv.errors import CohesivError
from cohesiv.model.readout import THRESHOLD_NAMES, Readout
from cohesiv.train.data import PseudoLabelDataset

#: Default threshold grids: cosine similarities for tau_h / tau_o, scores in [0, 1] for tau_r.
GRID_H = tuple(np.round(np.arange(-0.5, 0.951, 0.05), 3).tolist())
GRID_O = GRID_H
GRID_R = tuple(np.round(np.arange(0.05, 0.951, 0.05), 3).tolist())
#: Candidate hand-growing thresholds tau_g (cosine similarity to the person prototype).
GRID_G = tuple(np.round(np.arange(0.3, 0.951, 0.05), 3).tolist())
#: Candidate object-opening radii open_o (fractions of the image's longer side: 1-10 pixels at 256).
GRID_OPEN = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04)
#: Candidate held-object probability thresholds (0: no hand is said to hold nothing).
GRID_HELD = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: The test-time flip is kept only when it raises the validation objective by this many mIoU points.
FLIP_MIN_GAIN = 0.5
#: The defaults of the calibration's options (written on :class:`cohesiv.config.CalibrationOptions`).
_OPTIONS = CalibrationOptions()


# ------------------------------------------------------------------------------------------ prototypes


def object_from_pseudolabel(
    responsibility: np.ndarray, person: np.ndarray, threshold: float = 0.5
) -> np.ndarray:
    """Object mask of a pseudo-label: ``max_k R_k > threshold`` (hand channels) and not person.

    Args:
        responsibility: ``(N+1, H, W)``, channel 0 background.
        person: ``(H, W)`` {0, 1}.
        threshold: responsibility threshold.

    Returns:
        ``(H, W)`` bool.
    """
    if responsibility.shape[0] < 2:
        return np.zeros(person.shape, bool)
    return (responsibility[1:].max(0) > threshold) & (person == 0)


def _masks(ds: PseudoLabelDataset, i: int, object_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    s = ds.load(i)
    valid = s.valid > 0
    person = (s.person > 0) & valid
    obj = object_from_pseudolabel(s.responsibility, s.person, object_threshold) & valid
    return person, obj


def sample_prototypes(
    predictor: Any,
    ds: PseudoLabelDataset,
    *,
    samples: int = 500,
    object_threshold: float = 0.5,
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Mean L2-normalised embedding of ``samples`` random person pixels and ``samples`` object pixels.

    Pixels are drawn uniformly without replacement from all person (object) pixels of all samples
    (all of them when there are fewer); the network runs only on the images that hold a drawn pixel.

    Args:
        predictor: a :class:`cohesiv.model.Predictor` (its ``features(image)`` gives Z ``(F, H, W)``).
        ds: pseudo-label samples.
        samples: pixels per class (500 in the paper).
        object_threshold: see :func:`object_from_pseudolabel`.
        seed: seeds the draw.
        progress: tqdm bars on stderr.

    Returns:
        ``({"person": (F,), "object": (F,)} float32 unit vectors, {"person": n, "object": n} pixels used)``.

    Raises:
        CohesivError: the samples hold no person or no object pixel.
    """
    from tqdm import tqdm

    counts = np.zeros((len(ds), 2), np.int64)
    for i in tqdm(range(len(ds)), desc="count mask pixels", disable=None if progress else True, leave=False):
        p, o = _masks(ds, i, object_threshold)
        counts[i] = p.sum(), o.sum()
    rng = np.random.default_rng([seed, 0x9807])
    picks: dict[int, list[np.ndarray]] = {}  # image -> [person pixel ranks, object pixel ranks]
    used = {}
    for c, name in enumerate(("person", "object")):
        total = int(counts[:, c].sum())
        if total == 0:
            raise CohesivError(f"{', '.join(map(str, ds.roots))}: the pseudo-labels hold no {name} pixel")
        n = min(samples, total)
        used[name] = n
        flat = np.sort(rng.choice(total, size=n, replace=False))
        starts = np.concatenate([[0], np.cumsum(counts[:, c])])
        img = np.searchsorted(starts, flat, side="right") - 1
        for i in np.unique(img):
            picks.setdefault(int(i), [np.zeros(0, np.int64), np.zeros(0, np.int64)])[c] = (
                flat[img == i] - starts[i]
            )
    sums = {}
    for i in tqdm(sorted(picks), desc="prototypes", disable=None if progress else True, leave=False):
        masks = _masks(ds, i, object_threshold)
        z = predictor.features(ds.load(i).image)  # (F, H, W)
        z = z / np.maximum(np.linalg.norm(z, axis=0, keepdims=True), 1e-12)
        for c, name in enumerate(("person", "object")):
            ranks = picks[i][c]
            if len(ranks):
                ys, xs = np.nonzero(masks[c])  # row-major order: the ranks index into it
                sums[name] = sums.get(name, 0.0) + z[:, ys[ranks], xs[ranks]].sum(1)
    protos = {}
    for name in ("person", "object"):
        m = np.asarray(sums[name], np.float64) / used[name]
        protos[name] = (m / max(np.linalg.norm(m), 1e-12)).astype(np.float32)
    return protos, used


# ------------------------------------------------------------------------------------------ thresholds


def _tails(
    idx: tuple[np.ndarray, np.ndarray, np.ndarray], sel: np.ndarray, shape: tuple[int, int, int]
) -> np.ndarray:
    """``T[i, j, l] = #(ia >= i, ib >= j, ic >= l)`` over the selected pixels, ``shape = (G_a+1, G_b+1, G_c+1)``."""
    ia, ib, ic = idx
    flat = (ia[sel] * shape[1] + ib[sel]) * shape[2] + ic[sel]
    h = np.bincount(flat, minlength=shape[0] * shape[1] * shape[2]).reshape(shape)
    for ax in range(3):
        h = np.flip(np.cumsum(np.flip(h, ax), ax), ax)
    return h


def readout_counts(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    gt: dict[str, np.ndarray],
    grid_a: Sequence[float],
    grid_b: Sequence[float],
    grid_c: Sequence[float],
) -> dict[str, np.ndarray]:
    """Count ``(tp, fp, fn)`` of the read-out masks for every threshold triple at once.

    With ``a`` the person similarity, ``b`` the object similarity and ``c`` the score, and
    thresholds ``(t_a, t_b, t_c) = (grid_a[i], grid_b[j], grid_c[l])``, the masks are those of
    :func:`cohesiv.model.predictor.readout`:

    * "hand": ``c > t_c AND a > t_a``;
    * "object": ``c > t_c AND b > t_b AND NOT a > t_a``;
    * "union" (hand OR object; Pair per hand with ``c = S_k``, All per image with ``c = max_k S_k``):
      ``c > t_c AND (a > t_a OR b > t_b)``.

    Each pixel is quantised once (the number of thresholds below it per grid); a 3-D histogram and its
    tail sums ``T[i, j, l] = #(a > grid_a[i-1], b > grid_b[j-1], c > grid_c[l-1])`` give every count
    by inclusion-exclusion.

    Args:
        a: person similarity per pixel, e.g. ``(H, W)``.
        b: object similarity, same shape.
        c: score, same shape.
        gt: ground truth per mask kind to count, e.g. ``{"union": (H, W) bool}``; keys among
            "hand", "object", "union".
        grid_a: strictly increasing thresholds of ``a``.
        grid_b: strictly increasing thresholds of ``b``.
        grid_c: strictly increasing thresholds of ``c``.

    Returns:
        For each key of ``gt``: ``(G_a, G_b, G_c, 3)`` int64 ``(tp, fp, fn)``.
    """
    ga, gb, gc = (np.asarray(g, np.float64) for g in (grid_a, grid_b, grid_c))
    if any(len(g) == 0 or np.any(np.diff(g) <= 0) for g in (ga, gb, gc)):
        raise ValueError("threshold grids must be non-empty and strictly increasing")
    shape = (len(ga) + 1, len(gb) + 1, len(gc) + 1)
    # number of thresholds strictly below each value: value > grid[i]  <=>  idx >= i + 1
    idx = tuple(
        np.searchsorted(g, np.asarray(v, np.float64).ravel(), side="left")
        for g, v in ((ga, a), (gb, b), (gc, c))
    )
    out = {}
    for kind, mask in gt.items():
        g = np.asarray(mask, bool).ravel()
        counts = []
        for sel in (g, ~g):
            t = _tails(idx, sel, shape)
            t_ac = t[1:, :1, 1:]  # #(a > t_a, c > t_c), broadcast over j
            t_bc = t[:1, 1:, 1:]  # #(b > t_b, c > t_c), broadcast over i
            t_abc = t[1:, 1:, 1:]
            if kind == "hand":
                n = np.broadcast_to(t_ac, t_abc.shape)
            elif kind == "object":
                n = t_bc - t_abc
            elif kind == "union":
                n = t_ac + t_bc - t_abc
            else:
                raise ValueError(f"unknown mask kind {kind!r}")
            counts.append(n)
        tp, fp = counts
        out[kind] = np.stack([tp, fp, int(g.sum()) - tp], -1).astype(np.int64)
    return out


def union_counts(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    gt: np.ndarray,
    grid_a: Sequence[float],
    grid_b: Sequence[float],
    grid_c: Sequence[float],
) -> np.ndarray:
    """``(tp, fp, fn)`` of ``c > t_c AND (a > t_a OR b > t_b)`` for every threshold triple (see :func:`readout_counts`)."""
    return readout_counts(a, b, c, {"union": gt}, grid_a, grid_b, grid_c)["union"]


def iou_of_counts(counts: np.ndarray) -> np.ndarray:
    """Per-entry IoU ``tp / (tp + fp + fn)`` of ``(..., 3)`` counts; 1 where prediction and truth are both empty."""
    tp, fp, fn = (counts[..., i].astype(np.float64) for i in range(3))
    den = tp + fp + fn
    return np.where(den > 0, tp / np.maximum(den, 1), 1.0)


@dataclass
class ValFrame:
    """The network's maps on one labeled validation frame (at the frame's size).

    Attributes:
        label: ``(H, W)`` EgoHOS labels (6-8 as background).
        scores: ``(K, H, W)`` S_k in [0, 1].
        person_sim: ``(H, W)`` cosine similarity to the person prototype.
        object_sim: ``(H, W)`` cosine similarity to the object prototype.
        sides: K sides as given by ``hands.json`` (None: resolved from the label by the metrics).
        queries: K query points ``(x, y)``.
    """

    label: np.ndarray
    scores: np.ndarray
    person_sim: np.ndarray
    object_sim: np.ndarray
    sides: list[str | None]
    queries: list[tuple[float, float]]


def collect_val_frames(
    predictor: Any, clips: Sequence[str | Path], *, progress: bool = True
) -> list[ValFrame]:
    """Run the predictor once on every labeled frame of ``clips`` and keep its maps.

    Args:
        predictor: a :class:`cohesiv.model.Predictor` with prototypes.
        clips: labeled clip folders.
        progress: tqdm bar on stderr.

    Returns:
        One :class:`ValFrame` per labeled frame.
    """
    from cohesiv.eval.driver import iter_scored_frames

    out = []
    for fr in iter_scored_frames(clips, progress=progress, desc="calibrate"):
        queries = [tuple(map(float, h.query)) for h in fr.hands]
        pred = predictor.predict(fr.image, queries, [h.side for h in fr.hands])
        out.append(
            ValFrame(
                label=fr.label,
                scores=pred.scores.astype(np.float32),
                person_sim=pred.person_sim.astype(np.float32),
                object_sim=pred.object_sim.astype(np.float32),
                sides=[h.side for h in fr.hands],
                queries=queries,
            )
        )
    return out


def miou_grids(
    frames: Sequence[ValFrame],
    grid_h: Sequence[float] = GRID_H,
    grid_o: Sequence[float] = GRID_O,
    grid_r: Sequence[float] = GRID_R,
) -> dict[str, np.ndarray]:
    """Mean IoU (percent) of the All, Pair, Hand and Obj tasks for every threshold triple.

    Instances as in :func:`cohesiv.eval.summarize`: All one per image, Pair and Hand one per queried
    hand, Obj one per queried hand that holds an object in the label.

    Args:
        frames: validation maps (:func:`collect_val_frames`).
        grid_h: thresholds tau_h (strictly increasing).
        grid_o: thresholds tau_o (strictly increasing).
        grid_r: thresholds tau_r (strictly increasing).

    Returns:
        ``{"All", "Pair", "Hand", "Obj"}`` -> ``(G_h, G_o, G_r)`` float64 mIoU in percent (NaN for a
        task without instances).
    """
    from cohesiv.eval.metrics import all_gt, hand_object_gt, resolve_side

    shape = (len(grid_h), len(grid_o), len(grid_r))
    acc = {t: np.zeros(shape) for t in ("All", "Pair", "Hand", "Obj")}
    n = dict.fromkeys(acc, 0)
    grids = (grid_h, grid_o, grid_r)
    for f in frames:
        k = len(f.scores)
        c = f.scores.max(0) if k else np.zeros_like(f.person_sim)
        counts = readout_counts(f.person_sim, f.object_sim, c, {"union": all_gt(f.label)}, *grids)
        acc["All"] += iou_of_counts(counts["union"])
        n["All"] += 1
        for i in range(k):
            hand, obj = hand_object_gt(f.label, resolve_side(f.label, f.sides[i], f.queries[i]))
            gts = {"union": hand | obj, "hand": hand}
            if obj.any():
                gts["object"] = obj
            counts = readout_counts(f.person_sim, f.object_sim, f.scores[i], gts, *grids)
            for task, kind in (("Pair", "union"), ("Hand", "hand"), ("Obj", "object")):
                if kind in counts:
                    acc[task] += iou_of_counts(counts[kind])
                    n[task] += 1
    return {t: 100.0 * acc[t] / n[t] if n[t] else np.full(shape, np.nan) for t in acc}


def miou_grid(
    frames: Sequence[ValFrame],
    objective: str = _OPTIONS.objective,
    grid_h: Sequence[float] = GRID_H,
    grid_o: Sequence[float] = GRID_O,
    grid_r: Sequence[float] = GRID_R,
) -> np.ndarray:
    """Mean IoU (percent) of one task (``objective``: All, Pair, Hand or Obj) for every threshold triple."""
    if objective not in ("All", "Pair", "Hand", "Obj"):
        raise CohesivError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
    return miou_grids(frames, grid_h, grid_o, grid_r)[objective]


def frame_metrics(frames: Sequence[ValFrame], thresholds: dict[str, float], held: Any = None) -> dict:
    """Hand/Obj/Pair/All metrics of the read-out at ``thresholds`` (:func:`cohesiv.eval.summarize`).

    ``held`` (a :class:`cohesiv.model.held.HeldObjectModel`) drops the object masks of the hands that
    hold nothing, as prediction does.
    """
    from cohesiv.eval.metrics import HOSMeter
    from cohesiv.model.held import apply_held

    meter = HOSMeter()
    ro = Readout.from_thresholds(thresholds)
    for f in frames:
        hand, obj = ro.apply(f.scores, f.person_sim, f.object_sim)
        if held is not None:
            obj = apply_held(hand, obj, f.scores, f.person_sim, f.object_sim, ro.tau_r, held)[0]
        meter.add(f.label, f.sides, f.queries, hand, obj)
    return meter.result()


def best_within_tolerance(main: np.ndarray, secondary: np.ndarray, tolerance: float) -> int:
    """The calibration's choice rule: among candidates within ``tolerance`` of the best ``main``, the best ``secondary``.

    Args:
        main: the objective's mIoU of each candidate (any shape; NaN = no instance).
        secondary: the tie-breaker of each candidate (the mean mIoU of the four tasks), same shape.
        tolerance: mIoU points (at least 1e-6, so that float ties count as within).

    Returns:
        The flat index of the chosen candidate (the first one in order on a tie).
    """
    near = main >= np.nanmax(main) - max(float(tolerance), 1e-6)
    return int(np.argmax(np.where(near, secondary, -np.inf)))


def search_held(
    frames: Sequence[ValFrame],
    thresholds: dict[str, float],
    objective: str = _OPTIONS.objective,
    grid: Sequence[float] = GRID_HELD,
    tolerance: float = TOLERANCE,
) -> tuple[Any, dict[str, Any]]:
    """Fit the held-object model (:mod:`cohesiv.model.held`) and choose its decision threshold.

    The logistic model is fitted on every queried hand of ``frames`` (target: its label holds object
    pixels). The threshold is chosen like the read-out thresholds: the best ``objective`` mIoU, and
    among thresholds within ``tolerance`` of it the best mean of the four tasks; 0 never drops.

    Args:
        frames: validation maps.
        thresholds: the calibrated read-out thresholds (kept fixed).
        objective: task whose mIoU decides.
        grid: candidate probability thresholds (0 = off).
        tolerance: mIoU points.

    Returns:
        ``(model or None when the clips lack hands with or without objects, fit report)``; the report
        has the hand counts and, per threshold, the objective and the false-object rate / Obj recall /
        Obj mIoU, with "before" (no decision) and "after" (the chosen threshold).
    """
    from cohesiv.eval.metrics import hand_object_gt, resolve_side
    from cohesiv.model.held import HeldObjectModel, held_features

    xs, ys = [], []
    ro = Readout.from_thresholds(thresholds)
    for f in frames:
        hand, obj = ro.apply(f.scores, f.person_sim, f.object_sim)
        xs.append(held_features(hand, obj, f.scores, f.person_sim, f.object_sim, ro.tau_r))
        for i in range(len(f.scores)):
            ys.append(hand_object_gt(f.label, resolve_side(f.label, f.sides[i], f.queries[i]))[1].any())
    x = np.concatenate(xs) if xs else np.zeros((0, 6))
    y = np.asarray(ys, bool)
    report: dict[str, Any] = {"hands": int(len(y)), "holding": int(y.sum())}
    if len(y) == 0 or y.all() or not y.any():
        report["skipped"] = "the validation hands all hold an object, or none does"
        return None, report
    fitted = HeldObjectModel.fit(x, y)

    def summary(m: dict) -> dict[str, float]:
        return {
            objective: float(m[objective]["mIoU"]),
            "mean4": float(np.nanmean([m[t]["mIoU"] for t in ("All", "Pair", "Hand", "Obj")])),
            "false_object_rate": float(m["Obj"]["false_object_rate"]),
            "Obj_recall": float(m["Obj"]["recall"]),
            "object_found_rate": float(m["Obj"]["object_found_rate"]),
            "Obj_mIoU": float(m["Obj"]["mIoU"]),
        }

    scores = {
        f"{t:g}": summary(frame_metrics(frames, thresholds, replace(fitted, threshold=float(t))))
        for t in grid
    }
    keys = list(scores)
    chosen = keys[
        best_within_tolerance(
            np.array([scores[k][objective] for k in keys]),
            np.array([scores[k]["mean4"] for k in keys]),
            tolerance,
        )
    ]
    model = replace(fitted, threshold=float(chosen))
    report.update(grid=scores, threshold=float(chosen), before=summary(frame_metrics(frames, thresholds)))
    report["after"] = scores[chosen]
    return model, report


def _search_option(
    frames: Sequence[ValFrame],
    thresholds: dict[str, float],
    key: str,
    grid: Sequence[float],
    objective: str,
    min_gain: float,
) -> tuple[float | None, dict[str, float]]:
    """Score ``thresholds`` without and with each value of the optional step ``key``; keep the best.

    The step is switched on only when it raises the objective's mIoU by at least ``min_gain``.
    """
    base = {k: v for k, v in thresholds.items() if k != key}
    scores = {"off": float(frame_metrics(frames, base)[objective]["mIoU"])}
    for g in grid:
        scores[f"{g:g}"] = float(frame_metrics(frames, dict(base, **{key: float(g)}))[objective]["mIoU"])
    best_key = max((k for k in scores if k != "off"), key=scores.__getitem__, default=None)
    if best_key is None or scores[best_key] < scores["off"] + min_gain:
        return None, scores
    return float(best_key), scores


def search_growth(
    frames: Sequence[ValFrame],
    thresholds: dict[str, float],
    objective: str = _OPTIONS.objective,
    grid_g: Sequence[float] = GRID_G,
    min_gain: float = 0.5,
) -> tuple[float | None, dict[str, float]]:
    """Choose the hand-growing threshold ``tau_g`` (:func:`cohesiv.model.predictor.grow_hands`), or none.

    Args:
        frames: validation maps.
        thresholds: the calibrated ``{"tau_h", "tau_o", "tau_r"}`` (kept fixed).
        objective: task whose mIoU decides.
        grid_g: candidate thresholds.
        min_gain: growing is switched on only when it raises the objective's mIoU by at least this
            many points (so that a run whose embedding does not know arms keeps the plain read-out).

    Returns:
        ``(tau_g or None, {"off" or str(tau_g): objective mIoU})``.
    """
    base = {k: thresholds[k] for k in THRESHOLD_NAMES}
    return _search_option(frames, base, "tau_g", grid_g, objective, min_gain)


def search_opening(
    frames: Sequence[ValFrame],
    thresholds: dict[str, float],
    objective: str = _OPTIONS.objective,
    grid: Sequence[float] = GRID_OPEN,
    min_gain: float = 0.5,
) -> tuple[float | None, dict[str, float]]:
    """Choose the object-opening radius ``open_o`` (:func:`cohesiv.model.predictor.open_objects`), or none.

    Args:
        frames: validation maps.
        thresholds: the calibrated thresholds, with ``tau_g`` when growing is on (kept fixed).
        objective: task whose mIoU decides.
        grid: candidate radii, as fractions of the image's longer side.
        min_gain: the opening is switched on only when it raises the objective by at least this much.

    Returns:
        ``(open_o or None, {"off" or str(open_o): objective mIoU})``.
    """
    return _search_option(frames, thresholds, "open_o", grid, objective, min_gain)


def search_thresholds(
    frames: Sequence[ValFrame],
    objective: str = _OPTIONS.objective,
    grid_h: Sequence[float] = GRID_H,
    grid_o: Sequence[float] = GRID_O,
    grid_r: Sequence[float] = GRID_R,
    tolerance: float = TOLERANCE,
) -> tuple[dict[str, float], float]:
    """Return the thresholds ``{"tau_h", "tau_o", "tau_r"}`` chosen for ``objective``, and its mIoU there.

    Triples within ``tolerance`` points of the best objective mIoU are ranked by the mean mIoU of the
    four tasks; remaining ties go to the first triple in grid order. All and Pair score hand and
    object together, so they barely constrain how a hand's pixels are split into hand and object
    (tau_h, tau_o): maximising them alone can pick a split that calls every object pixel hand (seen:
    validation All 69.8 with Obj 0.9, against All 69.8 with Obj 23.0 and Hand +5 at other thresholds).

    Raises:
        CohesivError: unknown objective, or no instance of it.
    """
    if objective not in OBJECTIVES:
        raise CohesivError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
    grids = miou_grids(frames, grid_h, grid_o, grid_r)
    main = grids[objective]
    if np.isnan(main).all():
        raise CohesivError(f"no {objective} instance to calibrate on (labeled frames without hands?)")
    secondary = np.nanmean(np.stack([grids[t] for t in grids if not np.isnan(grids[t]).all()]), 0)
    i, j, r = np.unravel_index(best_within_tolerance(main, secondary, tolerance), main.shape)
    th = dict(zip(THRESHOLD_NAMES, (float(grid_h[i]), float(grid_o[j]), float(grid_r[r]))))
    return th, float(main[i, j, r])


# ------------------------------------------------------------------------------------------ the run


def _sizes(size: int | Sequence[int] | None, default: int) -> list[int]:
    """The candidate network sizes: positive and unique, in the given order (``None``: the default)."""
    sizes = [default] if size is None else [size] if isinstance(size, int) else list(size)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in sizes):
        raise CohesivError(f"size must be one or more positive integers, got {size!r}")
    return list(dict.fromkeys(sizes))


def calibrate_run(
    run: str | Path,
    val_clips: Sequence[str | Path],
    *,
    data: Sequence[str | Path] | None = None,
    samples: int = _OPTIONS.samples,
    objective: str = _OPTIONS.objective,
    size: int | Sequence[int] | None = None,
    device: str | None = None,
    seed: int = _OPTIONS.seed,
    grow: bool = _OPTIONS.grow,
    opening: bool = _OPTIONS.opening,
    flip: bool = _OPTIONS.flip,
    held: bool = _OPTIONS.held,
    tolerance: float = _OPTIONS.tolerance,
    relative_scores: bool = _OPTIONS.relative_scores,
    query_person: bool = _OPTIONS.query_person,
    progress: bool = True,
) -> dict[str, Any]:
    """Compute the prototypes and thresholds of a run and write ``RUN/calibration.json``.

    Args:
        run: the run folder (trained by ``cohesiv train``).
        val_clips: labeled validation clip folders; empty: compute the prototypes only (no thresholds;
            the predictor then uses its nearest-prototype read-out, S_k > 0.5 split by the closer prototype).
        data: pseudo-label datasets for the prototypes (default: the run's training datasets).
        samples: pixels per class for the prototypes (500 as in the paper).
        objective: "Pair" (the default) or "All" mIoU to maximise (:class:`cohesiv.config.CalibrationOptions`).
        size: longer image side fed to the network (default: the run's training size); several
            sizes: each is calibrated and the one of the best validation ``objective`` is kept (the
            network sees training crops at one scale, so the best test-time size is not always the
            training size).
        device: torch device (default CPU).
        seed: seeds the pixel draw.
        tolerance: threshold triples within this many points of the best objective are ranked by the
            mean mIoU of the four tasks (:func:`search_thresholds`).
        grow: also try the hand-growing read-out (``tau_g``, :func:`search_growth`) and keep it
            when it helps on the validation clips.
        opening: also try opening the object masks (``open_o``, :func:`search_opening`) and
            keep it when it helps on the validation clips.
        flip: also calibrate with the test-time flip of :class:`cohesiv.model.Predictor` at every
            size, and keep it when its best objective beats the best without by at least half a
            point (it doubles the cost of prediction).
        held: also fit the held-object model and its threshold (:func:`search_held`; "holds nothing").
        relative_scores: fit (and predict) on scores relative to the score at the query point
            (:class:`cohesiv.model.Predictor` ``relative_scores``); recorded in the calibration.
        query_person: fit (and predict) with each image's person prototype taken at its query points
            (:class:`cohesiv.model.Predictor` ``query_person``); recorded in the calibration.
        progress: progress bars on stderr.

    Returns:
        The calibration document written.

    Raises:
        CohesivError: a bad option (:class:`cohesiv.config.CalibrationOptions` checks them), no
            training run, or several sizes without validation clips.
    """
    CalibrationOptions(
        samples=samples,
        objective=objective,
        seed=seed,
        tolerance=tolerance,
        grow=grow,
        opening=opening,
        flip=flip,
        held=held,
        relative_scores=relative_scores,
        query_person=query_person,
    )  # checks the values
    from cohesiv.model import Predictor
    from cohesiv.model.io import load_run_model, write_calibration
    from cohesiv.train.config import read_train_config

    run = Path(run)
    cfg = read_train_config(run)
    sizes = _sizes(size, cfg.size)
    if len(sizes) > 1 and not val_clips:
        raise CohesivError("choosing among several sizes needs labeled validation clips (--val)")
    datasets = [str(p) for p in (data or cfg.data)]
    ds = PseudoLabelDataset(datasets)
    model, _ = load_run_model(run, device=device)
    fits = []  # (objective mIoU, size, flip, prototypes, samples used, val frames, thresholds)
    for fl in (False, True) if flip and val_clips else (False,):
        for sz in sizes:
            base = Predictor(model, size=sz, device=device, flip=fl)
            protos, used = sample_prototypes(
                base, ds, samples=samples, object_threshold=cfg.object_threshold, seed=seed, progress=progress
            )
            if not val_clips:  # no labels at all: prototypes only (the nearest-prototype read-out)
                doc = {
                    "prototype_data": datasets,
                    "samples": used,
                    "size": sz,
                    "val_clips": [],
                    "relative_scores": relative_scores,
                    "query_person": query_person,
                }
                write_calibration(run, protos, None, **doc)
                return dict(doc, prototypes={k: v.tolist() for k, v in protos.items()}, thresholds=None)
            predictor = Predictor(
                model,
                prototypes=protos,
                size=sz,
                device=device,
                flip=fl,
                relative_scores=relative_scores,
                query_person=query_person,
            )
            frames = collect_val_frames(predictor, val_clips, progress=progress)
            thresholds, best = search_thresholds(frames, objective, tolerance=tolerance)
            fits.append((best, sz, fl, protos, used, frames, thresholds))
    plain = max((f for f in fits if not f[2]), key=lambda f: f[0])  # ties: the first size
    flipped = max((f for f in fits if f[2]), key=lambda f: f[0], default=None)
    chosen = flipped if flipped is not None and flipped[0] >= plain[0] + FLIP_MIN_GAIN else plain
    best, size, use_flip, protos, used, frames, thresholds = chosen
    tau_g, growth = search_growth(frames, thresholds, objective) if grow else (None, {})
    if tau_g is not None:
        thresholds = dict(thresholds, tau_g=tau_g)
        best = growth[f"{tau_g:g}"]
    open_o, opened = search_opening(frames, thresholds, objective) if opening else (None, {})
    if open_o is not None:
        thresholds = dict(thresholds, open_o=open_o)
        best = opened[f"{open_o:g}"]
    held_model, held_fit = (
        search_held(frames, thresholds, objective, tolerance=tolerance) if held else (None, {})
    )
    metrics = frame_metrics(frames, thresholds, held_model)
    doc = {
        "objective": objective,
        "objective_mIoU": best,
        "tolerance": tolerance,
        "val_metrics": metrics,
        "val_clips": [str(c) for c in val_clips],
        "prototype_data": datasets,
        "samples": used,
        "size": size,
        "sizes": {str(f[1]): f[0] for f in fits if not f[2]},
        "flip": use_flip,
        "flip_sizes": {str(f[1]): f[0] for f in fits if f[2]},
        "relative_scores": relative_scores,
        "query_person": query_person,
        "grid": dict(zip(THRESHOLD_NAMES, (list(GRID_H), list(GRID_O), list(GRID_R)))),
        "growth": growth,
        "opening": opened,
        "held_object": None if held_model is None else held_model.to_json(),
        "held_object_fit": held_fit,
    }
    write_calibration(run, protos, thresholds, **doc)
    return dict(doc, prototypes={k: v.tolist() for k, v in protos.items()}, thresholds=thresholds)
