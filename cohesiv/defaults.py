"""Old home of the shared defaults (the DIS presets, the responsibility temperature): see :mod:`cohesiv.config`.

Kept for one release; import them from :mod:`cohesiv.config`, where every stage default is written.
"""

from cohesiv.config import DEFAULT_DIS_PRESET, DIS_PRESET_NAMES, RESPONSIBILITY_TEMPERATURE

__all__ = ["DEFAULT_DIS_PRESET", "DIS_PRESET_NAMES", "RESPONSIBILITY_TEMPERATURE"]
