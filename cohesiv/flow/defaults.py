"""Defaults of the flow stage that must be importable without torch (for the CLI's --help)."""

#: DIS presets: OpenCV's (``DISOPTICAL_FLOW_PRESET_*``), fastest first, then the tuned ones of
#: ``cohesiv.flow.dis.DIS_TUNED``.
DIS_PRESET_NAMES = ("ultrafast", "fast", "medium", "ultrafast-fs1", "fast-fs1")

#: The preset used when none is given: the most accurate preset that takes <= 15 ms per
#: 480x360 pair on the project machine (2 CPU cores), as measured by ``bench/flow.py``.
DEFAULT_DIS_PRESET = "fast"

#: RAFT sizes (``torchvision.models.optical_flow.raft_small`` / ``raft_large``).
RAFT_MODELS = ("small", "large")

#: RAFT refinement iterations (torchvision's default; princeton-vl's demo uses 20).
DEFAULT_RAFT_ITERS = 12
