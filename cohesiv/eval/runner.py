"""Glue between the command line and the evaluation cores: build a baseline, fit, score; score a run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cohesiv.defaults import RESPONSIBILITY_TEMPERATURE
from cohesiv.errors import CohesivError
from cohesiv.eval.baselines import (
    EstimatedFlow,
    ExactFlow,
    FlowBaseline,
    ResponsibilityBaseline,
    ThresholdFit,
    evaluate_baseline,
    fit_threshold,
)
from cohesiv.eval.driver import FrameContext, HOSPrediction, evaluate_clips
from cohesiv.io import Hand
from cohesiv.responsibility.labeler import PseudoLabelConfig


def make_flow_source(
    flow: str = "dis",
    raft_weights: str | Path | None = None,
    device: str | None = None,
    preset: str | None = None,
    raft_model: str = "small",
) -> Any:
    """Return a flow source ``(context, s) -> (2, H, W)``: ``"gt"`` (synthetic clips), ``"dis"`` or ``"raft"``."""
    if flow == "gt":
        return ExactFlow()
    if flow not in ("dis", "raft"):
        raise ValueError(f"flow must be 'gt', 'dis' or 'raft', got {flow!r}")
    if flow == "raft" and raft_weights is None:
        raise CohesivError("--flow raft needs --raft-weights FILE (a local RAFT checkpoint)")
    from cohesiv.flow import FlowEstimator

    kwargs: dict = {"method": flow}
    if flow == "dis" and preset is not None:
        kwargs["preset"] = preset
    if flow == "raft":
        kwargs.update(raft_weights=raft_weights, device=device, raft_model=raft_model)
    return EstimatedFlow(FlowEstimator(**kwargs), name=flow)


def build_baseline(
    name: str,
    *,
    flow: str = "dis",
    raft_weights: str | Path | None = None,
    offsets: Sequence[int] | None = None,
    temperature: float = RESPONSIBILITY_TEMPERATURE,
    background: str = "static",
    fb_check: bool | None = None,
    config: PseudoLabelConfig | None = None,
) -> ResponsibilityBaseline | FlowBaseline:
    """Build the ``"responsibility"`` or ``"flow"`` baseline (offsets default to each one's own).

    With ``config`` (the pseudo-label options), the flow source, temperature, background and the
    rest come from it, and the responsibility baseline labels frames exactly as ``cohesiv
    pseudolabel`` with that config does; without, from the keyword arguments (``fb_check`` None:
    the pseudo-labels' default, on).
    """
    if config is None:
        over = {} if fb_check is None else {"fb_check": fb_check}
        config = PseudoLabelConfig(
            flow=flow, raft_weights=raft_weights, temperature=temperature, background=background, **over
        )
    source = make_flow_source(
        config.flow, config.raft_weights, preset=config.flow_preset, raft_model=config.raft_model
    )
    kw = {} if offsets is None else {"offsets": tuple(offsets)}
    if name == "responsibility":
        return ResponsibilityBaseline(source, config, **kw)
    if name == "flow":
        return FlowBaseline(source, background=config.background, **kw)
    raise ValueError(f"unknown baseline {name!r} (responsibility or flow)")


def run_baseline(
    baseline: Any,
    data: Sequence[str | Path],
    *,
    val: Sequence[str | Path] | None = None,
    threshold: float | None = None,
    grid: Sequence[float] | None = None,
    progress: bool = True,
) -> tuple[dict, ThresholdFit | None]:
    """Fit the threshold on ``val`` (unless given), then score ``data``.

    Returns:
        ``(metrics, fit)``: the metrics dict (plus ``"threshold"``) and the fit (None when given).
    """
    fit = None
    if threshold is None:
        if not val:
            raise CohesivError("give validation clips to fit the threshold, or a threshold")
        fit = fit_threshold(baseline, val, grid, progress=progress)
        if fit.n_images == 0:
            raise CohesivError("validation clips hold no labeled frame")
        threshold = fit.threshold
    metrics = evaluate_baseline(baseline, data, threshold, progress=progress)
    metrics["threshold"] = float(threshold)
    return metrics, fit


def model_predict_fn(predictor: Any):
    """Wrap ``predictor.predict(image, queries, sides)`` as a driver predict function.

    The model sees only the labeled frame and the hands' query points (no motion at test time).
    """

    def predict(image: np.ndarray, hands: list[Hand], context: FrameContext) -> Any:
        if not hands:
            h, w = image.shape[:2]
            return HOSPrediction(np.zeros((0, h, w), np.uint8), np.zeros((0, h, w), np.uint8))
        return predictor.predict(image, [hd.query for hd in hands], [hd.side for hd in hands])

    return predict


def evaluate_run(
    run: str | Path, data: Sequence[str | Path], *, device: str | None = None, progress: bool = True
) -> dict:
    """Score the trained model of ``run`` (``cohesiv.model.Predictor.from_run``) on labeled clips."""
    run = Path(run)
    if not run.is_dir():
        raise CohesivError(f"{run}: no such run folder")
    try:
        from cohesiv.model import Predictor
    except ImportError as e:
        raise CohesivError(f"the model is not available in this installation ({e})") from None
    predictor = Predictor.from_run(run, device=device)
    return evaluate_clips(data, model_predict_fn(predictor), progress=progress)
