"""The pseudo-label dataset format (cohesiv.io.dataset): ids, manifest, sample npz round trip."""

import json
from pathlib import Path

import numpy as np
import pytest

from cohesiv.errors import InputError
from cohesiv.io import dataset as D


def test_sample_ids_and_paths():
    assert D.sample_id("clip_0001", 7) == "clip_0001_000007"
    assert D.clip_name(Path("my clip.mp4")) == "my_clip"
    assert D.image_file("a_000001") == "images/a_000001.png"
    assert D.sample_file("a_000001") == "samples/a_000001.npz"
    assert D.sidecar_path("root", "a_000001") == Path("root/samples/a_000001.json")


def test_sample_round_trip_is_the_quantised_responsibility(tmp_path):
    rng = np.random.default_rng(0)
    r = rng.random((3, 5, 4)).astype(np.float32)
    r /= r.sum(0)
    person = (rng.random((5, 4)) > 0.5).astype(np.uint8)
    valid = np.ones((5, 4), np.uint8)
    D.write_sample(tmp_path / "s.npz", r, person, valid)
    resp, p, v = D.read_sample(tmp_path / "s.npz")
    assert resp.dtype == np.float32 and np.array_equal(resp, D.quantize(r).astype(np.float32))
    assert np.abs(resp - r).max() <= 0.5 / D.RESPONSIBILITY_STEPS + 1e-6
    assert np.array_equal(p, person) and np.array_equal(v, valid)


def test_read_sample_without_valid_is_all_ones_and_corrupt_is_an_input_error(tmp_path):
    np.savez(
        tmp_path / "old.npz", responsibility=np.ones((1, 2, 2), np.float16), person=np.zeros((2, 2), np.uint8)
    )
    assert D.read_sample(tmp_path / "old.npz")[2].tolist() == [[1, 1], [1, 1]]
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(InputError, match="cannot read pseudo-label sample"):
        D.read_sample(tmp_path / "bad.npz")


def test_manifest_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="no such pseudo-label dataset folder"):
        D.read_manifest(tmp_path / "missing")
    with pytest.raises(InputError, match="no manifest.jsonl"):
        D.read_manifest(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"id": "a"}\n\n{"id": \n')
    with pytest.raises(InputError, match="line 3: invalid JSON"):
        D.read_manifest(tmp_path)


def test_rebuild_manifest_lists_finished_samples_only(tmp_path):
    (tmp_path / "samples").mkdir()
    (tmp_path / "images").mkdir()
    for sid, done in (("c_000000", True), ("c_000001", False)):
        entry = {"id": sid, "image": D.image_file(sid), "sample": D.sample_file(sid)}
        (tmp_path / entry["image"]).write_bytes(b"")
        if done:
            (tmp_path / entry["sample"]).write_bytes(b"")
        D.sidecar_path(tmp_path, sid).write_text(json.dumps({"entry": entry}))
    D.sidecar_path(tmp_path, "c_000002").write_text(json.dumps({"skipped": "no hand"}))
    assert D.rebuild_manifest(tmp_path) == 1
    assert [e["id"] for e in D.read_manifest(tmp_path)] == ["c_000000"]
