"""Accuracy regression on real data: Middlebury pairs with public ground truth (skipped when absent)."""

import numpy as np
import pytest

from cohesiv.flow import FlowEstimator
from cohesiv.io import read_flo, read_image, unknown_flow_mask

pytestmark = pytest.mark.data

# measured by bench/flow.py (OpenCV 5.0): medium 0.225 / 0.645, fast 0.440 / 0.990, ultrafast 0.537 / 1.219
LIMITS = {"RubberWhale": {"medium": 0.3, "fast": 0.5}, "Urban2": {"medium": 0.8, "fast": 1.2}}


@pytest.mark.parametrize("seq", sorted(LIMITS))
def test_dis_epe_on_middlebury(shared_data, seq):
    folder = shared_data / "middlebury-other-gt-flow" / seq
    if not folder.is_dir():
        pytest.skip(f"{folder} missing")
    a, b = read_image(folder / "frame10.png"), read_image(folder / "frame11.png")
    gt = read_flo(folder / "flow10.flo", allow_nonfinite=True)
    known = ~unknown_flow_mask(gt)
    zero_epe = float(np.sqrt((gt**2).sum(0))[known].mean())
    epes = {}
    for preset, limit in LIMITS[seq].items():
        flow = FlowEstimator(preset=preset)(a, b)
        epes[preset] = float(np.sqrt(((flow - gt) ** 2).sum(0))[known].mean())
        assert epes[preset] < limit, (preset, epes[preset])
    assert epes["medium"] < epes["fast"] < zero_epe
