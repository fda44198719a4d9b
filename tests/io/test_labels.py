"""EgoHOS label PNGs: round trip, range and mode errors, task labels, hand/object masks."""

import numpy as np
import pytest
from PIL import Image

from cohesiv.errors import InputError
from cohesiv.io import read_label, task_labels, write_label
from cohesiv.io.labels import LABEL_PALETTE, compose_label, hand_mask, object_mask


def test_round_trip_all_values(tmp_path):
    lab = np.arange(9, dtype=np.uint8).reshape(3, 3)
    write_label(tmp_path / "l.png", lab)
    back = read_label(tmp_path / "l.png")
    assert back.dtype == np.uint8 and np.array_equal(back, lab)
    img = Image.open(tmp_path / "l.png")
    assert img.mode == "P"  # a palette: viewers show colours, the values stay the labels
    rgb = np.asarray(img.convert("RGB"))
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == list(LABEL_PALETTE[1])
    assert len({tuple(c) for c in rgb.reshape(-1, 3)}) == 9


def test_compose_label_sides_and_overlaps():
    hand = np.zeros((2, 3, 4), np.uint8)
    obj = np.zeros((2, 3, 4), np.uint8)
    hand[0, 0, 0] = hand[1, 0, 3] = 1
    obj[0, 1, :3] = 1  # left hand's object
    obj[1, 1, 2:] = 1  # right hand's object, overlapping at (1, 2)
    obj[1, 0, 0] = 1  # under the left hand: the hand wins
    lab = compose_label(hand, obj, ["left", "right"])
    assert lab.tolist() == [[1, 0, 0, 2], [3, 3, 5, 4], [0, 0, 0, 0]]
    with pytest.raises(ValueError, match="disagree"):
        compose_label(hand, obj[:1], ["left", "right"])


def test_palette_png_is_read_as_indices(tmp_path):
    img = Image.fromarray(np.array([[0, 1], [2, 5]], np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [9] * (256 * 3 - 9))
    img.save(tmp_path / "p.png")
    assert read_label(tmp_path / "p.png").tolist() == [[0, 1], [2, 5]]


def test_out_of_range_values_on_read(tmp_path):
    Image.fromarray(np.array([[0, 9], [200, 3]], np.uint8)).save(tmp_path / "bad.png")
    with pytest.raises(InputError, match=r"label values \[9, 200\] out of range 0..8") as e:
        read_label(tmp_path / "bad.png")
    assert "bad.png" in str(e.value)


def test_colour_image_is_refused(tmp_path):
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="single-channel"):
        read_label(tmp_path / "rgb.png")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="no such image file"):
        read_label(tmp_path / "none.png")
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match="cannot read image") as e:
        read_label(tmp_path / "junk.png")
    assert "junk.png" in str(e.value)


def test_write_rejects_bad_labels(tmp_path):
    with pytest.raises(ValueError, match="0..8"):
        write_label(tmp_path / "w.png", np.array([[9]]))
    with pytest.raises(ValueError, match="0..8"):
        write_label(tmp_path / "w.png", np.array([[-1]]))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        write_label(tmp_path / "w.png", np.zeros((2, 2, 3), np.uint8))
    assert not (tmp_path / "w.png").exists()


def test_task_labels_and_masks():
    lab = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8]], np.uint8)
    assert task_labels(lab).tolist() == [[0, 1, 2, 3, 4, 5, 0, 0, 0]]
    assert lab.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7, 8]]  # a copy
    assert hand_mask(lab, "left").tolist() == [[0, 1, 0, 0, 0, 0, 0, 0, 0]]
    assert object_mask(lab, "left").tolist() == [[0, 0, 0, 1, 0, 1, 0, 0, 0]]
    assert object_mask(lab, "right").tolist() == [[0, 0, 0, 0, 1, 1, 0, 0, 0]]
