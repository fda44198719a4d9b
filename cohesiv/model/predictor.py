"""Inference: one RGB image and a query point per hand -> hand masks, held-object masks, EgoHOS labels.

:class:`Predictor` wraps a trained :class:`~cohesiv.model.CohesivNet` (co-tracker's predictor idea):
it resizes the image so its longer side is ``size``, rescales the query points, pads to a multiple of
32, runs the network under ``torch.no_grad`` in eval mode (restoring the caller's mode afterwards),
unpads and resizes the maps back to the image. The read-out (COHESIV section 3.2) is
:class:`cohesiv.model.readout.Readout` (its ``apply``; :func:`readout` is its threshold rule), and the
EgoHOS label composition is :func:`compose_label`.

Read-out, per query k (``S_k`` the score map, ``Z`` the embedding):

* calibrated (prototypes and thresholds from ``cohesiv calibrate``):
  hand_k = cos(Z, z_person) > tau_h AND S_k > tau_r; object_k = cos(Z, z_object) > tau_o AND
  S_k > tau_r AND NOT hand_k; when the calibration also chose ``tau_g`` (beyond [C], see
  :func:`grow_hands`), each hand then grows into the connected person pixels cos(Z, z_person) > tau_g
  it touches (the forearm, which often moves unlike the hand and so has a low S_k); when it chose
  ``open_o`` (beyond [C], see :func:`open_objects`), each object mask is then opened with a disc of
  that radius (a fraction of the image's longer side), which removes the thin rims that S_k leaves
  around a moving hand that holds nothing; when it fitted a held-object model (beyond [C], see
  :mod:`cohesiv.model.held`), each hand gets a probability that it holds an object, and the object
  mask of a hand below the calibrated threshold is dropped ("holds nothing");
* prototypes without thresholds: S_k > 0.5, split into hand/object by the closer prototype;
* no calibration at all: the person prototype is the mean embedding at the query points (queries lie
  on hands); hand_k = cos(Z, z_query) > 0.5 AND S_k > 0.5; object_k = S_k > 0.5 AND NOT hand_k;
  ``object_sim`` is then ``-person_sim``.

Convention:
    Images ``(H, W, 3)`` uint8 RGB; query points ``(x, y)`` pixels with the origin at the centre of the
    top-left pixel. Resizing by ``s`` maps ``x`` to ``(x + 0.5) s - 0.5`` (the pixel-centre rule of
    OpenCV and ``align_corners=False``). Masks are thresholds of the returned maps, which are resized
    (bilinear) to the image before thresholding, so ``hand_masks`` can be recomputed exactly from
    ``scores``, ``person_sim`` and the thresholds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cohesiv._checks import check_shape
from cohesiv.io.labels import compose_label
from cohesiv.model.held import HeldObjectModel, apply_held
from cohesiv.model.net import SIZE_MULTIPLE, CohesivNet, normalize_images, sample_at_points
from cohesiv.model.readout import THRESHOLD_NAMES, Readout, grow_hands, open_objects, opening_radius

__all__ = [
    "DEFAULT_SIZE",
    "DEFAULT_THRESHOLDS",
    "Prediction",
    "Predictor",
    "Readout",
    "compose_label",
    "grow_hands",
    "open_objects",
    "opening_radius",
    "readout",
    "resolve_sides",
]

#: Thresholds used when a run has prototypes but no calibrated thresholds (:class:`Readout`'s defaults).
DEFAULT_THRESHOLDS = Readout().thresholds()
#: Longer image side fed to the network when neither the caller nor the run config says otherwise.
DEFAULT_SIZE = 384


@dataclass
class Prediction:
    """The output of :meth:`Predictor.predict` for one image with K query points.

    Attributes:
        hand_masks: ``(K, H, W)`` uint8 {0, 1}, the mask of each queried hand.
        object_masks: ``(K, H, W)`` uint8 {0, 1}, the object held by each hand (disjoint from its hand).
        scores: ``(K, H, W)`` float32 in [0, 1], the network's score S_k.
        person_sim: ``(H, W)`` float32 in [-1, 1], cosine similarity of Z to the person prototype.
        object_sim: ``(H, W)`` float32 in [-1, 1], cosine similarity of Z to the object prototype.
        label: ``(H, W)`` uint8 EgoHOS labels (0 bg, 1/2 left/right hand, 3/4 their objects, 5 both).
        sides: the side used for each query ("left"/"right"; unknown sides from the image half).
        queries: ``(K, 2)`` float32 query points ``(x, y)`` in image pixels.
        mode: which read-out was used: "calibrated", "nearest-prototype" or "query-prototype".
        held_probability: ``(K,)`` float32 probability that each hand holds an object (NaN when the
            run has no held-object model, :mod:`cohesiv.model.held`).
        holds: ``(K,)`` bool, the held-object decision (its object mask is empty when False).
    """

    hand_masks: np.ndarray
    object_masks: np.ndarray
    scores: np.ndarray
    person_sim: np.ndarray
    object_sim: np.ndarray
    label: np.ndarray
    sides: list[str]
    queries: np.ndarray
    mode: str
    held_probability: np.ndarray | None = None
    holds: np.ndarray | None = None


#: ``relative_scores`` never divides by less than this (a query on a map that is all but empty stays so).
RELATIVE_SCORE_FLOOR = 0.2


def resolve_sides(queries: np.ndarray, sides: Sequence[str | None] | None, width: int) -> list[str]:
    """Fill unknown sides from the image half of the query (left half -> "left").

    Args:
        queries: ``(K, 2)`` ``(x, y)`` pixels.
        sides: K entries "left", "right" or None, or None (all unknown).
        width: image width W; the halves split at ``x = (W - 1) / 2``.

    Returns:
        K sides, each "left" or "right".
    """
    k = len(queries)
    sides = [None] * k if sides is None else list(sides)
    if len(sides) != k:
        raise ValueError(f"got {len(sides)} sides for {k} queries")
    out = []
    for (x, _), s in zip(queries, sides):
        if s not in (None, "left", "right"):
            raise ValueError(f"side must be 'left', 'right' or None, got {s!r}")
        out.append(s if s is not None else ("left" if x < (width - 1) / 2 else "right"))
    return out


def readout(
    scores: torch.Tensor,
    person_sim: torch.Tensor,
    object_sim: torch.Tensor,
    thresholds: Mapping[str, float] | None,
    mode: str = "calibrated",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hand and object masks from scores and prototype similarities: :meth:`Readout.masks`.

    Args:
        scores: ``(K, H, W)`` S_k in [0, 1].
        person_sim: ``(H, W)`` cosine similarity to the person prototype.
        object_sim: ``(H, W)`` cosine similarity to the object prototype.
        thresholds: ``{"tau_h", "tau_o", "tau_r"}``; None means :data:`DEFAULT_THRESHOLDS`.
        mode: "calibrated", "nearest-prototype" or "query-prototype" (:mod:`cohesiv.model.readout`).

    Returns:
        ``(hand (K, H, W) bool, object (K, H, W) bool)``, disjoint for each k.
    """
    return Readout.from_thresholds(thresholds, mode).masks(scores, person_sim, object_sim)


