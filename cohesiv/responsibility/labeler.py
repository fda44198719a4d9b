"""One labelling function per frame: the pseudo-labels, as the dataset, the baseline and the demo see them.

:func:`label_frame` turns the flows around frame t and the hands' points into the frame's
pseudo-labels: the offsets it can use, the forward–backward validity, the averaged
responsibility maps (:func:`cohesiv.responsibility.averaged_responsibility`), the optional
edge-aware smoothing, and the person mask. ``cohesiv pseudolabel`` (:func:`write_dataset`),
``cohesiv eval --baseline responsibility`` (:class:`cohesiv.eval.baselines.ResponsibilityBaseline`)
and the demo all call it with one :class:`PseudoLabelConfig`, so the same options give the same maps.

Flows come from a callable ``flow(a, b) -> (2, H, W)`` (frame a -> frame b), normally
:meth:`cohesiv.flow.FlowCache.get`, the one sliding flow window of the package.

Conventions: flow ``(2, H, W)`` float32 pixels (dx, dy) from frame a to b; points ``(x, y)``
pixels, origin at the centre of the top-left pixel; sizes ``(W, H)``; responsibilities
``(N+1, H, W)`` float32, channel 0 background, summing to 1; masks ``(H, W)`` uint8 {0, 1}.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from cohesiv.config import FLOW_SOURCES as FLOW_SOURCES  # old paths, kept for one release
from cohesiv.config import SMOOTHINGS as SMOOTHINGS
from cohesiv.config import PseudoLabelConfig
from cohesiv.responsibility.maps import averaged_responsibility
from cohesiv.responsibility.masks import person_mask

#: Guided-filter regularisation (guide in [0, 1]): edges weaker than about sqrt(eps) are smoothed over.
GUIDED_EPS = 1e-3


@dataclass
class FrameLabels:
    """The pseudo-labels of one frame (what :func:`label_frame` returns).

    Attributes:
        responsibility: ``(N+1, H, W)`` float32, channel k = the k-th given hand (all-zero for a
            hand that could not be fitted at any offset), summing to 1 over channels.
        person: ``(H, W)`` uint8 {0, 1}, from the hands in ``kept`` (or the given mask).
        valid: ``(H, W)`` uint8 {0, 1}, forward–backward consistent in at least half the offsets.
        kept: indices of the hands fitted at one offset at least.
        info: ``offsets``, ``fitted_offsets``, ``dropped``, ``camera_fallbacks``
            (:func:`cohesiv.responsibility.averaged_responsibility`).
        flows: offset k -> the flow t -> t+k used (for overlays).
    """

    responsibility: np.ndarray
    person: np.ndarray
    valid: np.ndarray
    kept: list[int]
    info: dict
    flows: dict


def usable_offsets(offsets: Sequence[int], t: int, n_frames: int) -> list[int]:
    """The offsets k with ``0 <= t + k < n_frames`` (frames near the clip's ends use what they have)."""
    return [k for k in offsets if k != 0 and 0 <= t + k < n_frames]


def flow_pairs(t: int, offsets: Sequence[int], fb_check: bool = True) -> list[tuple[int, int]]:
    """The frame pairs ``(a, b)`` whose flow :func:`label_frame` asks for, in the order it asks.

    The flows ``t -> t + k``, then (with ``fb_check``) ``t + k -> t``. A caller that labels
    frames in turn passes the next frame's pairs to :meth:`cohesiv.flow.FlowCache.prefetch`,
    so that they are computed in a second thread while this frame is labeled.
    """
    forward = [(t, t + k) for k in offsets]
    return forward + [(b, a) for a, b in forward] if fb_check else forward


def guided_smoothing(
    responsibility: np.ndarray, image: np.ndarray, radius: int, eps: float = GUIDED_EPS
) -> np.ndarray:
    """Edge-aware smoothing of the hands' responsibility with a guided filter on the frame.

    Each hand channel is filtered with the frame as guide (He et al., PAMI 2013; OpenCV
    ``ximgproc.guidedFilter``), so responsibility spreads within regions of similar colour and
    stops at image edges: the textureless inside of a held object, where the flow is unreliable,
    takes the responsibility of its textured rim. Channels are clipped to [0, 1]; the
    background is what is left (``1 - sum of hands``, at least 0), and the result is renormalised.

    Args:
        responsibility: ``(N+1, H, W)`` float32, channel 0 background.
        image: ``(H, W, 3)`` uint8 RGB frame.
        radius: filter radius, pixels.
        eps: regularisation (guide scaled to [0, 1]).

    Returns:
        ``(N+1, H, W)`` float32 summing to 1 over channels.
    """
    r = np.asarray(responsibility, np.float32)
    if r.shape[0] < 2 or radius < 1:
        return r
    guide = np.ascontiguousarray(image, np.float32) * np.float32(1 / 255)
    out = np.empty_like(r)
    gf = cv2.ximgproc.createGuidedFilter(guide, int(radius), float(eps))
    for c in range(1, r.shape[0]):
        out[c] = gf.filter(np.ascontiguousarray(r[c]))
    np.clip(out[1:], 0, 1, out=out[1:])
    hands = out[1:].sum(0)
    out[0] = np.maximum(1 - hands, 0)
    out /= np.maximum(out.sum(0, keepdims=True), np.float32(1e-6))
    return out


def superpixel_pooling(
    responsibility: np.ndarray, image: np.ndarray, size: int, iterations: int = 4
) -> np.ndarray:
    """Responsibility averaged over SLIC superpixels of the frame (OpenCV ``ximgproc``, SLICO).

    A superpixel follows image edges, so a textureless region of an object takes the mean
    responsibility of the superpixel it belongs to, and no responsibility crosses a strong edge.

    Args:
        responsibility: ``(N+1, H, W)`` float32, channel 0 background.
        image: ``(H, W, 3)`` uint8 RGB frame.
        size: superpixel side, pixels.
        iterations: SLIC iterations.

    Returns:
        ``(N+1, H, W)`` float32, constant on each superpixel, summing to 1 over channels.
    """
    r = np.asarray(responsibility, np.float32)
    lab = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB)
    slic = cv2.ximgproc.createSuperpixelSLIC(lab, cv2.ximgproc.SLICO, max(int(size), 2))
    slic.iterate(iterations)
    labels = slic.getLabels().ravel()
    n = int(labels.max()) + 1
    count = np.maximum(np.bincount(labels, minlength=n), 1).astype(np.float64)
    flat = r.reshape(r.shape[0], -1)
    means = np.stack([np.bincount(labels, weights=c, minlength=n) / count for c in flat]).astype(np.float32)
    return means[:, labels].reshape(r.shape)


