import numpy as np

from cohesiv.hands.boxes import box_grid_points


def test_grid_inside_box_with_margin_and_centred():
    pts = box_grid_points((10, 20, 110, 60), n=5, margin=0.15)
    assert pts.shape == (25, 2) and pts.dtype == np.float32
    np.testing.assert_allclose(pts.min(0), [25, 26])
    np.testing.assert_allclose(pts.max(0), [95, 54])
    np.testing.assert_allclose(pts.mean(0), [60, 40])  # query default = box centre
    assert len(np.unique(pts[:, 0])) == 5 and len(np.unique(pts[:, 1])) == 5  # not collinear
