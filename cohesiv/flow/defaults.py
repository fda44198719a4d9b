"""Defaults of the flow stage, importable without torch; they are written in :mod:`cohesiv.config`."""

from cohesiv.config import DEFAULT_DIS_PRESET, DEFAULT_RAFT_ITERS, DIS_PRESET_NAMES, RAFT_MODELS

__all__ = ["DEFAULT_DIS_PRESET", "DEFAULT_RAFT_ITERS", "DIS_PRESET_NAMES", "RAFT_MODELS"]
