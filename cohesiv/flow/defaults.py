"""Defaults of the flow stage that must be importable without torch (the DIS presets are in :mod:`cohesiv.defaults`)."""

from cohesiv.defaults import DEFAULT_DIS_PRESET, DIS_PRESET_NAMES

__all__ = ["DEFAULT_DIS_PRESET", "DEFAULT_RAFT_ITERS", "DIS_PRESET_NAMES", "RAFT_MODELS"]

#: RAFT sizes (``torchvision.models.optical_flow.raft_small`` / ``raft_large``).
RAFT_MODELS = ("small", "large")

#: RAFT refinement iterations (torchvision's default; princeton-vl's demo uses 20).
DEFAULT_RAFT_ITERS = 12
