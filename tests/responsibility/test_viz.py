import numpy as np
import pytest

from cohesiv import viz


def _img(h=20, w=30, v=100):
    return np.full((h, w, 3), v, np.uint8)


def test_heatmap_ends_and_shape():
    v = np.zeros((4, 5), np.float32)
    v[0, 0] = 1.0
    v[1, 1] = np.nan
    hm = viz.heatmap(v, "jet")
    assert hm.shape == (4, 5, 3) and hm.dtype == np.uint8
    # jet: 0 is dark blue, 1 dark red (RGB order)
    assert hm[2, 2, 2] > 100 and hm[2, 2, 0] < 10
    assert hm[0, 0, 0] > 100 and hm[0, 0, 2] < 10
    np.testing.assert_array_equal(hm[1, 1], hm[2, 2])  # NaN drawn as vmin
    with pytest.raises(ValueError, match="colormap"):
        viz.heatmap(v, "rainbow")
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        viz.heatmap(v[None])


def test_responsibility_overlay_leaves_unexplained_pixels_alone():
    img = _img()
    r = np.zeros((20, 30), np.float32)
    r[5:10, 5:10] = 1.0
    out = viz.responsibility_overlay(img, r, alpha=1.0, colormap="jet")
    np.testing.assert_array_equal(out[r == 0], img[r == 0])
    np.testing.assert_array_equal(out[7, 7], viz.heatmap(np.ones((1, 1)), "jet")[0, 0])
    with pytest.raises(ValueError, match="does not match"):
        viz.responsibility_overlay(img, r[:5])


def test_mask_overlay_colours_inside_only():
    img = _img()
    m = np.zeros((20, 30), np.uint8)
    m[2:12, 3:15] = 1
    out = viz.mask_overlay(img, [m], colors=[(255, 0, 0)], alpha=0.5, contours=False)
    np.testing.assert_array_equal(out[m == 0], img[m == 0])
    np.testing.assert_array_equal(out[5, 5], [178, 50, 50])  # round(0.5 * 100 + 0.5 * 255)
    with_contour = viz.mask_overlay(img, [m], colors=[(255, 0, 0)], alpha=0.5)
    np.testing.assert_array_equal(with_contour[2, 5], [255, 0, 0])


def test_tile_and_panel_shapes():
    t = viz.tile([_img(), _img(), _img()], cols=2, pad=2)
    assert t.shape == (42, 62, 3)
    r = np.zeros((3, 20, 30), np.float32)
    r[0] = 1
    p = viz.pseudolabel_panel(
        _img(), r, person=np.zeros((20, 30)), obj=np.zeros((20, 30)), hand_points=[np.array([[3.0, 4.0]])] * 2
    )
    assert p.shape == (2 * 20 + 2, 3 * 30 + 4, 3)  # 4 tiles (frame, hand 1, hand 2, masks) in 3 columns
