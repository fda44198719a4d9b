"""Defaults written once, in a module that imports nothing (the CLI's ``--help`` reads them).

Each default the stages share lives here and is imported by the stage that uses it, by its
config dataclass and by the command that shows it in ``--help``. ``tools/structure.py`` counts
the places a default is written.
"""

#: DIS presets: OpenCV's (``DISOPTICAL_FLOW_PRESET_*``), fastest first, then the tuned ones of
#: ``cohesiv.flow.dis.DIS_TUNED``.
DIS_PRESET_NAMES = ("ultrafast", "fast", "medium", "ultrafast-fs1", "fast-fs1")

#: The preset used when none is given, chosen by what the flow does to the pseudo-labels per second
#: (``bench/flow_labels.py``, 30 synthetic test clips per camera mode at 320x240): OpenCV's
#: ultrafast preset down to finest scale 1. Thresholded-responsibility All mIoU 78.8 (static camera)
#: / 81.0 (moving) against 70.7 / 69.8 for "fast" (the default until 2026-12), at 0.8x its labeled
#: frames per second and 1.8x "medium"'s (``bench/pseudolabel.py --dis-presets``).
DEFAULT_DIS_PRESET = "ultrafast-fs1"

#: Softmax temperature ``t`` of the responsibility, in pixels: ``R = softmax(-d / t)`` over
#: {background, hands} (COHESIV Eq. 1-2, t = 2).
RESPONSIBILITY_TEMPERATURE = 2.0
