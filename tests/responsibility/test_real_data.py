import cv2
import numpy as np
import pytest

from cohesiv.hands.boxes import box_grid_points
from cohesiv.io import Hand, HandTracks
from cohesiv.responsibility.dataset import ClipSource, PseudoLabelConfig, read_manifest, write_dataset


@pytest.mark.slow
@pytest.mark.data
def test_pseudolabels_on_a_real_egocentric_clip_with_dis(shared_data, tmp_path):
    video = next(iter(sorted((shared_data / "ego4d-lavila-clips").glob("*.mp4"))), None)
    if video is None:
        pytest.skip("no ego4d clip")
    (tmp_path / "clip" / "frames").mkdir(parents=True)
    cap = cv2.VideoCapture(str(video))
    for t in range(10):
        ok, bgr = cap.read()
        assert ok
        cv2.imwrite(str(tmp_path / "clip" / "frames" / f"{t:06d}.png"), cv2.resize(bgr, (320, 240)))
    cap.release()
    boxes = [(48, 132, 128, 228), (192, 132, 272, 228)]
    tracks = HandTracks(
        (320, 240),
        {t: [Hand(f"h{i}", None, box_grid_points(b)) for i, b in enumerate(boxes)] for t in range(10)},
    )
    for bg in ("static", "homography"):
        out = tmp_path / bg
        s = write_dataset(
            [ClipSource(tmp_path / "clip", tracks)], out, PseudoLabelConfig(background=bg), progress=False
        )
        assert s.samples_written + s.frames_no_fitted_hand == 10
        for e in read_manifest(out):
            with np.load(out / e["sample"]) as z:
                r = z["responsibility"].astype(np.float32)
                assert np.isfinite(r).all()
                np.testing.assert_allclose(r.sum(0), 1, atol=2e-3)
                assert 0 < z["valid"].mean() <= 1
