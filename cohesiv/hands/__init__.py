"""Hand points: from hands files (keypoints, mesh vertices or boxes) or MediaPipe's hand landmarker.

``HandDetector`` / ``detect_hands`` need the optional ``mediapipe`` package and a model file built
by ``python -m cohesiv.hands.model_setup``; they are imported lazily so that this package loads
without MediaPipe.
"""

from cohesiv.hands.boxes import box_grid_points
from cohesiv.hands.tracking import Detection, track_hands

__all__ = [
    "Detection",
    "HandDetector",
    "box_grid_points",
    "build_hand_model",
    "detect_hands",
    "hand_model_path",
    "track_hands",
]


def __getattr__(name: str):
    # lazy: MediaPipe is optional, and `python -m cohesiv.hands.model_setup` must not find its
    # module already imported by this package
    if name in ("HandDetector", "detect_hands"):
        from cohesiv.hands import detector

        return getattr(detector, name)
    if name in ("build_hand_model", "hand_model_path"):
        from cohesiv.hands import model_setup

        return getattr(model_setup, name)
    raise AttributeError(f"module 'cohesiv.hands' has no attribute {name!r}")
