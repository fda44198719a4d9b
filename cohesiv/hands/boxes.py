"""Hand points from a hand box: a regular grid inside it.

The rule belongs to the hands format and lives in :mod:`cohesiv.io.hands`; this path is kept.
"""

from cohesiv.io.hands import box_grid_points

__all__ = ["box_grid_points"]
