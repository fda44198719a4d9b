"""Is the network's hand mask better than its input at every hull size? The hull floor and the model kept
inside its support, side by side, over the hull dilation.

``eval --images`` scores the hull of the hand points at one dilation (0.2 of the hand's size, the
pseudo-labels' person-mask rule) and the model kept inside a support of that same dilation. A model that
beats that hull may only be cutting away the dilation: this bench scores, for each dilation ``d``, the
hull of dilation ``d`` alone (``hull d``) and each run's hand masks kept inside a support of dilation
``d`` (``RUN + support d``; :func:`cohesiv.model.support.restrict_to_support`, with the wrist cut), beside
each run's read-out. Hands from MediaPipe (as ``eval --images``); each hand predicted in the default
window. Metric: All-hands IoU on binary-mask sets, Hand IoU on EgoHOS sets (mIoU %).

    .venv/bin/python bench/support_dilation.py runs/real RUN2 ...

The data folder is ``--data``, else ``$COHESIV_DATA``, else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from cohesiv.eval.images import evaluate_image_set, find_image_sets, hull_prediction, open_image_set
from cohesiv.hands import HandDetector
from cohesiv.io import Hand
from cohesiv.io.predictions import HOSPrediction
from cohesiv.model import Predictor
from cohesiv.model.support import restrict_to_support
from cohesiv.model.windows import DEFAULT_WINDOW_FACTOR, predict_in_hand_windows


def hull_at(d: float):
    """The floor at dilation ``d`` (:func:`cohesiv.eval.images.hull_prediction`) as an image method."""
    return lambda image, hands: hull_prediction(hands, (image.shape[1], image.shape[0]), dilation=d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="trained, calibrated run folders")
    ap.add_argument("--data", type=Path, help="folder with the real image sets (default: see above)")
    ap.add_argument(
        "--dilations",
        default="0,0.05,0.1,0.15,0.2",
        help="comma-separated hull dilations, fractions of the hand's size (default: %(default)s)",
    )
    a = ap.parse_args()
    try:
        dilations = [float(x) for x in a.dilations.split(",")]
    except ValueError:
        sys.exit(f"--dilations: numbers separated by commas, got {a.dilations!r}")
    if any(d < 0 for d in dilations):
        sys.exit(f"--dilations: must be >= 0, got {a.dilations!r}")
    sets = find_image_sets(a.data)
    if not sets:
        sys.exit("no real image sets found (set --data or COHESIV_DATA)")
    predictors = [Predictor.from_run(r) for r in a.runs]

    last: dict[int, tuple[np.ndarray, HOSPrediction]] = {}  # run -> its last image and prediction

    def model(j: int):
        def predict(image: np.ndarray, hands: list[Hand]) -> HOSPrediction:
            if j not in last or last[j][0] is not image:  # one network pass per image and run
                last[j] = (image, predict_in_hand_windows(predictors[j], image, hands, DEFAULT_WINDOW_FACTOR))
            return last[j][1]

        return predict

    def supported(j: int, d: float):
        return lambda image, hands: restrict_to_support(model(j)(image, hands), hands, dilation=d)

    methods = {f"hull {d:g}": hull_at(d) for d in dilations}
    for j, run in enumerate(a.runs):
        methods[f"{run}"] = model(j)
        methods.update({f"{run} + support {d:g}": supported(j, d) for d in dilations})

    with HandDetector(video=False) as detector:
        for path in sets:
            kind = open_image_set(path).kind
            metric = "Hand" if kind == "egohos" else "All-hands"
            out = evaluate_image_set(path, methods, lambda i, image: detector.detect(image), progress=False)
            print(f"\n{path.name}: {metric} mIoU %, {out['n_images']} images, hands {out['detection']}")
            print("dilation    hull  " + "  ".join(f"run {j} + support" for j in range(len(a.runs))))
            for d in dilations:
                cells = [out["methods"][f"{run} + support {d:g}"][metric]["mIoU"] for run in a.runs]
                hull = out["methods"][f"hull {d:g}"][metric]["mIoU"]
                print(f"{d:8g}  {hull:6.1f}  " + "  ".join(f"{c:16.1f}" for c in cells))
            reads = [out["methods"][str(run)][metric]["mIoU"] for run in a.runs]
            print("read-out          " + "  ".join(f"{c:16.1f}" for c in reads))
        print("\n" + "\n".join(f"run {j}: {run}" for j, run in enumerate(a.runs)))


if __name__ == "__main__":
    main()
