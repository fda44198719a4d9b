"""Old path of :mod:`cohesiv.eval.calibrate`, kept for one release.

Calibration is an evaluation-time fit, so it moved to ``eval/``. This module replaces itself with the
moved one, so ``cohesiv.train.calibrate.X`` is ``cohesiv.eval.calibrate.X``.
"""

import sys

from cohesiv.eval import calibrate as _calibrate

sys.modules[__name__] = _calibrate
