"""cohesiv: segment hands and the objects they hold from unlabeled video, without mask labels.

A re-implementation (and extension) of COHESIV (Shan, Higgins, Fouhey, NeurIPS 2021):
optical flow + hand points give per-hand responsibility maps (pseudo-labels), on which a
U-Net with query/key heads is trained; at test time one RGB image and a hand point give a hand
mask and the mask of the object that hand holds.
"""

__version__ = "0.1.0"

from cohesiv.errors import CohesivError, InputError  # noqa: E402

__all__ = ["CohesivError", "InputError", "__version__"]
