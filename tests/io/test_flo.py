"""Middlebury .flo files: round trip, header/size errors, non-finite values."""

import numpy as np
import pytest

from cohesiv.errors import InputError
from cohesiv.io import read_flo, unknown_flow_mask, write_flo
from cohesiv.io.flo import FLO_MAGIC


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    flow = (rng.standard_normal((2, 5, 7)) * 10).astype(np.float32)
    write_flo(tmp_path / "a.flo", flow)
    back = read_flo(tmp_path / "a.flo")
    assert back.shape == (2, 5, 7) and back.dtype == np.float32
    assert np.array_equal(back, flow)
    # layout: header, then (u, v) interleaved row-major
    raw = (tmp_path / "a.flo").read_bytes()
    assert len(raw) == 12 + 8 * 5 * 7
    assert np.frombuffer(raw, "<f4", 1)[0] == np.float32(FLO_MAGIC)
    assert tuple(np.frombuffer(raw, "<i4", 2, 4)) == (7, 5)
    assert np.frombuffer(raw, "<f4", 2, 12).tolist() == [flow[0, 0, 0], flow[1, 0, 0]]


def test_float64_input_is_written_as_float32(tmp_path):
    write_flo(tmp_path / "a.flo", np.full((2, 2, 3), 1.5))
    assert np.array_equal(read_flo(tmp_path / "a.flo"), np.full((2, 2, 3), 1.5, np.float32))


def test_write_rejects_bad_shape(tmp_path):
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        write_flo(tmp_path / "a.flo", np.zeros((3, 4, 4)))
    assert not (tmp_path / "a.flo").exists()


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such flow file") as e:
        read_flo(tmp_path / "nope.flo")
    assert "nope.flo" in str(e.value)


def test_bad_magic(tmp_path):
    p = tmp_path / "bad.flo"
    p.write_bytes(np.array([1.0], "<f4").tobytes() + np.array([2, 2], "<i4").tobytes() + bytes(32))
    with pytest.raises(InputError, match="not a .flo file: magic number") as e:
        read_flo(p)
    assert "bad.flo" in str(e.value)


def test_too_short_for_a_header(tmp_path):
    p = tmp_path / "short.flo"
    p.write_bytes(b"PIEH")
    with pytest.raises(InputError, match="only 4 bytes"):
        read_flo(p)


def test_truncated(tmp_path):
    p = tmp_path / "t.flo"
    write_flo(p, np.zeros((2, 4, 4), np.float32))
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(InputError, match=r"truncated .flo file: .* expected 140 for 4x4") as e:
        read_flo(p)
    assert "t.flo" in str(e.value)


def test_invalid_size(tmp_path):
    p = tmp_path / "s.flo"
    p.write_bytes(np.array([FLO_MAGIC], "<f4").tobytes() + np.array([0, 3], "<i4").tobytes())
    with pytest.raises(InputError, match="invalid .flo size 0x3"):
        read_flo(p)


def test_nonfinite_values(tmp_path):
    flow = np.zeros((2, 3, 3), np.float32)
    flow[0, 1, 1] = np.nan
    flow[1, 2, 0] = np.inf
    write_flo(tmp_path / "n.flo", flow)
    with pytest.raises(InputError, match="NaN or infinite values at 2 pixels"):
        read_flo(tmp_path / "n.flo")
    back = read_flo(tmp_path / "n.flo", allow_nonfinite=True)
    assert np.isnan(back[0, 1, 1]) and np.isinf(back[1, 2, 0])


def test_unknown_flow_values_are_accepted_and_masked(tmp_path):
    flow = np.zeros((2, 2, 3), np.float32)
    flow[:, 0, 2] = 1e10  # Middlebury's "unknown"
    write_flo(tmp_path / "u.flo", flow)
    mask = unknown_flow_mask(read_flo(tmp_path / "u.flo"))
    assert mask.tolist() == [[False, False, True], [False, False, False]]