def separate_hands(
    r: np.ndarray,
    hand_points: Sequence[np.ndarray],
    size: tuple[int, int],
    hands: Sequence[int],
    dilation: float,
) -> np.ndarray:
    """Give each hand the hand responsibility inside its own hull (beyond [C]).

    Two hands that hold one object move together, so each hand's homography explains the other
    hand too and their responsibilities split every pixel of both about evenly. Inside the dilated
    hull of exactly one hand (:func:`cohesiv.responsibility.masks.hull_mask`), the sum of the hand
    channels goes to that hand; background, pixels of no hull and pixels of several hulls are unchanged.

    Args:
        r: ``(N+1, H, W)`` responsibilities, channel 0 background.
        hand_points: N arrays ``(N_k, 2)`` of hand points.
        size: ``(W, H)``.
        hands: the hands to separate (indices into ``hand_points``; e.g. the fitted ones).
        dilation: hull dilation as a fraction of the hand's size.

    Returns:
        ``(N+1, H, W)`` float32, still summing to 1 over channels.
    """
    from cohesiv.responsibility.masks import hull_mask

    r = np.array(r, np.float32, copy=True)
    hulls = np.stack([hull_mask([hand_points[j]], size, dilation=dilation).astype(bool) for j in hands])
    alone = hulls & (hulls.sum(0) == 1)[None]
    total = r[1:].sum(0)
    for i, j in enumerate(hands):
        m = alone[i]
        r[1:, m] = 0.0
        r[1 + j, m] = total[m]
    return r