def _pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` at the bottom and right to multiples of ``multiple`` (reflect, else replicate)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class Predictor:
    """Segment queried hands and the objects they hold in single RGB images.

    Args:
        model: a trained :class:`~cohesiv.model.CohesivNet`. Moved to ``device`` if one is given; its
            train/eval mode is restored after every call.
        prototypes: ``{"person": (F,), "object": (F,)}`` mean embeddings (from calibration), or None.
        thresholds: ``{"tau_h", "tau_o", "tau_r"}`` (from calibration), optionally with ``"open_o"``
            (:func:`open_objects`) and ``"tau_g"``
            (:func:`grow_hands`), or None.
        size: the longer image side fed to the network (the image is resized; the outputs are at the
            original size), or None to keep the image size.
        device: torch device, default the model's.
        flip: test-time flip: also run the mirrored image (query points mirrored) and average its
            mirrored-back maps with the plain ones (scores averaged; unit embeddings averaged and
            normalised). Twice the network cost; ``cohesiv calibrate --flip`` decides on validation clips.
        held: held-object model (:class:`cohesiv.model.held.HeldObjectModel`): per-hand probability
            and the "holds nothing" decision, or None.
        relative_scores: divide each S_k by its value at hand k's own query point (at least
            :data:`RELATIVE_SCORE_FLOOR`), clamped to [0, 1] (beyond [C]). The query lies on the hand,
            so S_k there should be near 1; on images unlike the training data the whole map can sag
            below tau_r and the mask vanish. Recorded by ``cohesiv calibrate``, whose thresholds are
            fitted on the same scores.
        query_person: take the person prototype of each image from the image itself, as the mean unit
            embedding at its query points (they lie on hands), instead of the calibrated one; the object
            prototype stays. The person's appearance varies from image to image (skin, light, sleeves,
            the domain gap from the training clips) more than one mean over the training data can follow.
            Recorded by ``cohesiv calibrate --query-person``, whose thresholds are fitted with it.

    Example:
        >>> pred = Predictor.from_run("runs/cup")  # doctest: +SKIP
        >>> out = pred.predict(image, [(120, 200)], ["right"])  # doctest: +SKIP
        >>> out.label.shape == image.shape[:2]  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        model: CohesivNet,
        *,
        prototypes: Mapping[str, Any] | None = None,
        thresholds: Mapping[str, float] | None = None,
        size: int | None = None,
        device: torch.device | str | None = None,
        flip: bool = False,
        held: HeldObjectModel | None = None,
        relative_scores: bool = False,
        query_person: bool = False,
    ) -> None:
        self.model = model
        self.relative_scores = bool(relative_scores)
        self.query_person = bool(query_person)
        #: the held-object model (:mod:`cohesiv.model.held`); used with calibrated thresholds only.
        self.held = held
        self.flip = bool(flip)
        if device is not None:
            model.to(device)
        self.device = next(model.parameters()).device
        self.size = None if size is None else int(size)
        self._antialias = True  # antialias when shrinking the image
        if self.size is not None and self.size < SIZE_MULTIPLE:
            raise ValueError(f"size must be at least {SIZE_MULTIPLE}, got {size}")
        self.prototypes = None
        if prototypes is not None:
            p = torch.as_tensor(
                np.stack([np.asarray(prototypes[k], np.float32) for k in ("person", "object")])
            )
            if p.shape[1] != model.embed_dim:
                raise ValueError(f"prototypes have {p.shape[1]} channels, the model embeds {model.embed_dim}")
            self.prototypes = F.normalize(p, dim=1).to(self.device)
        #: the calibrated read-out (:class:`Readout`), or None (no thresholds: the defaults, 0.5).
        self.readout = None if thresholds is None else Readout.from_thresholds(thresholds)
        self.thresholds = (
            None if self.readout is None else {k: getattr(self.readout, k) for k in THRESHOLD_NAMES}
        )

    @classmethod
    def from_run(
        cls,
        run_dir: str | os.PathLike,
        device: torch.device | str | None = None,
        *,
        size: int | None = None,
        name: str = "last",
    ) -> Predictor:
        """Load a predictor from a run folder (config, ``checkpoints/<name>.safetensors``, calibration).

        Args:
            run_dir: the run folder.
            device: torch device (default CPU).
            size: longer image side for the network; default: the size ``calibration.json`` was fitted
                at, else ``predict.size`` or ``train.size`` of ``config.yaml``, else 384.
            name: weights file stem ("last").

        Raises:
            InputError: missing/broken run folder, weights or calibration.
        """
        from cohesiv.model.io import load_run_model, read_calibration, read_run_config

        model, _ = load_run_model(run_dir, name=name, device=device)
        cal = read_calibration(run_dir)
        if size is None:
            size = cal.size if cal is not None and cal.size else _size_from_config(read_run_config(run_dir))
        return cls(
            model,
            prototypes=None if cal is None else cal.prototypes,
            thresholds=None if cal is None else cal.thresholds,
            size=size,
            device=device,
            flip=cal is not None and cal.flip,
            held=_held_from_run(run_dir) if cal is not None else None,
            relative_scores=cal is not None and cal.relative_scores,
            query_person=cal is not None and cal.query_person,
        )

    @property
    def readout_mode(self) -> str:
        """The read-out in use: "calibrated", "nearest-prototype" or "query-prototype" (module docstring)."""
        if self.prototypes is None:
            return "query-prototype"
        return "calibrated" if self.thresholds is not None else "nearest-prototype"

    # ------------------------------------------------------------------------------------ internals

    def _resized_shape(self, h: int, w: int) -> tuple[int, int]:
        if self.size is None:
            return h, w
        s = self.size / max(h, w)
        return max(1, round(h * s)), max(1, round(w * s))

    def _input(self, image: np.ndarray) -> torch.Tensor:
        """``(1, 3, h, w)`` normalised network input at the network's size (not padded yet)."""
        check_shape(image, "H,W,3", "image")
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 RGB, got {image.dtype}")
        h, w = image.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None]
        x = normalize_images(x)
        rh, rw = self._resized_shape(h, w)
        if (rh, rw) != (h, w):
            x = F.interpolate(
                x, size=(rh, rw), mode="bilinear", align_corners=False, antialias=self._antialias and rh < h
            )
        return x

    def _forward(self, x: torch.Tensor, pts: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Z ``(F, h, w)`` (unit vectors) and scores ``(K, h, w)`` of an unpadded input ``(1, 3, h, w)``.

        With ``flip``, the maps of the mirrored image (queries mirrored: ``x -> w - 1 - x``) are mirrored
        back and averaged with the plain ones (unit embeddings averaged, then normalised again).
        """
        rh, rw = x.shape[-2:]

        def one(xi: torch.Tensor, p: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
            z = self.model.embed(_pad_to_multiple(xi))
            s = None if p is None else self.model.score(z, p)[0, :, :rh, :rw]
            return F.normalize(z[0, :, :rh, :rw], dim=0), s

        z, s = one(x, pts)
        if self.flip:
            pf = None if pts is None else torch.stack([(rw - 1) - pts[..., 0], pts[..., 1]], -1)
            zf, sf = one(x.flip(-1), pf)
            z = F.normalize(z + zf.flip(-1), dim=0)
            s = None if s is None else 0.5 * (s + sf.flip(-1))
        return z, s

    def _run(self, fn):
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return fn()
        finally:
            self.model.train(was_training)

    # ------------------------------------------------------------------------------------ public

    def features(self, image: np.ndarray, resize_back: bool = True) -> np.ndarray:
        """The embedding Z of an image, for calibration.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            resize_back: resize Z (bilinear) to ``(H, W)``; else return it at the network's resolution.

        Returns:
            ``(F, H, W)`` float32 (not normalised; with ``flip``, the normalised mean of the unit
            embeddings of both passes).
        """
        h, w = image.shape[:2]

        def run() -> np.ndarray:
            x = self._input(image)
            z = self._forward(x, None)[0][None] if self.flip else self.model.embed(_pad_to_multiple(x))
            rh, rw = x.shape[-2:]
            z = z[:, :, :rh, :rw]
            if resize_back and (rh, rw) != (h, w):
                z = F.interpolate(z, size=(h, w), mode="bilinear", align_corners=False)
            return z[0].float().cpu().numpy()

        return self._run(run)

    def predict(
        self,
        image: np.ndarray,
        queries: Sequence[Sequence[float]] | np.ndarray,
        sides: Sequence[str | None] | None = None,
    ) -> Prediction:
        """Segment the queried hands and their objects in one image.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            queries: K query points ``(x, y)`` in image pixels, one per hand (on the hand).
            sides: K sides "left"/"right"/None (None: from the image half of the query), or None.

        Returns:
            :class:`Prediction` with maps at the image's size.
        """
        q = np.asarray(queries, dtype=np.float32).reshape(-1, 2)
        if not np.isfinite(q).all():
            raise ValueError("query points must be finite")
        h, w = image.shape[:2] if image.ndim == 3 else (0, 0)
        sides_r = resolve_sides(q, sides, w)

        def run() -> Prediction:
            x = self._input(image)
            rh, rw = x.shape[-2:]
            k = len(q)
            pts = None
            if k:
                s = torch.tensor([rw / w, rh / h], dtype=torch.float32)
                pts = ((torch.from_numpy(q) + 0.5) * s - 0.5).to(self.device, x.dtype)[None]
            zc, scores = self._forward(x, pts)  # (F, h, w) unit vectors, (K, h, w)
            if scores is None:
                scores = zc.new_zeros(0, rh, rw)
            elif self.relative_scores and k:
                at_query = sample_at_points(scores[None], pts)[0].diagonal()  # (K,): S_k at query k
                scores = (scores / at_query.clamp(min=RELATIVE_SCORE_FLOOR)[:, None, None]).clamp(0, 1)
            person = None  # the mean unit embedding at the queries, where the read-out uses it
            if k and (self.prototypes is None or self.query_person):
                zq = sample_at_points(zc[None], pts)[0]  # (K, F): embeddings at the queries
                person = F.normalize(F.normalize(zq, dim=1).mean(0), dim=0)
            if self.prototypes is not None:
                protos = self.prototypes.to(zc.dtype)
                if person is not None:  # query_person
                    protos = torch.stack([person, protos[1]])
                mode = "calibrated" if self.thresholds is not None else "nearest-prototype"
            elif person is not None:
                protos = torch.stack([person, -person])
                mode = "query-prototype"
            else:
                protos = zc.new_zeros(2, zc.shape[0])
                mode = "query-prototype"
            sims = torch.einsum("mf,fhw->mhw", protos, zc)  # (2, h, w)
            maps = torch.cat([scores, sims])[None]
            if (rh, rw) != (h, w):
                maps = F.interpolate(maps, size=(h, w), mode="bilinear", align_corners=False)
            maps = maps[0]
            scores_o, person_sim, object_sim = maps[:k].clamp(0, 1), maps[k], maps[k + 1]
            ro = replace(self.readout or Readout(), mode=mode)
            hand_np, obj_np = ro.apply(scores_o, person_sim, object_sim)
            scores_np, osim_np = scores_o.float().cpu().numpy(), object_sim.float().cpu().numpy()
            held = self.held if mode == "calibrated" else None
            psim_np = person_sim.float().cpu().numpy()
            obj_np, held_p, holds = apply_held(hand_np, obj_np, scores_np, psim_np, osim_np, ro.tau_r, held)
            hand_np, obj_np = hand_np.astype(np.uint8), obj_np.astype(np.uint8)
            return Prediction(
                hand_masks=hand_np,
                object_masks=obj_np,
                scores=scores_np,
                person_sim=psim_np,
                object_sim=osim_np,
                label=compose_label(hand_np, obj_np, sides_r),
                sides=sides_r,
                queries=q,
                mode=mode,
                held_probability=held_p,
                holds=holds,
            )

        return self._run(run)


def _held_from_run(run_dir: str | os.PathLike) -> HeldObjectModel | None:
    """The ``"held_object"`` entry of ``RUN/calibration.json`` (None when absent).

    Raises:
        InputError: the entry is malformed.
    """
    import json
    from pathlib import Path

    from cohesiv.errors import InputError
    from cohesiv.model.io import CALIBRATION_FILE

    path = Path(run_dir) / CALIBRATION_FILE
    try:
        return HeldObjectModel.from_json(json.loads(path.read_text(encoding="utf-8")).get("held_object"))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(path, f"bad 'held_object' entry ({e})") from None


def _size_from_config(cfg: Mapping[str, Any]) -> int:
    """The network's image size from a run config: ``predict.size``, ``train.size``, ``data.size``, else 384."""
    for section in ("predict", "train", "data"):
        sec = cfg.get(section)
        if isinstance(sec, Mapping):
            for key in ("size", "image_size"):
                v = sec.get(key)
                if isinstance(v, int) and v > 0:
                    return v
                if isinstance(v, (list, tuple)) and v and all(isinstance(i, int) for i in v):
                    return max(v)
    return DEFAULT_SIZE
