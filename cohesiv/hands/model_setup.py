"""Build MediaPipe's hand landmarker model file offline, from the ``mediapipe`` wheel on PyPI.

``mediapipe`` >= 1.0 ships no hand model, and cohesiv never downloads from a model hub. The
``mediapipe==0.10.21`` wheel on PyPI, however, contains the two TFLite models the hand landmarker
needs (``palm_detection_full.tflite`` and ``hand_landmark_full.tflite``, Apache-2.0). This module
downloads that wheel with ``pip download --no-deps``, checks the two files against their SHA-256,
and writes them into a MediaPipe task bundle (a zip holding ``hand_detector.tflite`` and
``hand_landmarks_detector.tflite``, stored uncompressed and 64-byte aligned so that MediaPipe can
map them without copying).

Usage::

    python -m cohesiv.hands.model_setup            # builds ~/.cache/cohesiv/hand_landmarker.task
    python -m cohesiv.hands.model_setup --wheel mediapipe-0.10.21-....whl   # from a local wheel

The model path is ``$COHESIV_HAND_MODEL`` when set, else ``$XDG_CACHE_HOME/cohesiv/hand_landmarker.task``
(``~/.cache`` when ``XDG_CACHE_HOME`` is unset).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from cohesiv.errors import CohesivError
from cohesiv.io.atomic import atomic_path

#: The PyPI release whose wheel holds the hand models.
MEDIAPIPE_WHEEL_VERSION = "0.10.21"
MODEL_FILE_NAME = "hand_landmarker.task"
ENV_VAR = "COHESIV_HAND_MODEL"
#: Bundle member name -> (path inside the wheel, SHA-256 of the file).
MEMBERS = {
    "hand_detector.tflite": (
        "mediapipe/modules/palm_detection/palm_detection_full.tflite",
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    ),
    "hand_landmarks_detector.tflite": (
        "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
        "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
    ),
}
#: The wheel for other platforms (0.10.21 has no aarch64 wheel); the .tflite files are the same.
FALLBACK_PLATFORM = ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11"]
FALLBACK_PLATFORM += ["--implementation", "cp", "--abi", "cp311", "--only-binary=:all:"]
SETUP_COMMAND = "python -m cohesiv.hands.model_setup"
_ALIGN = 64


def default_cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/cohesiv`` (``~/.cache/cohesiv`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cohesiv"


def hand_model_path() -> Path:
    """Return where the hand model is looked for: ``$COHESIV_HAND_MODEL``, else the default cache."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else default_cache_dir() / MODEL_FILE_NAME


def is_valid_bundle(path: str | Path) -> bool:
    """Return True when ``path`` is a zip holding both hand models as TFLite flatbuffers."""
    try:
        with zipfile.ZipFile(path) as z:
            for name in MEMBERS:
                with z.open(name) as f:
                    if f.read(8)[4:8] != b"TFL3":
                        return False
    except (OSError, KeyError, zipfile.BadZipFile):
        return False
    return True


def _extract_models(wheel: Path, verify: bool) -> dict[str, bytes]:
    """Read the two model files out of a mediapipe wheel (checking SHA-256 when ``verify``)."""
    try:
        z = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise CohesivError(f"{wheel}: not a readable wheel ({e})") from None
    out = {}
    with z:
        for name, (member, sha) in MEMBERS.items():
            try:
                data = z.read(member)
            except KeyError:
                raise CohesivError(
                    f"{wheel}: has no {member}; use the mediapipe=={MEDIAPIPE_WHEEL_VERSION} wheel"
                ) from None
            if data[4:8] != b"TFL3":
                raise CohesivError(f"{wheel}: {member} is not a TFLite model")
            if verify and hashlib.sha256(data).hexdigest() != sha:
                raise CohesivError(
                    f"{wheel}: {member} has an unexpected SHA-256; expected the file of "
                    f"mediapipe=={MEDIAPIPE_WHEEL_VERSION}"
                )
            out[name] = data
    return out


def write_bundle(path: str | Path, files: dict[str, bytes]) -> None:
    """Write a MediaPipe task bundle atomically: stored (uncompressed) members, 64-byte aligned.

    Each member's data starts at a multiple of 64 bytes in the file (padding goes into a zip
    "extra" field, as Android's zipalign does), so TFLite can map the models without copying.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fp, zipfile.ZipFile(fp, "w", zipfile.ZIP_STORED) as z:
            for name, data in files.items():
                start = fp.tell() + 30 + len(name.encode()) + 4  # local header + name + extra header
                pad = (-start) % _ALIGN
                info = zipfile.ZipInfo(name, date_time=(2025, 1, 31, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                info.extra = struct.pack("<HH", 0xD935, pad) + bytes(pad)
                z.writestr(info, data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model cache is for every user


def _pip_download(dest: Path) -> Path:
    """Download the mediapipe wheel into ``dest`` with pip; return its path."""
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    base += ["-d", str(dest), f"mediapipe=={MEDIAPIPE_WHEEL_VERSION}"]
    err = ""
    for extra in ([], FALLBACK_PLATFORM):
        try:
            r = subprocess.run(base + extra, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            err = str(e)
            continue
        wheels = sorted(dest.glob("mediapipe-*.whl"))
        if r.returncode == 0 and wheels:
            return wheels[0]
        lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "is ignored" not in ln]
        err = " / ".join(lines[-2:]) or f"pip exited with status {r.returncode}"
    raise CohesivError(
        f"could not download mediapipe=={MEDIAPIPE_WHEEL_VERSION} from PyPI with pip ({err}); "
        f"download the wheel elsewhere and run '{SETUP_COMMAND} --wheel FILE'"
    )


def build_hand_model(
    cache_dir: str | Path | None = None,
    force: bool = False,
    *,
    wheel: str | Path | None = None,
    verify: bool = True,
) -> Path:
    """Build the hand landmarker model file (idempotent: an existing valid file is kept).

    Args:
        cache_dir: folder for ``hand_landmarker.task``; default: :func:`hand_model_path`
            (``$COHESIV_HAND_MODEL`` or ``~/.cache/cohesiv/hand_landmarker.task``).
        force: rebuild even when a valid file exists.
        wheel: a local ``mediapipe-0.10.21-*.whl``; default: download it with pip (PyPI).
        verify: check both model files against the SHA-256 of the 0.10.21 release.

    Returns:
        The path of the model file.

    Raises:
        CohesivError: pip failed, or the wheel lacks the models or holds different ones.
    """
    target = Path(cache_dir) / MODEL_FILE_NAME if cache_dir is not None else hand_model_path()
    if not force and is_valid_bundle(target):
        return target
    if wheel is not None:
        files = _extract_models(Path(wheel), verify)
    else:
        with tempfile.TemporaryDirectory(prefix="cohesiv-mediapipe-") as tmp:
            files = _extract_models(_pip_download(Path(tmp)), verify)
    write_bundle(target, files)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line: build the model, print its path; exit 1 with a one-line message on failure."""
    p = argparse.ArgumentParser(prog=SETUP_COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument("--cache-dir", help="folder for hand_landmarker.task (default: see COHESIV_HAND_MODEL)")
    p.add_argument("--wheel", help=f"local mediapipe-{MEDIAPIPE_WHEEL_VERSION} wheel (default: pip download)")
    p.add_argument("--force", action="store_true", help="rebuild even if the model file exists")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = p.parse_args(argv)
    try:
        path = build_hand_model(args.cache_dir, args.force, wheel=args.wheel)
    except CohesivError as e:
        print(f"cohesiv hand model setup: error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
