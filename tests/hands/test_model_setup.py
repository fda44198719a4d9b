import hashlib
import struct
import subprocess
import zipfile

import pytest

from cohesiv.errors import CohesivError
from cohesiv.hands import model_setup as ms


def _tflite(tag: bytes) -> bytes:
    return b"\x1c\x00\x00\x00TFL3" + tag * 100


def _fake_wheel(path, members=None):
    members = members if members is not None else {m: _tflite(n.encode()) for n, (m, _) in ms.MEMBERS.items()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _no_pip(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("pip must not run")

    monkeypatch.setattr(subprocess, "run", fail)


def test_hand_model_path_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("COHESIV_HAND_MODEL", str(tmp_path / "m.task"))
    assert ms.hand_model_path() == tmp_path / "m.task"
    monkeypatch.delenv("COHESIV_HAND_MODEL")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert ms.hand_model_path() == tmp_path / "cache" / "cohesiv" / "hand_landmarker.task"


def test_build_from_wheel_names_alignment_and_content(tmp_path, monkeypatch):
    _no_pip(monkeypatch)
    wheel = _fake_wheel(tmp_path / "mediapipe-0.10.21-x.whl")
    out = ms.build_hand_model(tmp_path / "cache", wheel=wheel, verify=False)
    assert out == tmp_path / "cache" / "hand_landmarker.task"
    assert ms.is_valid_bundle(out)
    with zipfile.ZipFile(out) as z, open(out, "rb") as f:
        assert sorted(z.namelist()) == ["hand_detector.tflite", "hand_landmarks_detector.tflite"]
        for info in z.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            f.seek(info.header_offset)
            n, e = struct.unpack("<HH", f.read(30)[26:30])
            assert (info.header_offset + 30 + n + e) % 64 == 0  # data start aligned for mmap
        assert z.read("hand_detector.tflite") == _tflite(b"hand_detector.tflite")
    assert not list((tmp_path / "cache").glob(".tmp-*"))


def test_build_is_idempotent_and_force_rebuilds(tmp_path, monkeypatch):
    _no_pip(monkeypatch)
    wheel = _fake_wheel(tmp_path / "w.whl")
    out = ms.build_hand_model(tmp_path, wheel=wheel, verify=False)
    before = out.stat().st_mtime_ns
    # a valid file is kept: no wheel needed, no pip run
    assert ms.build_hand_model(tmp_path) == out
    assert out.stat().st_mtime_ns == before
    out.write_bytes(b"garbage")
    assert not ms.is_valid_bundle(out)
    ms.build_hand_model(tmp_path, wheel=wheel, verify=False)
    assert ms.is_valid_bundle(out)
    ms.build_hand_model(tmp_path, force=True, wheel=wheel, verify=False)
    assert ms.is_valid_bundle(out)


def test_checksum_mismatch_and_missing_member(tmp_path):
    wheel = _fake_wheel(tmp_path / "w.whl")
    with pytest.raises(CohesivError, match="SHA-256"):
        ms.build_hand_model(tmp_path, wheel=wheel)
    member = ms.MEMBERS["hand_detector.tflite"][0]
    bad = _fake_wheel(tmp_path / "bad.whl", {member: _tflite(b"x")})
    with pytest.raises(CohesivError, match="hand_landmark_full.tflite"):
        ms.build_hand_model(tmp_path, wheel=bad, verify=False)
    assert not (tmp_path / "hand_landmarker.task").exists()


def test_checksums_are_the_pinned_ones():
    data = _tflite(b"a")
    assert hashlib.sha256(data).hexdigest() not in {sha for _, sha in ms.MEMBERS.values()}
    assert all(len(sha) == 64 for _, sha in ms.MEMBERS.values())


def test_pip_failure_is_one_clear_error(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, **k):
        calls.append(cmd)
        return subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: No matching distribution found for mediapipe==0.10.21"
        )

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(CohesivError, match="No matching distribution.*--wheel"):
        ms.build_hand_model(tmp_path)
    assert len(calls) == 2 and "--platform" in calls[1]  # retried with the x86_64 wheel
    assert all("--no-deps" in c and "mediapipe==0.10.21" in c for c in calls)


def test_main_quiet_and_error_exit(tmp_path, capsys, monkeypatch):
    _no_pip(monkeypatch)
    assert ms.main(["--cache-dir", str(tmp_path), "--wheel", str(tmp_path / "none.whl")]) == 1
    assert "none.whl" in capsys.readouterr().err


@pytest.mark.slow
def test_real_download_builds_a_model(tmp_path):
    out = ms.build_hand_model(tmp_path)  # needs PyPI
    assert ms.is_valid_bundle(out)