def label_frame(
    flow: Callable[[int, int], np.ndarray],
    t: int,
    offsets: Sequence[int],
    hand_points: Sequence[np.ndarray],
    size: tuple[int, int],
    config: PseudoLabelConfig,
    *,
    image: np.ndarray | None = None,
    person_given: np.ndarray | None = None,
    valid_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    timer: Callable[[str], contextlib.AbstractContextManager] | None = None,
) -> FrameLabels | None:
    """Pseudo-labels of frame ``t``: averaged responsibility, validity and person mask.

    Args:
        flow: ``flow(a, b) -> (2, H, W)`` float32 flow from frame a to frame b (a cache, e.g.
            :meth:`cohesiv.flow.FlowCache.get`, so that no pair is computed twice).
        t: the frame.
        offsets: the offsets k to use (frames t + k exist; see :func:`usable_offsets`).
        hand_points: N arrays ``(N_k, 2)`` ``(x, y)`` of the hands in frame t (a hand with no
            point is never fitted; its channel is all zero).
        size: ``(W, H)`` of the frames.
        config: the label settings (offsets are taken from ``offsets``, flow source ignored).
        image: ``(H, W, 3)`` uint8 RGB frame t, needed by ``config.smoothing`` and by
            ``config.person_rule="grabcut"``.
        person_given: optional ``(H, W)`` person mask (non-zero = person) instead of the hulls.
        valid_fn: ``valid_fn(flow_fw, flow_bw) -> (H, W) bool`` (default
            :func:`cohesiv.flow.forward_backward_valid`); used when ``config.fb_check``.
        timer: ``timer(stage)`` context manager around the stages (``flow``, ``consistency``,
            ``responsibility``, ``masks``), e.g. to account time per stage.

    Returns:
        :class:`FrameLabels`, or None when ``offsets`` is empty.

    Raises:
        ValueError: ``config.smoothing="guided"`` without ``image``, or bad shapes.
    """
    if not offsets:
        return None
    stage = timer or (lambda name: contextlib.nullcontext())
    pts = [np.asarray(p, np.float32).reshape(-1, 2) for p in hand_points]
    with stage("flow"):
        flows = {k: flow(t, t + k) for k in offsets}
    valids = None
    if config.fb_check:
        with stage("flow"):
            back = {k: flow(t + k, t) for k in offsets}
        if valid_fn is None:
            from cohesiv.flow import forward_backward_valid as valid_fn
        with stage("consistency"):
            valids = {k: np.asarray(valid_fn(flows[k], back[k])).astype(np.uint8) for k in offsets}
    with stage("responsibility"):
        r, valid, info = averaged_responsibility(
            flows,
            pts,
            valids=valids,
            temperature=config.temperature,
            background=config.background,
            method=config.homography,
            threshold=config.inlier_threshold,
        )
        if config.smoothing != "none":
            if image is None:
                raise ValueError(f"smoothing={config.smoothing!r} needs the frame (image=)")
            w, h = size
            radius = max(1, int(round(config.smoothing_radius * float(np.hypot(w, h)))))
            smooth = guided_smoothing if config.smoothing == "guided" else superpixel_pooling
            r = smooth(r, image, radius)
    kept = [j for j, fo in enumerate(info["fitted_offsets"]) if fo]
    if config.separate_hands and len(kept) > 1:
        r = separate_hands(r, pts, size, kept, dilation=config.hull_dilation)
    with stage("masks"):
        person = person_mask(
            [pts[j] for j in kept],
            size,
            given=person_given,
            dilation=config.hull_dilation,
            forearm=config.forearm,
            rule=config.person_rule,
            image=image,
        )
    return FrameLabels(responsibility=r, person=person, valid=valid, kept=kept, info=info, flows=flows)
