"""MediaPipe hand detection on real images with hand masks: hands found, missed, false.

Sets (../shared/data, or $COHESIV_DATA):

* ``real-hand-masks-hof``: 10 third-person photos with a binary hand mask; each connected
  component of at least 200 pixels is one ground-truth hand region (two touching hands are one).
* ``hands23-demo-silver``: 5 images with EgoHOS labels (Hands23 detector predictions, silver);
  label 1 (left hand) and label 2 (right hand) are one region each.

A detection is matched to the region that holds most of its keypoints, if that is at least half
of them (the region dilated by 2 % of the image diagonal, since keypoints lie on the hand's
outline); each region takes at most one detection. found = matched regions, missed = regions
with no detection, false = detections not matched (including a second detection of one hand).

Settings: the detector as ``cohesiv hands`` runs it (confidence 0.5), lower / higher confidence,
and a second pass on 2x2 overlapping crops (:meth:`cohesiv.hands.HandDetector.detect_crops`)
merged with the first (non-maximum suppression), only where fewer than ``--max-hands`` were found.

    .venv/bin/python bench/hands_real.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from cohesiv.hands.detector import HandDetector, merge_detections
from cohesiv.io import read_image

DATA = Path(os.environ.get("COHESIV_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def regions_hof(mask_path: Path) -> list[np.ndarray]:
    m = np.asarray(read_image(mask_path))
    m = (m[..., 0] if m.ndim == 3 else m) > 127
    n, lab, st, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8))
    return [lab == i for i in range(1, n) if st[i, 4] >= 200]


def regions_egohos(label_path: Path) -> list[np.ndarray]:
    m = np.asarray(read_image(label_path))
    m = m[..., 0] if m.ndim == 3 else m
    return [m == v for v in (1, 2) if (m == v).any()]


def sets() -> dict[str, list[tuple[Path, list[np.ndarray]]]]:
    out = {}
    hof = DATA / "real-hand-masks-hof"
    if hof.is_dir():
        out["real-hand-masks-hof"] = [
            (p, regions_hof(hof / "masks" / f"{p.stem}.png")) for p in sorted((hof / "images").glob("*.jpg"))
        ]
    h23 = DATA / "hands23-demo-silver"
    if h23.is_dir():
        out["hands23-demo-silver"] = [
            (p, regions_egohos(h23 / "labels" / f"{p.stem}.png"))
            for p in sorted((h23 / "images").glob("*.jpg"))
        ]
    return out


def match(dets, regions, size) -> tuple[int, int, int]:
    """``(found, missed, false)`` of detections against ground-truth regions."""
    w, h = size
    r = max(1, int(0.02 * np.hypot(w, h)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    grown = [cv2.dilate(g.astype(np.uint8), kernel) > 0 for g in regions]
    taken = set()
    false = 0
    for d in sorted(dets, key=lambda d: -d.score):
        xy = np.clip(np.rint(d.points).astype(int), 0, [w - 1, h - 1])
        hits = [g[xy[:, 1], xy[:, 0]].mean() if i not in taken else 0.0 for i, g in enumerate(grown)]
        best = int(np.argmax(hits)) if hits else -1
        if best >= 0 and hits[best] >= 0.5:
            taken.add(best)
        else:
            false += 1
    return len(taken), len(regions) - len(taken), false


SETTINGS = {
    "conf 0.5 (old default)": dict(conf=0.5, crops=False),
    "conf 0.3": dict(conf=0.3, crops=False),
    "conf 0.7": dict(conf=0.7, crops=False),
    "conf 0.5 + 2x2 crops pass (new default)": dict(conf=0.5, crops=True),
    "conf 0.7 + 2x2 crops pass": dict(conf=0.7, crops=True),
}


def clips() -> list[Path]:
    out = []
    for name in ("ego4d-lavila-clips", "fpha-egocentric-clips", "cotracker-handheld-videos"):
        out += sorted((DATA / name).glob("*.mp4"))
    return out


CLIP_SETTINGS = {
    "before: conf 0.5": dict(min_confidence=0.5),
    "after: conf 0.7, crops, tracks >= 2 frames, still rejected": dict(
        min_confidence=0.7, crops=True, min_track_frames=2, reject_still=True
    ),
}


def clip_table() -> None:
    """Hands per frame on the unlabeled real clips, before and after (no ground truth: counts only)."""
    import time

    from cohesiv.hands.detector import detect_hands

    print("\nUnlabeled real clips: frames with 0 / 1 / 2 hands, hand ids (frames), ms per frame")
    for clip in clips():
        for name, kw in CLIP_SETTINGS.items():
            t0 = time.perf_counter()
            tracks = detect_hands(clip, progress=False, **kw)
            ms = 1000 * (time.perf_counter() - t0) / max(len(tracks.frames), 1)
            counts = [sum(len(h) == k for h in tracks.frames.values()) for k in (0, 1)]
            counts.append(sum(len(h) >= 2 for h in tracks.frames.values()))
            ids: dict = {}
            for hs in tracks.frames.values():
                for h in hs:
                    ids[h.id] = ids.get(h.id, 0) + 1
            idtext = ", ".join(f"{k} {v}" for k, v in sorted(ids.items()))
            print(
                f"{clip.name[:28]:<28} {name:<58} {counts[0]:>3} / {counts[1]:>3} / {counts[2]:>3}  {idtext}  {ms:.0f} ms"
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-hands", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="per image counts")
    ap.add_argument("--clips", action="store_true", help="also the unlabeled real clips, before / after")
    a = ap.parse_args()
    data = sets()
    if not data:
        print(f"no real sets under {DATA}", file=sys.stderr)
        return 1
    print("$ .venv/bin/python bench/hands_real.py " + " ".join(sys.argv[1:]))
    print(f"{'setting':<36}" + "".join(f"| {k:<26}" for k in data) + "  (found / missed / false)")
    for name, s in SETTINGS.items():
        cells = []
        with HandDetector(
            max_hands=a.max_hands, min_confidence=s["conf"], min_presence=s["conf"], video=False
        ) as det:
            for items in data.values():
                tot = np.zeros(3, int)
                for path, regions in items:
                    img = np.asarray(read_image(path))
                    dets = det.detect_raw(img)
                    if s["crops"] and len(dets) < a.max_hands:
                        dets = merge_detections(det.detect_crops(img), keep=dets)[: a.max_hands]
                    c = match(dets, regions, (img.shape[1], img.shape[0]))
                    if a.verbose:
                        print(f"   {name} {path.name}: {c}")
                    tot += c
                cells.append(f"{tot[0]:>3} / {tot[1]:>3} / {tot[2]:>3} (of {sum(len(r) for _, r in items)})")
        print(f"{name:<36}" + "".join(f"| {c:<26}" for c in cells))
    if a.clips:
        clip_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
